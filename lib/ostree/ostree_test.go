package ostree

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install %s)", tool, tool)
		}
	}
}

// testKey generates a signing key in a fresh GPG home and returns the
// signer and the exported public key file.
func testKey(t *testing.T, name string) (*Signer, string) {
	t.Helper()
	need(t, "gpg", "gpgconf")
	// A short home path: gpg-agent's socket path must fit in 108 bytes.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	gpg := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("gpg", append([]string{"--batch", "--homedir", home}, args...)...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("gpg %v: %s", args, ee.Stderr)
			}
			t.Fatal(err)
		}
		return string(out)
	}
	gpg("--passphrase", "", "--quick-gen-key", name+" <"+name+"@example.invalid>", "ed25519", "sign", "never")
	var keyID string
	for _, line := range strings.Split(gpg("--with-colons", "--list-keys"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			keyID = f[9]
			break
		}
	}
	if keyID == "" {
		t.Fatal("no key generated")
	}
	pub := filepath.Join(t.TempDir(), name+".asc")
	if err := os.WriteFile(pub, []byte(gpg("--armor", "--export", keyID)), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Signer{KeyID: keyID, Homedir: home}, pub
}

// testTree writes a tiny OS tree: a kernel, os-release, /usr/etc and the
// top-level directories a deployment needs.
func testTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"usr/lib/modules/6.0.0-test/vmlinuz": "not really a kernel\n",
		"usr/lib/os-release":                 "ID=eibtest\nNAME=\"eib test\"\n",
		"usr/etc/hostname":                   "eibtest\n",
		"usr/share/doc/big":                  strings.Repeat("x", 100000),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var", "sysroot", "boot"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../lib/os-release", filepath.Join(dir, "usr/etc/os-release")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveRepo makes an archive repo with one commit on ref and serves it.
func serveRepo(t *testing.T, ref string, signer *Signer) (url, commit string) {
	t.Helper()
	ctx := context.Background()
	repo, err := Init(ctx, filepath.Join(t.TempDir(), "repo"), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	commit, err = repo.Commit(ctx, Commit{Branch: ref, Tree: testTree(t), Subject: "test", Version: "1.2.3", Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.UpdateSummary(ctx, signer); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.Path)))
	t.Cleanup(srv.Close)
	return srv.URL, commit
}

func TestPullDeployAndFindDeploymentFromBootEntries(t *testing.T) {
	need(t, "ostree", "chattr")
	ctx := context.Background()
	signer, pub := testKey(t, "good")
	const ref = "eibtest/amd64/master"
	url, commit := serveRepo(t, ref, signer)

	cache, err := Init(ctx, filepath.Join(t.TempDir(), "cache"), ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	if !cache.Exists() {
		t.Fatal("Exists() = false after Init")
	}
	rem := Remote{Name: "eib", URL: url, Branches: []string{ref}, GPGVerify: true, GPGVerifySummary: true, Keys: []string{pub}}
	if err := cache.AddRemote(ctx, rem); err != nil {
		t.Fatal(err)
	}
	// Adding it again replaces it (a new port every build).
	if err := cache.AddRemote(ctx, rem); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	if err := cache.Pull(ctx, Pull{Remote: "eib", Refs: []string{ref}, Mirror: true, Attempts: 2, Progress: &progress}); err != nil {
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

	sysroot, err := InitFS(ctx, filepath.Join(t.TempDir(), "sysroot"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Remove(sysroot.Path); err != nil {
			t.Error(err)
		}
	})
	if err := sysroot.OSInit(ctx, "eibtest"); err != nil {
		t.Fatal(err)
	}
	srepo := sysroot.Repo()
	if err := srepo.AddRemote(ctx, Remote{Name: "eib", URL: "https://example.invalid/", Branches: []string{"eibtest/amd64/deploy"}, GPGVerify: true}); err != nil {
		t.Fatal(err)
	}
	if err := srepo.PullLocal(ctx, cache.Path, "eib", "eibtest/amd64/deploy"); err != nil {
		t.Fatal(err)
	}
	if err := srepo.ConfigSet(ctx, "sysroot.bootloader", "none"); err != nil {
		t.Fatal(err)
	}
	dep, err := sysroot.Deploy(ctx, Deploy{OS: "eibtest", Refspec: "eib:eibtest/amd64/deploy",
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
	need(t, "ostree")
	ctx := context.Background()
	good, goodPub := testKey(t, "good")
	other, _ := testKey(t, "other")
	const ref = "eibtest/amd64/master"
	signedURL, _ := serveRepo(t, ref, good)
	otherURL, _ := serveRepo(t, ref, other)
	unsignedURL, _ := serveRepo(t, ref, nil)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	for _, tc := range []struct {
		name, url, ref, want string
	}{
		{"unknown key", otherURL, ref, "public key not found"},
		{"unsigned", unsignedURL, ref, "signature"},
		{"wrong ref", signedURL, "eibtest/amd64/nope", "nope"},
		{"unreachable", deadURL, ref, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, err := Init(ctx, filepath.Join(t.TempDir(), "cache"), ModeBare)
			if err != nil {
				t.Fatal(err)
			}
			if err := cache.AddRemote(ctx, Remote{Name: "eib", URL: tc.url, Branches: []string{tc.ref},
				GPGVerify: true, GPGVerifySummary: false, Keys: []string{goodPub}}); err != nil {
				t.Fatal(err)
			}
			var progress strings.Builder
			err = cache.Pull(ctx, Pull{Remote: "eib", Refs: []string{tc.ref}, Mirror: true, Attempts: 2, RetryDelay: 1, Progress: &progress})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			var oe *Error
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
