// Package engine tests the build engine end to end through the real eib
// binary: stages from a localdir buildscript, hook groups, the error
// stage, the build log and its masking, signals and the cleanup.
package engine

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/lock"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	eibBin  string // the eib binary built for these tests
	srcRoot = harness.Src()
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// project is one test build: a localdir, cachedir, sysconfdir and lock.
type project struct {
	*harness.Project
	t *testing.T
}

// newProject makes a localdir whose buildscript lists stages and whose
// config sets cachedir and the given extra INI text.
func newProject(t *testing.T, stages string, ini string) *project {
	t.Helper()
	p := &project{Project: harness.NewProject(t), t: t}
	p.Write("buildscript", stages, 0o644)
	// The groups this test does not configure run no hooks.
	for _, group := range []string{"publish", "error"} {
		if !strings.Contains(ini, "["+group+"]") {
			ini += "\n[" + group + "]\nhooks =\n"
		}
	}
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n"+ini, 0o644)
	t.Cleanup(p.assertNoLeftovers)
	return p
}

func (p *project) logFile() string { return filepath.Join(p.Tmpdir(), "build.txt") }

func (p *project) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := p.Command(ctx, eibBin, srcRoot, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// startUntilReady starts eib and waits until its hook has touched ready
// and two sleep processes with token run; after about 20 s it kills eib
// and fails the test.
func (p *project) startUntilReady(ctx context.Context, ready, token string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	p.t.Helper()
	cmd, stdout, stderr := p.command(ctx, args...)
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil && len(procsWith("sleep\x00"+token)) == 2 {
			return cmd, stdout, stderr
		}
		if i > 1000 {
			cmd.Process.Kill()
			cmd.Wait()
			p.t.Fatalf("the hook never got ready\n%s\n%s", stdout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs eib to the end and returns its exit code and output.
func (p *project) run(args ...string) (int, string, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := harness.Run(p.t, p.Command(ctx, eibBin, srcRoot, args...))
	return r.Code, r.Stdout, r.Stderr
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
	harness.AssertNoLeftovers(t, p.Dir)
	l, err := lock.Acquire(context.Background(), p.Lock, 0)
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
