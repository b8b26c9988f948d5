package flatpak

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/flatpak"
)

// deployURL is what the image's remote must point at: not the served URL.
const deployURL = "https://flatpak.eib.invalid/repo/"

// appsConfig is the localdir configuration of the demo build with apps:
// the remote from a .flatpakrepo file (URL and key), two apps (a third
// added by the defaults and removed by the personality), the codecs
// extension that Clock would bring excluded, and English locales (the
// personality es adds Spanish).
func appsConfig(repoFile string) string {
	return "[flatpak]\nlocales_add = en\n\n" +
		"[flatpak-remote-eibtest]\nrepo_file = " + repoFile + "\ndeploy_url = " + deployURL + "\n" +
		"default_branch = stable\nprio = 5\n" +
		"apps_add = org.eib.test.Hello org.eib.test.Clock org.eib.test.Unwanted\n" +
		"exclude_add = org.eib.test.Clock.Codecs\n"
}

// writePersonality makes the localdir's files of the personality es: the
// shipped config/personality/es.ini adds locales es (and the eos-apps
// remote of the eos product, disabled here for the demo product, and a
// language and timezone the busybox demo OS does not have).
func writePersonality(p *project) {
	p.Write("config/personality/es.ini", "[flatpak-remote-eibtest]\napps_del = org.eib.test.Unwanted\n", 0o644)
	p.Write("config/product-personality/demo-es.ini", "[flatpak-remote-eos-apps]\nenable = false\n\n[image]\nlanguage =\ntimezone =\n", 0o644)
}

// triggerHook is a content hook giving the OS a Flatpak trigger that
// records its argument and the installed apps in the installation.
const triggerHook = `#!/bin/sh
set -e
d=$OSTREE_DEPLOYMENT/usr/share/flatpak/triggers
mkdir -p "$d"
cat > "$d/eib-test.trigger" <<'EOF'
#!/bin/sh
set -e
{ echo "$1"; ls /var/lib/flatpak/app; } > "$1/eib-test-trigger-ran"
EOF
chmod 755 "$d/eib-test.trigger"
`

var contentTime = regexp.MustCompile(`flatpak: \d+ apps and runtimes and what they need pulled into \S+ in (\S+)`)

func TestDemoBuildPreinstallsFlatpakApps(t *testing.T) {
	repo := newTestRepo(t)
	p := newProject(t, "")
	rf := p.Write("eibtest.flatpakrepo", repo.repoFile(true), 0o644)
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+appsConfig(rf)+
		"\n[content]\nhooks_add = 50-flatpak-trigger\n", 0o644)
	writePersonality(p)
	// The OS gets a Flatpak trigger (this content hook writes it into the
	// deployment, as the flatpak package would): it must run on the
	// installation, at /var/lib/flatpak, once the apps are in.
	p.Write("hooks/content/50-flatpak-trigger", triggerHook, 0o755)
	args := []string{"--product", "demo", "-P", "es", "master"}

	// Cold: everything comes from the server.
	out, code := p.eib(args...)
	if code != 0 {
		t.Fatalf("build exited %d:\n%s", code, tail(out, 60))
	}
	m := contentTime.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the build log does not time the flatpak content:\n%s", tail(out, 60))
	}
	cold, coldBytes := m[1], repo.srv.content.Load()
	t.Logf("content stage cold: %s, %d bytes of objects and deltas served (%d bytes of metadata)", cold, coldBytes, repo.srv.meta.Load())
	if coldBytes < 300*1024 {
		t.Errorf("the cold build fetched %d bytes of content: want at least the runtime's 300 KiB", coldBytes)
	}

	// What the image holds: its /var/lib/flatpak, read offline.
	raw, off := rootPartition(t, p.Outdir())
	dir := dumpFromImage(t, raw, off, "/ostree/deploy/eib-demo/var/lib/flatpak")
	if ents, _ := filepath.Glob(filepath.Join(dir, ".eib*")); len(ents) != 0 {
		t.Errorf("eib's scratch files are in the image: %v", ents)
	}
	inst := flatpak.Installation{Dir: dir, Scratch: t.TempDir()}
	list, err := inst.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	installed := map[string]flatpak.Installed{}
	served := flatpak.Installation{Dir: repo.Dir} // its repo/ is the served repo
	for _, it := range list {
		refs = append(refs, it.Ref)
		installed[it.Ref] = it
		if it.Remote != "eibtest" {
			t.Errorf("%s installed from %q, want eibtest", it.Ref, it.Remote)
		}
		want, err := served.RevParse(t.Context(), it.Ref)
		if err != nil || it.Commit != want {
			t.Errorf("%s: commit %s installed, the remote has %s (%v)", it.Ref, it.Commit, want, err)
		}
	}
	sort.Strings(refs)
	wantRefs := []string{
		"app/org.eib.test.Clock/x86_64/stable", "app/org.eib.test.Hello/x86_64/stable",
		"runtime/org.eib.test.Hello.Locale/x86_64/stable", "runtime/org.eib.test.Platform/x86_64/1",
	}
	if strings.Join(refs, " ") != strings.Join(wantRefs, " ") {
		t.Errorf("installed refs %v, want %v (no excluded Codecs, no Unwanted)", refs, wantRefs)
	}
	remotes, err := inst.Remotes(t.Context())
	if err != nil || len(remotes) != 1 || remotes["eibtest"] != deployURL {
		t.Errorf("the image's remotes %v (%v), want eibtest at %s", remotes, err, deployURL)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "repo", "config"))
	if err != nil || !strings.Contains(string(cfg), "xa.prio=5") || !strings.Contains(string(cfg), "xa.title=eib test apps") {
		t.Errorf("the image's repo config lacks the remote's prio and title (%v):\n%s", err, cfg)
	}
	for _, k := range []string{"xa.languages", "xa.masked", "eib-flatpak-cache"} {
		if strings.Contains(string(cfg), k) {
			t.Errorf("the image's repo config keeps the build's %s:\n%s", k, cfg)
		}
	}
	locales, _ := os.ReadDir(filepath.Join(dir, "runtime", "org.eib.test.Hello.Locale", "x86_64", "stable", "active", "files"))
	var langs []string
	for _, e := range locales {
		if e.IsDir() {
			langs = append(langs, e.Name())
		}
	}
	if strings.Join(langs, " ") != "en es" {
		t.Errorf("locales installed: %v, want en es (fr not chosen)", langs)
	}
	if _, err := os.Stat(filepath.Join(dir, "app", "org.eib.test.Hello", "x86_64", "stable", "active", "files", "bin", "org.eib.test.Hello")); err != nil {
		t.Errorf("the app's files are not deployed: %v", err)
	}
	if ran, err := os.ReadFile(filepath.Join(dir, "eib-test-trigger-ran")); err != nil || string(ran) != "/var/lib/flatpak\norg.eib.test.Clock\norg.eib.test.Hello\n" {
		t.Errorf("the OS's trigger did not run on the installed apps: %q (%v)", ran, err)
	}
	if !strings.Contains(out, "flatpak: ran the OS's trigger /usr/share/flatpak/triggers/eib-test.trigger on /var/lib/flatpak") {
		t.Errorf("the build log does not say the OS's trigger ran:\n%s", tail(out, 60))
	}

	// The manifest says the same.
	fp, _ := p.Manifest()["flatpak"].(map[string]any)
	apps, _ := fp["apps"].(map[string]any)
	runtimes, _ := fp["runtimes"].(map[string]any)
	if len(apps)+len(runtimes) != len(wantRefs) {
		t.Errorf("manifest flatpak apps %d + runtimes %d, want %d refs: %v", len(apps), len(runtimes), len(wantRefs), fp)
	}
	for _, ref := range wantRefs {
		parts := strings.SplitN(ref, "/", 2)
		group := runtimes
		if parts[0] == "app" {
			group = apps
		}
		e, _ := group[parts[1]].(map[string]any)
		size, _ := e["size"].(float64)
		if e["commit"] != installed[ref].Commit || e["remote"] != "eibtest" || e["ref"] != ref || int64(size) != installed[ref].InstalledSize || size <= 0 {
			t.Errorf("manifest entry of %s = %v, installed %+v", ref, e, installed[ref])
		}
	}
	if rm, _ := fp["remotes"].(map[string]any); rm == nil || rm["eibtest"].(map[string]any)["url"] != deployURL {
		t.Errorf("manifest flatpak remotes = %v, want eibtest at %s", fp["remotes"], deployURL)
	}
	if rt := apps["org.eib.test.Hello/x86_64/stable"].(map[string]any)["runtime"]; rt != "org.eib.test.Platform/x86_64/1" {
		t.Errorf("manifest runtime of Hello = %v", rt)
	}

	// --show-apps: the sizes the remote announces are what was installed
	// (the locale extension aside: it shows at its full size). --trim 1
	// removes the app with the smallest saving, Clock (its excluded
	// codecs extension is not counted).
	out, code = p.eib(append([]string{"--show-apps"}, args...)...)
	if code != 0 {
		t.Fatalf("--show-apps exited %d:\n%s", code, out)
	}
	shown := map[string][2]int64{}
	row := regexp.MustCompile(`(?m)^\s*((?:app|runtime)/\S+)\s+eibtest\s+(\d+)\s+(\d+)$`)
	for _, r := range row.FindAllStringSubmatch(out, -1) {
		dl, _ := strconv.ParseInt(r[2], 10, 64)
		in, _ := strconv.ParseInt(r[3], 10, 64)
		shown[r[1]] = [2]int64{dl, in}
	}
	for _, ref := range []string{wantRefs[0], wantRefs[1], wantRefs[3]} {
		s, ok := shown[ref]
		want := installed[ref]
		if !ok || math.Abs(float64(s[1]-want.InstalledSize)) > 0.01*float64(want.InstalledSize) ||
			math.Abs(float64(s[0]-want.DownloadSize)) > 0.01*float64(want.DownloadSize) {
			t.Errorf("--show-apps %s: download, installed %v; installed in the image: %d, %d\n%s", ref, s, want.DownloadSize, want.InstalledSize, out)
		}
	}
	if _, ok := shown["app/org.eib.test.Unwanted/x86_64/stable"]; ok {
		t.Errorf("--show-apps lists the app the personality removed:\n%s", out)
	}
	out, code = p.eib(append([]string{"--show-apps", "--group-by", "runtime", "--trim", "1"}, args...)...)
	if code != 0 || !regexp.MustCompile(`(?m)^runtime/org.eib.test.Platform/x86_64/1\s+eibtest.*\n\s+app/org.eib.test.Clock`).MatchString(out) ||
		!regexp.MustCompile(`remove \(\d+ bytes\):\n  app/org.eib.test.Clock/x86_64/stable \(remote eibtest\)\n`).MatchString(out) ||
		strings.Contains(out, "Codecs") {
		t.Errorf("--show-apps --group-by runtime --trim 1: exit %d\n%s", code, out)
	}

	// Warm: nothing changed, nothing but metadata is downloaded.
	repo.srv.content.Store(0)
	repo.srv.meta.Store(0)
	out, code = p.eib(args...)
	if code != 0 {
		t.Fatalf("second build exited %d:\n%s", code, tail(out, 60))
	}
	m = contentTime.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the second build log does not time the flatpak content:\n%s", tail(out, 60))
	}
	t.Logf("content stage warm: %s, %d bytes of objects and deltas served (%d bytes of metadata)", m[1], repo.srv.content.Load(), repo.srv.meta.Load())
	if n := repo.srv.content.Load(); n != 0 {
		t.Errorf("the warm build downloaded %d bytes of objects or deltas, want none", n)
	}
}
