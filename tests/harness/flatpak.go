package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FlatpakRepoCache keeps the test Flatpak repository of
// tests/flatpak/make-repo.sh between runs, one directory per hash of the
// script, so that make test does not rebuild it each time.
const FlatpakRepoCache = "/var/cache/eib-test-flatpak"

// FlatpakTestRepo returns the directory of the test Flatpak repository
// (repo/: the archive repo with a signed summary; key.gpg and key.asc: its
// public key), building it with tests/flatpak/make-repo.sh (Debian's
// flatpak) on first use. The test fails when it cannot be built.
func FlatpakTestRepo(t testing.TB) string {
	t.Helper()
	script := filepath.Join(Src(), "tests", "flatpak", "make-repo.sh")
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	dir := filepath.Join(FlatpakRepoCache, hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, "repo", "summary")); err == nil {
		return dir
	}
	if err := os.MkdirAll(FlatpakRepoCache, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, dir, err, out)
	}
	return dir
}
