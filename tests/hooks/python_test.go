package hooks

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianPython is the interpreter EIB's Python hooks name in their #! line.
const debianPython = "/usr/bin/python3"

// TestEibPythonModule runs tests/hooks/python (pytest) against lib/eib.py
// with Debian's python3, as hooks get it: lib/ on PYTHONPATH.
func TestEibPythonModule(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Skipf("%s is not installed", debianPython)
	}
	if err := exec.Command(debianPython, "-c", "import pytest").Run(); err != nil {
		t.Skip("python3-pytest is not installed (make deps installs it)")
	}
	cmd := exec.Command(debianPython, "-m", "pytest", "-q", "-p", "no:cacheprovider",
		filepath.Join(srcRoot, "tests", "hooks", "python"))
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(srcRoot, "lib"), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pytest: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " passed") {
		t.Fatalf("pytest ran no test:\n%s", out)
	}
	t.Logf("pytest: %s", strings.TrimSpace(string(out)))
}
