// Package ostreetest gives tests real OSTree repositories to pull from:
// the demo OS of helpers/make-demo-repo, small signed or unsigned archive
// repos, GPG keys, and an HTTP server on 127.0.0.1 for any of them.
package ostreetest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
)

// DemoRef is the ref helpers/make-demo-repo commits (amd64, branch master).
const DemoRef = "eib-demo/amd64/master"

// SrcDir is the eib tree this package belongs to.
func SrcDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Need fails the test when a tool is missing: make deps installs every
// one, so a missing tool is a broken set-up, never a reason to skip.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does), which installs it", tool)
		}
	}
}

// Serve publishes dir over HTTP on 127.0.0.1 until the test ends and
// returns its URL (with a trailing slash).
func Serve(t testing.TB, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// DeadURL is a URL on 127.0.0.1 where nothing listens.
func DeadURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/"
	srv.Close()
	return url
}

// Key generates a GPG signing key in a throw-away home (removed, agent
// stopped, when the test ends) and returns the signer and the file of its
// ASCII-armored public key.
func Key(t testing.TB, name string) (*ostree.Signer, string) {
	t.Helper()
	Need(t, "gpg", "gpgconf")
	// A short home: gpg-agent's socket path must fit in 108 bytes.
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
		t.Fatal("gpg generated no key")
	}
	pub := filepath.Join(t.TempDir(), name+".asc")
	if err := os.WriteFile(pub, []byte(gpg("--armor", "--export", keyID)), 0o644); err != nil {
		t.Fatal(err)
	}
	return &ostree.Signer{KeyID: keyID, Homedir: home}, pub
}

// Tree writes a tiny OS tree that `ostree admin deploy` accepts: a
// (fake) kernel, os-release, /usr/etc, a 100 kB file, and the top-level
// directories a deployment is mounted on.
func Tree(t testing.TB) string {
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

// ArchiveRepo makes an archive repo holding one commit of Tree on ref,
// signed by signer (nil: unsigned), with a summary signed the same way.
func ArchiveRepo(t testing.TB, ref string, signer *ostree.Signer) (dir, commit string) {
	t.Helper()
	return ArchiveRepoSigned(t, ref, signer, signer)
}

// ArchiveRepoSigned is ArchiveRepo with the commit signed by
// commitSigner and the summary by summarySigner (either may be nil).
func ArchiveRepoSigned(t testing.TB, ref string, commitSigner, summarySigner *ostree.Signer) (dir, commit string) {
	t.Helper()
	Need(t, "ostree")
	ctx := context.Background()
	repo, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "repo"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	commit, err = repo.Commit(ctx, ostree.Commit{Branch: ref, Tree: Tree(t), Subject: "test", Version: "1.2.3", Signer: commitSigner})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.UpdateSummary(ctx, summarySigner); err != nil {
		t.Fatal(err)
	}
	return repo.Path, commit
}
