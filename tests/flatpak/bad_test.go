package flatpak

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadRemotesFailTheContentStage: an app no remote has, a remote that
// does not answer and a remote whose signatures no trusted key verifies
// each fail the image stage while pulling the content, with an error
// naming the remote and the ref; no image is published, and no mount or
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
