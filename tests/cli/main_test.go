// Package cli tests the eib command itself through the real binary: the
// options, --show-config, --explain, exit codes and the messages of
// configuration errors.
package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var (
	eibBin  string // the eib binary built for these tests
	srcRoot string // the eib tree (repository root)
	fixture string // tests/cli/testdata/tree: a small srcdir
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	srcRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	fixture = filepath.Join(srcRoot, "tests", "cli", "testdata", "tree")
	dir, err := os.MkdirTemp("", "eib-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eibBin = filepath.Join(dir, "eib")
	cmd := exec.Command("go", "build", "-o", eibBin, "./cmd/eib")
	cmd.Dir = srcRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building eib: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of eib.
type result struct {
	code           int
	stdout, stderr string
}

// eib runs the binary with the given srcdir, a sysconfdir that does not
// exist and a temporary lock file.
func eib(t testing.TB, src string, args ...string) result {
	t.Helper()
	return eibEnv(t, []string{"EIB_SRCDIR=" + src}, args...)
}

func eibEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(eibBin, args...)
	cmd.Env = append(os.Environ(), "EIB_SYSCONFDIR=/nonexistent/etc-eib", "EIB_LOCK_FILE="+filepath.Join(tmp, "eib.lock"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = tmp
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running eib: %v", err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// writeFiles writes files (path relative to root -> content).
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
