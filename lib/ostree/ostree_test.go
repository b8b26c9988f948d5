package ostree_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
)

func serveRepo(t *testing.T, ref string, signer *ostree.Signer) (url, commit string) {
	t.Helper()
	dir, commit := ostreetest.ArchiveRepo(t, ref, signer)
	return ostreetest.Serve(t, dir), commit
}

func TestPullDeployAndFindDeploymentFromBootEntries(t *testing.T) {
	ostreetest.Need(t, "ostree", "chattr")
	ctx := context.Background()
	signer, pub := ostreetest.Key(t, "good")
	const ref = "eibtest/amd64/master"
	url, commit := serveRepo(t, ref, signer)

	cache, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "cache"), ostree.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	if !cache.Exists() {
		t.Fatal("Exists() = false after Init")
	}
	rem := ostree.Remote{Name: "eib", URL: url, Branches: []string{ref}, GPGVerify: true, GPGVerifySummary: true, Keys: []string{pub}}
	if err := cache.AddRemote(ctx, rem); err != nil {
		t.Fatal(err)
	}
	// Adding it again replaces it (a new port every build).
	if err := cache.AddRemote(ctx, rem); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	if err := cache.Pull(ctx, ostree.Pull{Remote: "eib", Refs: []string{ref}, Mirror: true, Attempts: 2, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	got, err := cache.RevParse(ctx, ref)
	if err != nil || got != commit {
		t.Fatalf("RevParse(%s) = %q, %v; want %s", ref, got, err, commit)
	}
	if v, err := cache.CommitVersion(ctx, ref); err != nil || v != "1.2.3" {
		t.Fatalf("CommitVersion = %q, %v", v, err)
	}
	if err := cache.CreateRef(ctx, "eibtest/amd64/deploy", commit); err != nil {
		t.Fatal(err)
	}
	if err := cache.UpdateSummary(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := cache.PruneRefsOnly(ctx); err != nil {
		t.Fatal(err)
	}

	sysroot, err := ostree.InitFS(ctx, filepath.Join(t.TempDir(), "sysroot"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hostclean.RemoveAll(sysroot.Path, nil); err != nil {
			t.Error(err)
		}
	})
	if err := sysroot.OSInit(ctx, "eibtest"); err != nil {
		t.Fatal(err)
	}
	srepo := sysroot.Repo()
	if err := srepo.AddRemote(ctx, ostree.Remote{Name: "eib", URL: "https://example.invalid/", Branches: []string{"eibtest/amd64/deploy"}, GPGVerify: true}); err != nil {
		t.Fatal(err)
	}
	if err := srepo.PullLocal(ctx, cache.Path, "eib", "eibtest/amd64/deploy"); err != nil {
		t.Fatal(err)
	}
	if err := srepo.ConfigSet(ctx, "sysroot.bootloader", "none"); err != nil {
		t.Fatal(err)
	}
	dep, err := sysroot.Deploy(ctx, ostree.Deploy{OS: "eibtest", Refspec: "eib:eibtest/amd64/deploy",
		Kargs: []string{"root=LABEL=ostree", "console=tty0", "console=ttyS0"}})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Checksum != commit || dep.OS != "eibtest" || dep.Serial != 0 {
		t.Fatalf("deployment %+v, want commit %s serial 0", dep, commit)
	}
	if !strings.Contains(dep.Options, "console=tty0 console=ttyS0") {
		t.Errorf("boot options %q lost a repeated console= argument", dep.Options)
	}
	if _, err := os.Stat(filepath.Join(dep.Path, "usr/lib/modules/6.0.0-test/vmlinuz")); err != nil {
		t.Error(err)
	}
	if b, err := os.ReadFile(filepath.Join(dep.Path, "etc/hostname")); err != nil || string(b) != "eibtest\n" {
		t.Errorf("/etc merge: etc/hostname = %q, %v", b, err)
	}
	if url, err := srepo.ConfigGet(ctx, `remote "eib".url`); err != nil || url != "https://example.invalid/" {
		t.Errorf("deployed remote url = %q, %v", url, err)
	}
	st, err := os.Stat(filepath.Join(dep.Path, "usr/share/doc/big"))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Sys().(*syscall.Stat_t).Nlink; n < 2 {
		t.Errorf("deployed file has %d links, want a hardlink to the repo object", n)
	}
}

func TestPullFailuresNameTheCauseAndAreNotRetried(t *testing.T) {
	ostreetest.Need(t, "ostree")
	ctx := context.Background()
	good, goodPub := ostreetest.Key(t, "good")
	other, _ := ostreetest.Key(t, "other")
	const ref = "eibtest/amd64/master"
	signedURL, _ := serveRepo(t, ref, good)
	otherURL, _ := serveRepo(t, ref, other)
	unsignedURL, _ := serveRepo(t, ref, nil)
	deadURL := ostreetest.DeadURL(t)

	for _, tc := range []struct {
		name, url, ref, want string
	}{
		{"unknown key", otherURL, ref, "public key not found"},
		{"unsigned", unsignedURL, ref, "signature"},
		{"wrong ref", signedURL, "eibtest/amd64/nope", "nope"},
		{"unreachable", deadURL, ref, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "cache"), ostree.ModeBare)
			if err != nil {
				t.Fatal(err)
			}
			if err := cache.AddRemote(ctx, ostree.Remote{Name: "eib", URL: tc.url, Branches: []string{tc.ref},
				GPGVerify: true, GPGVerifySummary: false, Keys: []string{goodPub}}); err != nil {
				t.Fatal(err)
			}
			var progress strings.Builder
			err = cache.Pull(ctx, ostree.Pull{Remote: "eib", Refs: []string{tc.ref}, Mirror: true, Attempts: 2, RetryDelay: 1, Progress: &progress})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			var oe *ostree.Error
			if !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ostree pull") {
				t.Fatalf("error %q: want an ostree pull error containing %q", err, tc.want)
			}
			t.Logf("error: %v", err)
			retried := strings.Contains(progress.String(), "retrying")
			if wantRetry := tc.name == "unreachable"; retried != wantRetry {
				t.Errorf("retried = %v, want %v (progress %q)", retried, wantRetry, progress.String())
			}
			if refs, _ := cache.Refs(ctx); len(refs) != 0 {
				t.Errorf("failed pull left refs %v", refs)
			}
		})
	}
}

// TestPullOffTerminalPrintsPeriodicProgressLines: when progress does not
// go to a terminal, a slow pull reports a line every ProgressEvery and the
// transfer summary at the end.
func TestPullOffTerminalPrintsPeriodicProgressLines(t *testing.T) {
	ostreetest.Need(t, "ostree")
	ctx := context.Background()
	const ref = "eibtest/amd64/master"
	dir, commit := ostreetest.ArchiveRepo(t, ref, nil)
	files := http.FileServer(http.Dir(dir))
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	cache, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "cache"), ostree.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.AddRemote(ctx, ostree.Remote{Name: "eib", URL: slow.URL, Branches: []string{ref}}); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	if err := cache.Pull(ctx, ostree.Pull{Remote: "eib", Refs: []string{ref}, Mirror: true,
		Progress: &progress, ProgressEvery: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	out := progress.String()
	if !strings.Contains(out, "pulling eib "+ref+": ") || !strings.Contains(out, "MiB received") {
		t.Errorf("no periodic progress line in %q", out)
	}
	if !strings.Contains(out, "transferred in") {
		t.Errorf("no transfer summary in %q", out)
	}
	if got, _ := cache.RevParse(ctx, ref); got != commit {
		t.Errorf("pulled %q, want %s", got, commit)
	}
}
