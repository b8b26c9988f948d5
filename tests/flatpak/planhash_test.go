package flatpak

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// newCommitRepo copies the test repository and gives one ref of the copy
// a new commit (the same content re-exported: flatpak build-commit-from
// --force), the copy's summary signed by a key of its own; it returns
// the copy's directory (serve it) and that key (binary).
func newCommitRepo(t *testing.T, repo testRepo, ref string) (string, []byte) {
	t.Helper()
	work := t.TempDir()
	gpgHome := filepath.Join(work, "gpg")
	if err := os.Mkdir(gpgHome, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "gpg", "--batch", "--homedir", gpgHome, "--passphrase", "", "--quick-gen-key", "eib plan hash test <hash@eib.invalid>", "rsa2048", "sign", "never")
	var fpr string
	for _, l := range strings.Split(run(t, "gpg", "--homedir", gpgHome, "--list-keys", "--with-colons"), "\n") {
		if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		t.Fatal("no fingerprint of the new key")
	}
	key := []byte(run(t, "gpg", "--homedir", gpgHome, "--export", fpr))
	dir := filepath.Join(work, "repo")
	run(t, "cp", "-a", filepath.Join(repo.Dir, "repo"), dir)
	sign := []string{"--gpg-sign=" + fpr, "--gpg-homedir=" + gpgHome}
	run(t, "flatpak", append(append([]string{"build-commit-from", "--force", "--no-update-summary", "--timestamp=NOW", "--src-ref=" + ref}, sign...), dir, ref)...)
	run(t, "flatpak", append(append([]string{"build-update-repo"}, sign...), dir)...)
	return dir, key
}

// matrix runs `eib matrix --localdir LOCAL args...` in the project's
// environment, returning its combined output and exit code.
func (p *project) matrix(args ...string) (string, int) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, eibBin, append([]string{"matrix", "--localdir", p.Local}, args...)...)
	cmd.Env = p.Env(srcRoot)
	out, err := cmd.CombinedOutput()
	return string(out), harness.Code(p.T, err, cmd)
}

// matrixHashes runs `eib matrix --hash --json` and returns each variant's
// plan hash and its eib arguments.
func matrixHashes(t *testing.T, p *project) (map[string]string, map[string][]string) {
	t.Helper()
	out, code := p.matrix("--hash", "--json")
	if code != 0 {
		t.Fatalf("eib matrix --hash exited %d:\n%s", code, out)
	}
	var rows []struct {
		Name     string   `json:"name"`
		Args     []string `json:"args"`
		PlanHash string   `json:"plan_hash"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	hashes, args := map[string]string{}, map[string][]string{}
	for _, r := range rows {
		if !strings.HasPrefix(r.PlanHash, "sha256:") {
			t.Fatalf("variant %s: plan hash %q", r.Name, r.PlanHash)
		}
		hashes[r.Name], args[r.Name] = r.PlanHash, r.Args
	}
	return hashes, args
}

// TestPlanHashCoversFlatpakCommits: the plan hash covers the commit of
// every Flatpak ref a variant installs (its apps, their runtime and
// extensions), read from the remote's summary. Three variants of the
// demo product: hello (Hello), clock (Hello and Clock), nofp (Flatpak
// disabled). A new commit of Clock on the remote changes the hash of
// clock only; the manifest of a build records the hash `eib matrix
// --hash` gives when nothing changed, with the commits of the refs the
// build installed.
func TestPlanHashCoversFlatpakCommits(t *testing.T) {
	const clock = "app/org.eib.test.Clock/x86_64/stable"
	repo := newTestRepo(t)
	p := newProject(t, "")
	copyDir, newKey := newCommitRepo(t, repo, clock)
	copyURL, _, _ := serve(t, copyDir)

	// The repo file names the served repository; its GPGKey holds both
	// keys, so that only the URL differs between the two.
	keys := append(append([]byte(nil), repo.key...), newKey...)
	repoFile := func(url string) string {
		r := repo
		r.URL, r.key = url, keys
		return r.repoFile(true)
	}
	rf := p.Write("eibtest.flatpakrepo", repoFile(repo.URL), 0o644)
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+
		"[flatpak]\nlocales_add = en\n\n[flatpak-remote-eibtest]\nrepo_file = "+rf+"\n"+
		"apps_add = org.eib.test.Hello\nexclude_add = org.eib.test.Clock.Codecs\n", 0o644)
	p.Write("config/personality/hello.ini", "# Hello only\n", 0o644)
	p.Write("config/personality/clock.ini", "[flatpak-remote-eibtest]\napps_add = org.eib.test.Clock\n", 0o644)
	p.Write("config/personality/nofp.ini", "[flatpak]\nenable = false\n", 0o644)
	p.Write("config/matrix.ini", "[matrix demo]\nproducts = demo\nbranches = master\narches = amd64\npersonalities = hello clock nofp\n", 0o644)

	base, args := matrixHashes(t, p)
	names := make([]string, 0, len(base))
	for n := range base {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(base) != 3 {
		t.Fatalf("matrix variants %v, want 3", names)
	}
	variant := func(personality string) string { return "demo-master-amd64-amd64-" + personality }
	if base[variant("hello")] == base[variant("clock")] || base[variant("hello")] == base[variant("nofp")] {
		t.Errorf("variants share a hash: %v", base)
	}
	again, _ := matrixHashes(t, p)
	if !maps.Equal(base, again) {
		t.Fatalf("nothing changed, the hashes did: %v then %v", base, again)
	}

	// The copy: Clock has a new commit, nothing else.
	p.Write("eibtest.flatpakrepo", repoFile(copyURL), 0o644)
	moved, _ := matrixHashes(t, p)
	var changed []string
	for _, n := range names {
		if moved[n] != base[n] {
			changed = append(changed, n)
		}
	}
	if want := []string{variant("clock")}; !slices.Equal(changed, want) {
		t.Errorf("a new commit of Clock changed the hashes of %v, want %v", changed, want)
	}

	// Back to the original repository: a build of clock records in its
	// manifest the hash the matrix gives, and the commits it covers are
	// those of the refs installed.
	p.Write("eibtest.flatpakrepo", repoFile(repo.URL), 0o644)
	out, code := p.eib(args[variant("clock")]...)
	if code != 0 {
		t.Fatalf("build of %s exited %d:\n%s", variant("clock"), code, tail(out, 60))
	}
	m := p.Manifest()
	ph, _ := m["plan_hash"].(map[string]any)
	if got := ph["hash"]; got != base[variant("clock")] {
		t.Errorf("manifest plan_hash %v, eib matrix --hash %s", got, base[variant("clock")])
	}
	fp, _ := ph["flatpak"].(map[string]any)
	served := filepath.Join(repo.Dir, "repo")
	var keysCovered []string
	for k, c := range fp {
		keysCovered = append(keysCovered, k)
		ref := strings.TrimPrefix(k, "eibtest:")
		want := strings.TrimSpace(run(t, "ostree", "rev-parse", "--repo="+served, ref))
		if c != want {
			t.Errorf("plan_hash flatpak %s = %v, the remote has %s", k, c, want)
		}
	}
	sort.Strings(keysCovered)
	wantKeys := []string{"eibtest:" + clock, "eibtest:app/org.eib.test.Hello/x86_64/stable",
		"eibtest:runtime/org.eib.test.Hello.Locale/x86_64/stable", "eibtest:runtime/org.eib.test.Platform/x86_64/1"}
	if !slices.Equal(keysCovered, wantKeys) {
		t.Errorf("plan_hash flatpak covers %v, want %v (the installed refs: no excluded Codecs)", keysCovered, wantKeys)
	}
	// The commits the build installed (the manifest's flatpak section).
	installed := map[string]any{}
	mfp, _ := m["flatpak"].(map[string]any)
	for _, kind := range []string{"apps", "runtimes"} {
		entries, _ := mfp[kind].(map[string]any)
		for _, e := range entries {
			e, _ := e.(map[string]any)
			installed[fmt.Sprintf("%v:%v", e["remote"], e["ref"])] = e["commit"]
		}
	}
	if !maps.Equal(installed, fp) {
		t.Errorf("the manifest's flatpak section installed %v, the plan hash covers %v", installed, fp)
	}
}

// TestPlanHashFlatpakErrorNamesTheRemote: a remote whose summary cannot
// be read fails eib matrix --hash, naming the remote's section.
func TestPlanHashFlatpakErrorNamesTheRemote(t *testing.T) {
	p := newProject(t, "[flatpak-remote-gone]\nurl = http://127.0.0.1:9/\napps_add = org.eib.test.Hello\n")
	p.Write("config/matrix.ini", "[matrix demo]\nproducts = demo\nbranches = master\narches = amd64\n", 0o644)
	out, code := p.matrix("--hash")
	if code == 0 || !strings.Contains(out, "[flatpak-remote-gone]") || !strings.Contains(out, "remote gone") {
		t.Errorf("eib matrix --hash exited %d, want an error naming [flatpak-remote-gone] and remote gone:\n%s", code, out)
	}
	t.Logf("%s", out)
}
