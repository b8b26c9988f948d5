package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// hangGuard bounds a run of eib that could block forever (reading a FIFO):
// past it the test fails as blocked. Not a benchmark.
const hangGuard = 20 * time.Second

// TestInputsThatAreNoRegularFilesAreRefusedWithoutBlocking: a config file,
// the buildscript or a hook of the localdir that is a FIFO would block eib
// or be skipped silently; eib refuses it at once, exit 1, naming the path.
// (A directory named like a hook is skipped, as EIB skips it:
// lib/hooks' TestHooksRunInNameOrderAndLocaldirWins.)
func TestInputsThatAreNoRegularFilesAreRefusedWithoutBlocking(t *testing.T) {
	const base = "[ostree]\ndev_pull_url = http://127.0.0.1:1/repo\ngpg_verify = false\n"
	for _, tc := range []struct {
		name, fifo string // fifo: the localdir path made a FIFO
		want       string
	}{
		{name: "config file", fifo: "config/private.ini", want: "@LOCAL@/config/private.ini: not a regular file (a FIFO): a config file must be a regular file"},
		{name: "buildscript", fifo: "buildscript", want: "@LOCAL@/buildscript: not a regular file (a FIFO): the buildscript must be a regular file"},
		{name: "hook", fifo: "hooks/image/50-hostname", want: "hook image/50-hostname: @LOCAL@/hooks/image/50-hostname is not a regular file (a FIFO)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := t.TempDir()
			cache := filepath.Join(t.TempDir(), "cache")
			harness.WriteFiles(t, local, map[string]string{"config/defaults.ini": base + "[build]\ncachedir = " + cache + "\n"})
			p := filepath.Join(local, tc.fifo)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			// A held lock: a plan that passed would fail there (exit 2).
			code, stderr := runGuarded(t, nil, "-d", local, "--lock-timeout", "0", "master", "@LOCK@="+heldLock(t))
			if code != 1 {
				t.Errorf("exit %d, want 1\nstderr:\n%s", code, stderr)
			}
			if want := strings.ReplaceAll(tc.want, "@LOCAL@", local); !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks\n%s\nstderr:\n%s", want, stderr)
			}
			if _, err := os.Stat(cache); !os.IsNotExist(err) {
				t.Errorf("the build touched %s: %v", cache, err)
			}
		})
	}
}

// TestSignalsStopABuildWaitingForTheLock: SIGTERM (then SIGINT) ends a
// build that waits for the lock another build holds, at once, exit 2,
// with nothing of the build made.
func TestSignalsStopABuildWaitingForTheLock(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			local := t.TempDir()
			cache := filepath.Join(t.TempDir(), "cache")
			harness.WriteFiles(t, local, map[string]string{"config/defaults.ini": "[build]\ncachedir = " + cache +
				"\n[ostree]\ndev_pull_url = http://127.0.0.1:1/repo\ngpg_verify = false\n"})
			lockFile := heldLock(t)
			code, stderr := runGuarded(t, func(cmd *exec.Cmd, output func() string) {
				// Signal once eib says it waits for the lock.
				for deadline := time.Now().Add(hangGuard); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
					if strings.Contains(output(), "waiting up to") {
						break
					}
				}
				cmd.Process.Signal(sig)
			}, "-d", local, "--lock-timeout", "600", "master", "@LOCK@="+lockFile)
			if want := "waiting interrupted: " + sig.String() + " signal received"; code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, want 2 and %q\nstderr:\n%s", code, want, stderr)
			}
			if _, err := os.Stat(cache); !os.IsNotExist(err) {
				t.Errorf("the build touched %s: %v", cache, err)
			}
		})
	}
}

// runGuarded runs eib with the repository as srcdir (args ending in
// "@LOCK@=<file>" take that lock file), calling during (if not nil) while
// it runs; a run that outlives hangGuard is killed and fails the test.
func runGuarded(t *testing.T, during func(cmd *exec.Cmd, output func() string), args ...string) (int, string) {
	t.Helper()
	lock := filepath.Join(t.TempDir(), "eib.lock")
	if n := len(args); n > 0 && strings.HasPrefix(args[n-1], "@LOCK@=") {
		lock = strings.TrimPrefix(args[n-1], "@LOCK@=")
		args = args[:n-1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, eibBin, args...)
	cmd.Env = append(os.Environ(), "EIB_SRCDIR="+srcRoot, "EIB_SYSCONFDIR=/nonexistent/etc-eib", "EIB_LOCK_FILE="+lock)
	cmd.Dir = t.TempDir()
	var stdout, stderr harness.LockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(cmd, func() string { return stdout.String() + stderr.String() })
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("eib %s still ran after %s (blocked?):\n%s%s", strings.Join(args, " "), hangGuard, stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String() + stderr.String()
}

// TestMisspeltProductIsWarned: EIB builds any product name with the
// defaults alone; eib says so on stderr when no config/product/<P>.ini was
// read (stdout, as EIB's, is unchanged), and not for a product with a file.
func TestMisspeltProductIsWarned(t *testing.T) {
	r := eib(t, srcRoot, "--product", "demoo", "--show-config", "master")
	want := `eib: warning: product "demoo" has no config/product/demoo.ini in the srcdir or the localdir: it builds with the defaults alone (products with a file: demo, eos, eoscustom)`
	if r.Code != 0 || !strings.Contains(r.Stderr, want) {
		t.Errorf("exit %d, want 0 with the warning\n%s\nstderr:\n%s", r.Code, want, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "product = demoo\n") {
		t.Errorf("the configuration is not shown:\n%s", r.Stdout)
	}
	if r := eib(t, srcRoot, "--product", "demo", "--show-config", "master"); strings.Contains(r.Stderr, "warning: product") {
		t.Errorf("a product with a file is warned about:\n%s", r.Stderr)
	}
}

// TestMisspeltPersonalityIsWarned: the same for --personality, where a
// file of any of its prefixes counts (EIB's inheritance: fr_CA reads
// config/personality/fr.ini).
func TestMisspeltPersonalityIsWarned(t *testing.T) {
	r := eib(t, srcRoot, "--personality", "frr", "--show-config", "master")
	want := `eib: warning: personality "frr" has no config/personality/frr.ini in the srcdir or the localdir: it builds with the defaults alone (personalities with a file: base, en, es, fr, pt_BR)`
	if r.Code != 0 || !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stdout, "personality = frr\n") {
		t.Errorf("exit %d, want 0 with the warning\n%s\nstderr:\n%s", r.Code, want, r.Stderr)
	}
	for _, pe := range []string{"fr", "fr_CA"} {
		if r := eib(t, srcRoot, "--personality", pe, "--show-config", "master"); r.Code != 0 || strings.Contains(r.Stderr, "warning: personality") {
			t.Errorf("--personality %s (a file of its own or of a prefix): exit %d, stderr:\n%s", pe, r.Code, r.Stderr)
		}
	}
}
