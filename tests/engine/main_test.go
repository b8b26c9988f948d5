// Package engine tests the build engine end to end through the real eib
// binary: stages from a localdir buildscript, hook groups, the error
// stage, the build log and its masking, signals and the cleanup.
package engine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/lock"
)

var (
	eibBin  string // the eib binary built for these tests
	srcRoot string // the eib tree
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	srcRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir, err := os.MkdirTemp("", "eib-engine-test-")
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

// project is one test build: a localdir, cachedir, sysconfdir and lock.
type project struct {
	t        *testing.T
	dir      string
	local    string
	cache    string
	sysconf  string
	lockFile string
}

// newProject makes a localdir whose buildscript lists stages and whose
// config sets cachedir and the given extra INI text.
func newProject(t *testing.T, stages string, ini string) *project {
	t.Helper()
	dir := t.TempDir()
	p := &project{t: t, dir: dir, local: filepath.Join(dir, "local"), cache: filepath.Join(dir, "cache"),
		sysconf: filepath.Join(dir, "etc-eib"), lockFile: filepath.Join(dir, "eib.lock")}
	for _, d := range []string{filepath.Join(p.local, "config"), p.sysconf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.write("buildscript", stages, 0o644)
	// The groups this test does not configure run no hooks.
	for _, group := range []string{"publish", "error"} {
		if !strings.Contains(ini, "["+group+"]") {
			ini += "\n[" + group + "]\nhooks =\n"
		}
	}
	p.write("config/defaults.ini", "[build]\ncachedir = "+p.cache+"\n\n"+ini, 0o644)
	t.Cleanup(p.assertNoLeftovers)
	return p
}

func (p *project) write(rel, content string, mode os.FileMode) string {
	p.t.Helper()
	path := filepath.Join(p.local, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func (p *project) tmpdir() string  { return filepath.Join(p.cache, "build", "tmp") }
func (p *project) logFile() string { return filepath.Join(p.tmpdir(), "build.txt") }

func (p *project) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	args = append([]string{"--localdir", p.local}, args...)
	cmd := exec.CommandContext(ctx, eibBin, args...)
	cmd.Env = append(os.Environ(), "EIB_SRCDIR="+srcRoot, "EIB_SYSCONFDIR="+p.sysconf, "EIB_LOCK_FILE="+p.lockFile)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// run runs eib to the end and returns its exit code and output.
func (p *project) run(args ...string) (int, string, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, stdout, stderr := p.command(ctx, args...)
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("running eib: %v", err)
	}
	return code, stdout.String(), stderr.String()
}

func (p *project) read(path string) string {
	p.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatal(err)
	}
	return string(b)
}

// assertNoLeftovers: no mount, loop device or process under the build
// dirs, and the lock is free.
func (p *project) assertNoLeftovers() {
	t := p.t
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), p.dir) {
		t.Errorf("mounts left under %s:\n%s", p.dir, mi)
		hostclean.Clean([]string{p.dir}, nil)
	}
	if loops := hostclean.Loops([]string{p.dir}); len(loops) > 0 {
		t.Errorf("loop devices left: %v", loops)
		hostclean.Clean([]string{p.dir}, nil)
	}
	hostclean.ClearImmutable(p.dir, nil) // lets t.TempDir remove it
	if procs := hostclean.Processes([]string{p.dir}); len(procs) > 0 {
		t.Errorf("processes rooted in the build dirs left: %v", procs)
	}
	l, err := lock.Acquire(context.Background(), p.lockFile, 0)
	if err != nil {
		t.Errorf("lock still held: %v", err)
		return
	}
	l.Release()
}

// procsWith returns the PIDs whose command line contains token.
func procsWith(token string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), token) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
