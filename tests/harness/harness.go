// Package harness is the scaffolding the end-to-end test packages under
// tests/ share, so that each of them holds only its own tests and the
// setup that is really its own:
//
//   - Main builds eib (and any other main package of the tree) once per
//     test binary into a temporary directory, runs the tests and removes
//     the build (RunTests: the same without the exit); Src is the eib
//     tree those tests run against.
//   - Project is one build's temporary directories (localdir, cachedir,
//     sysconfdir, lock file), with Write for localdir files, and Env and
//     Command for an eib run that uses them.
//   - Run and Code run a command and turn its end into an exit code,
//     failing the test only when the command could not run at all.
//   - DemoRepo builds the demo OS repo (helpers/make-demo-repo) and
//     serves it on 127.0.0.1 (helpers/serve-repo), once per test binary,
//     stopping the server when the tests end; NeedDemo does the same
//     after skipping a test that cannot build the demo here, Install puts
//     its key and URL into a localdir, and Serve serves a directory for
//     the rest of one test.
//   - AssertNoLeftovers checks the rule every test of a build obeys: no
//     mount, loop device or process is left under the test's directory.
//   - Need, WriteFiles and LastLine are small helpers several packages
//     had their own copies of.
//
// It is a normal package (not a _test file) so that every tests/*
// package can import it; it imports only the standard library and
// lib/hostclean.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/eib-builder/eib/lib/hostclean"
)

// Src is the eib tree (the repository root), found from this file's
// place in it (tests/harness).
func Src() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// runDir is the test binary's temporary directory (RunTests): the
// binaries it built and, unless EIB_TEST_DEMO_CACHE names one, the demo's
// make-demo-repo cache.
var runDir string

// Main builds ./cmd/eib into a temporary directory and sets *eib to the
// binary, builds each further main package of extra ("./helpers/serve-repo"
// -> where to keep its path) alongside, runs the tests, stops the demo's
// server (DemoRepo), removes the directory and exits with the tests' code
// (1 when the server did not stop cleanly). A failed build ends the test
// binary with go build's output. Call it from TestMain.
func Main(m *testing.M, eib *string, extra map[string]*string) {
	os.Exit(RunTests(m, eib, extra))
}

// RunTests is Main without the exit: it returns the tests' exit code (1
// when a build failed), for a TestMain that has state of its own to
// remove after the tests.
func RunTests(m *testing.M, eib *string, extra map[string]*string) int {
	dir, err := os.MkdirTemp("", "eib-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	runDir = dir
	bins := map[string]*string{"./cmd/eib": eib}
	for pkg, p := range extra {
		bins[pkg] = p
	}
	pkgs := make([]string, 0, len(bins))
	for pkg := range bins {
		pkgs = append(pkgs, pkg)
	}
	sort.Strings(pkgs)
	for _, pkg := range pkgs {
		bin, err := build(pkg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		*bins[pkg] = bin
	}
	code := m.Run()
	if err := stopDemo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	return code
}

// build builds the main package pkg of the eib tree into runDir and
// returns the binary's path; an error holds go build's output.
func build(pkg string) (string, error) {
	bin := filepath.Join(runDir, path.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = Src()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Result is one finished run of a command.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Run runs cmd to the end with its stdout and stderr captured.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := Code(t, cmd.Run(), cmd)
	return Result{code, stdout.String(), stderr.String()}
}

// Code is the exit code of a command that ended with err (from Run, Wait,
// Output or CombinedOutput): 0, or the code of an exit status. Any other
// error (the command could not start) fails t, naming the command.
func Code(t testing.TB, err error, cmd *exec.Cmd) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running %s: %v", strings.Join(cmd.Args, " "), err)
	}
	return 0
}

// Env is the host's environment with eib pointed at the tree src, the
// sysconfdir sysconf and the lock file lock, then extra (KEY=VALUE; a
// later entry wins over an earlier one of the same key).
func Env(src, sysconf, lock string, extra ...string) []string {
	env := append(os.Environ(), "EIB_SRCDIR="+src, "EIB_SYSCONFDIR="+sysconf, "EIB_LOCK_FILE="+lock)
	return append(env, extra...)
}

// Project is one build's directories, all inside one fresh temporary
// directory Dir: the localdir Local (created), the cachedir Cache, the
// sysconfdir Sysconf (created) and the lock file Lock.
type Project struct {
	T                                *testing.T
	Dir, Local, Cache, Sysconf, Lock string
}

// NewProject makes the directories of a build in t.TempDir().
func NewProject(t *testing.T) *Project {
	t.Helper()
	dir := t.TempDir()
	p := &Project{T: t, Dir: dir, Local: filepath.Join(dir, "local"), Cache: filepath.Join(dir, "cache"),
		Sysconf: filepath.Join(dir, "etc-eib"), Lock: filepath.Join(dir, "eib.lock")}
	for _, d := range []string{filepath.Join(p.Local, "config"), p.Sysconf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Write writes a file of the localdir (rel is relative to it) with mode
// (exactly, whatever the umask or an earlier mode) and returns its path.
func (p *Project) Write(rel, content string, mode os.FileMode) string {
	p.T.Helper()
	path := filepath.Join(p.Local, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.T.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		p.T.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		p.T.Fatal(err)
	}
	return path
}

// Env is the environment of an eib run of this project against the tree
// src, then extra.
func (p *Project) Env(src string, extra ...string) []string {
	return Env(src, p.Sysconf, p.Lock, extra...)
}

// Command is `bin --localdir LOCAL args...` in this project's environment
// against the tree src; ctx kills it.
func (p *Project) Command(ctx context.Context, bin, src string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, append([]string{"--localdir", p.Local}, args...)...)
	cmd.Env = p.Env(src)
	return cmd
}

// Tmpdir is the build's tmpdir (EIB_TMPDIR) under the cachedir.
func (p *Project) Tmpdir() string { return filepath.Join(p.Cache, "build", "tmp") }

// Outdir is the build's outdir (EIB_OUTDIR) under the cachedir.
func (p *Project) Outdir() string { return filepath.Join(p.Cache, "build", "out") }

// Manifest reads the one merged manifest of the build from Outdir.
func (p *Project) Manifest() map[string]any {
	p.T.Helper()
	files, _ := filepath.Glob(filepath.Join(p.Outdir(), "*.manifest.json"))
	if len(files) != 1 {
		p.T.Fatalf("want one manifest in %s, found %v", p.Outdir(), files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		p.T.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		p.T.Fatalf("%s: %v", files[0], err)
	}
	return m
}

// AssertNoLeftovers fails t for every mount under dir (a mount point
// there, or any line of /proc/self/mountinfo naming dir), loop device
// backed by a file under dir, or process whose root directory is under
// dir. It then removes what it found, so that the next test
// starts clean, and clears the immutable flags `ostree admin deploy`
// sets, so that t.TempDir can remove dir. Register it with t.Cleanup.
func AssertNoLeftovers(t testing.TB, dir string) {
	t.Helper()
	mps, err := hostclean.Mounts([]string{dir})
	mi, rerr := os.ReadFile("/proc/self/mountinfo")
	var lines []string
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, dir) {
			lines = append(lines, l)
		}
	}
	loops := hostclean.Loops([]string{dir})
	mounted := err != nil || rerr != nil || len(mps) > 0 || len(lines) > 0
	if mounted {
		t.Errorf("mounts left under %s: %v (%v, %v)\n%s", dir, mps, err, rerr, strings.Join(lines, "\n"))
	}
	if len(loops) > 0 {
		t.Errorf("loop devices left: %v", loops)
	}
	if mounted || len(loops) > 0 {
		_ = hostclean.Clean([]string{dir}, nil)
	}
	_ = hostclean.ClearImmutable(dir, nil)
	if procs := hostclean.Processes([]string{dir}); len(procs) > 0 {
		t.Errorf("processes rooted in the build dirs left: %v", procs)
	}
}

// Need fails the test when a tool is not installed: make deps installs
// every one, so a missing tool is a broken set-up, never a reason to skip.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does), which installs it", tool)
		}
	}
}

// WriteFiles writes files (path relative to root -> content), mode 0644,
// making their directories.
func WriteFiles(t testing.TB, root string, files map[string]string) {
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

// LastLine is the last line of s (a command's output).
func LastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// LockedBuffer is an output buffer that a running command writes to
// while the test reads it.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
