package ostree

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/ostree/ostreetest"
	"github.com/eib-builder/eib/tests/harness"
)

// TestCorruptCacheObjectIsRepairedOrStopsTheBuild fills eib's cache repo
// with a build of the ostree stage alone, flips a byte of the cache's
// object of /usr/lib/os-release (a real object file, as a bad disk or an
// in-place edit through a hardlink would), and builds again: the image
// stage finds the object as it copies the commit into the sysroot and
// pulls it again from the server, so the deployment gets the right
// bytes; when the server serves it corrupt too, the build fails in stage
// image naming the object and its path, before any image hook or output.
func TestCorruptCacheObjectIsRepairedOrStopsTheBuild(t *testing.T) {
	const ref = "eibtest/amd64/master"
	for _, tc := range []struct {
		name          string
		serverCorrupt bool
	}{
		{name: "repaired from the server"},
		{name: "server serves it corrupt too", serverCorrupt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, pub := ostreetest.Key(t, "good")
			archive, commit := ostreetest.ArchiveRepo(t, ref, signer)
			srv := ostreetest.ServeCounting(t, archive)
			p := newProject(t, "[content]\nhooks =\n\n[image]\nhooks = 50-record 99-stop\n")
			p.trust(pub, "good.asc")
			p.Write("config/product/demo.ini", "[ostree]\npull_url = "+srv.URL+"\nref = "+ref+"\ndeploy_url =\n", 0o644)
			p.Write("hooks/image/50-record", `cat "$OSTREE_DEPLOYMENT/usr/lib/os-release" > "$EIB_TMPDIR/record.txt"`+"\n", 0o644)
			p.Write("hooks/image/99-stop", "echo EIB-TEST-STOP\nexit 3\n", 0o644)

			// Fill the cache.
			p.Write("buildscript", "ostree\n", 0o644)
			if code, _, stderr := p.run(); code != 0 {
				t.Fatalf("filling the cache: eib exited %d: %s", code, harness.LastLine(stderr))
			}
			cache := filepath.Join(p.Cache, "ostree", "eib-demo")
			object := ostreetest.ObjectOf(t, cache, commit, "/usr/lib/os-release")
			ostreetest.FlipByte(t, cache, object)
			if tc.serverCorrupt {
				ostreetest.FlipByte(t, archive, object)
			}
			_, objURL := ostreetest.ObjectFile(t, archive, object)
			before := srv.Requests(objURL)

			p.Write("buildscript", "ostree\nimage\n", 0o644)
			code, _, stderr := p.run()
			final := harness.LastLine(stderr)
			t.Logf("final line: %s", final)
			log, _ := os.ReadFile(filepath.Join(p.Tmpdir(), "build.txt"))
			if n := srv.Requests(objURL) - before; n != 1 {
				t.Errorf("the object was fetched %d times by the second build, want once (one repair)", n)
			}
			if !tc.serverCorrupt {
				if code != 2 || !strings.Contains(final, "image/99-stop") {
					t.Fatalf("eib exited %d with %q; want 2 at hook image/99-stop, after a repaired deploy", code, final)
				}
				for _, want := range []string{"corrupt file object " + object + " (/usr/lib/os-release in commit " + commit,
					"pulling the commit again from remote eib-demo", "repaired " + cache} {
					if !strings.Contains(string(log), want) {
						t.Errorf("build.txt lacks %q", want)
					}
				}
				rec, err := os.ReadFile(filepath.Join(p.Tmpdir(), "record.txt"))
				if err != nil || string(rec) != "ID=eibtest\nNAME=\"eib test\"\n" {
					t.Errorf("the deployment's os-release is %q (%v)", rec, err)
				}
				return
			}
			if code != 2 || !strings.Contains(final, "build failed in stage image") {
				t.Fatalf("eib exited %d with %q; want 2, failing in stage image", code, final)
			}
			for _, want := range []string{"corrupt file object " + object, "/usr/lib/os-release", "in [ostree] repodir " + cache,
				"the remote serves file object " + object + " corrupt too", "the repository remote eib-demo pulls from must be repaired"} {
				if !strings.Contains(final, want) {
					t.Errorf("final line lacks %q", want)
				}
			}
			if strings.Contains(string(log), "EIB-TEST-STOP") {
				t.Error("an image hook ran after the failed deploy")
			}
			if ents, _ := os.ReadDir(p.Outdir()); len(ents) != 0 {
				t.Errorf("outdir holds %d entries after the failed build", len(ents))
			}
		})
	}
}
