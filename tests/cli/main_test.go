// Package cli tests the eib command itself through the real binary: the
// options, --show-config, --explain, exit codes and the messages of
// configuration errors.
package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/eib-builder/eib/tests/harness"
)

var (
	eibBin  string // the eib binary built for these tests
	srcRoot = harness.Src()
	fixture = filepath.Join(srcRoot, "tests", "cli", "testdata", "tree") // a small srcdir
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// eib runs the binary with the given srcdir, a sysconfdir that does not
// exist and a temporary lock file.
func eib(t testing.TB, src string, args ...string) harness.Result {
	t.Helper()
	return eibEnv(t, []string{"EIB_SRCDIR=" + src}, args...)
}

// eibEnv runs the binary in a temporary directory with a sysconfdir that
// does not exist, a temporary lock file, then env.
func eibEnv(t testing.TB, env []string, args ...string) harness.Result {
	t.Helper()
	tmp := t.TempDir()
	cmd := exec.Command(eibBin, args...)
	cmd.Env = append(os.Environ(), "EIB_SYSCONFDIR=/nonexistent/etc-eib", "EIB_LOCK_FILE="+filepath.Join(tmp, "eib.lock"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = tmp
	return harness.Run(t, cmd)
}
