package flatpak

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadRemotesFailTheContentStage: an app no remote has, a remote that
// does not answer, a remote whose signatures no trusted key verifies, an
// app with extra data not allowed, an app whose runtime is excluded and an
// excluded app listed each fail the image stage while pulling the
// content, with an error naming the remote and the ref; no image is published, and no mount or
// process is left (newProject's cleanup).
func TestBadRemotesFailTheContentStage(t *testing.T) {
	repo := newTestRepo(t)
	// A port that was free: nothing listens there.
	deadURL, _, stopDead := serve(t, t.TempDir())
	stopDead()
	for _, tc := range []struct {
		name, remote string
		want         []string
	}{
		{"missing app", "[flatpak-remote-eibtest]\nrepo_file = @KEYED@\napps_add = org.eib.test.Hello org.eib.test.Nope\n",
			[]string{"no remote has app org.eib.test.Nope (remote eibtest, " + repo.URL + ")"}},
		{"unreachable remote", "[flatpak-remote-gone]\nrepo_file = @KEYED@\nurl = " + deadURL + "\napps_add = org.eib.test.Hello\n",
			[]string{"[flatpak-remote-gone] listing the refs of remote gone (" + deadURL + ")", "wanted for app org.eib.test.Hello"}},
		{"no trusted key", "[flatpak-remote-eibtest]\nurl = " + repo.URL + "\napps_add = org.eib.test.Clock\n",
			[]string{"[flatpak-remote-eibtest] adding remote eibtest (" + repo.URL + ")", "public key not found", "wanted for app org.eib.test.Clock"}},
		{"extra data not allowed", "[flatpak-remote-eibtest]\nrepo_file = @KEYED@\napps_add = org.eib.test.Proprietary\n",
			[]string{"before pulling eibtest:app/org.eib.test.Proprietary/x86_64/stable", "app/org.eib.test.Proprietary/x86_64/stable of remote eibtest has extra data", "[flatpak-remote-eibtest] allow_extra_data does not list org.eib.test.Proprietary"}},
		{"excluded dependency", "[flatpak-remote-eibtest]\nrepo_file = @KEYED@\napps_add = org.eib.test.Clock\nexclude_add = org.eib.test.Platform\n",
			[]string{"before pulling eibtest:app/org.eib.test.Clock/x86_64/stable", "runtime/org.eib.test.Platform/x86_64/1 of remote eibtest is excluded ([flatpak-remote-eibtest] exclude)"}},
		{"excluded app", "[flatpak-remote-eibtest]\nrepo_file = @KEYED@\napps_add = org.eib.test.Clock\nexclude_add = org.eib.test.Clock\n",
			[]string{"[flatpak-remote-eibtest] apps: app/org.eib.test.Clock/x86_64/stable of remote eibtest is excluded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProject(t, "")
			keyed := p.Write("keyed.flatpakrepo", repo.repoFile(true), 0o644)
			p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+
				strings.ReplaceAll(tc.remote, "@KEYED@", keyed), 0o644)
			out, code := p.eib("--product", "demo", "master")
			if code != 2 {
				t.Fatalf("exit %d, want 2 (the build failed):\n%s", code, tail(out, 40))
			}
			for _, w := range append(tc.want, "build failed in stage image", "flatpak content:") {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, tail(out, 30))
				}
			}
			files, _ := filepath.Glob(filepath.Join(p.pubs, "*"))
			for _, f := range files {
				if !strings.HasSuffix(f, ".failed.build.txt") {
					t.Errorf("published %s: a failed build publishes only its log", f)
				}
			}
			if _, err := os.Stat(filepath.Join(p.Cache, "build", "sysroot")); !os.IsNotExist(err) {
				t.Errorf("the sysroot is left (%v)", err)
			}
		})
	}
}

// TestKeyOfAnEarlierBuildDoesNotVerify: the content cache keeps its
// remotes between builds, but not their keys: a build whose remote lost
// its key fails in the content stage, as a first build would.
func TestKeyOfAnEarlierBuildDoesNotVerify(t *testing.T) {
	repo := newTestRepo(t)
	p := newProject(t, "")
	keyed := p.Write("keyed.flatpakrepo", repo.repoFile(true), 0o644)
	conf := func(remote string) {
		p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+
			"[flatpak-remote-eibtest]\n"+remote+"apps_add = org.eib.test.Clock\n", 0o644)
	}
	conf("repo_file = " + keyed + "\n")
	if out, code := p.eib("--product", "demo", "--until", "image", "master"); code != 0 {
		t.Fatalf("first build exited %d:\n%s", code, tail(out, 30))
	}
	conf("url = " + repo.URL + "\n")
	out, code := p.eib("--product", "demo", "--until", "image", "master")
	if code != 2 || !strings.Contains(out, "flatpak content: [flatpak-remote-eibtest]") || !strings.Contains(out, "public key not found") {
		t.Errorf("a build without the key exited %d:\n%s", code, tail(out, 20))
	}
}
