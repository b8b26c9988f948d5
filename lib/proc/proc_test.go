package proc

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/cgroup"
)

func TestErrorNamesCommandStatusAndStderrTail(t *testing.T) {
	script := `for i in $(seq 1 30); do echo "line $i" >&2; done; exit 3`
	_, stderr, err := Command{Name: "sh", Args: []string{"-c", script}}.Run(context.Background())
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	if got := strings.Join(pe.Command, " "); got != "sh -c "+script {
		t.Errorf("Command = %q", got)
	}
	if pe.ExitStatus != 3 || pe.Signal != 0 {
		t.Errorf("ExitStatus, Signal = %d, %v; want 3, 0", pe.ExitStatus, pe.Signal)
	}
	if !strings.HasPrefix(pe.StderrTail, "line 11\n") || !strings.HasSuffix(pe.StderrTail, "line 30") {
		t.Errorf("StderrTail = %q, want lines 11 to 30", pe.StderrTail)
	}
	if !strings.Contains(stderr, "line 1\n") {
		t.Errorf("stderr returned = %q, want all of it", stderr)
	}
	want := "sh -c " + script + ": exit status 3: line 11\n"
	if msg := err.Error(); !strings.HasPrefix(msg, want) || !strings.HasSuffix(msg, "line 30") {
		t.Errorf("Error() = %q, want prefix %q", msg, want)
	}
}

func TestErrorStdoutWhenStderrEmpty(t *testing.T) {
	_, _, err := Command{Name: "sh", Args: []string{"-c", "echo why; exit 1"}}.Run(context.Background())
	if err == nil || err.Error() != "sh -c echo why; exit 1: exit status 1: why" {
		t.Errorf("err = %v", err)
	}
}

func TestErrorNotFound(t *testing.T) {
	err := Run(context.Background(), "/nonexistent/tool", "x")
	var pe *Error
	if !errors.As(err, &pe) || pe.ExitStatus != -1 || !strings.HasPrefix(err.Error(), "/nonexistent/tool x: ") ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("err = %v", err)
	}
}

func TestOutputAndStdin(t *testing.T) {
	out, err := Output(context.Background(), "echo", "a", "b")
	if err != nil || out != "a b\n" {
		t.Errorf("Output = %q, %v", out, err)
	}
	out, _, err = Command{Name: "cat", Stdin: strings.NewReader("in"), Env: []string{"X=1"}}.Run(context.Background())
	if err != nil || out != "in" {
		t.Errorf("stdin: %q, %v", out, err)
	}
}

// A group whose shell and child ignore SIGTERM: cancelling the context
// sends TERM, waits the grace period, then KILLs the group; the shell is
// reaped and its child is gone.
func TestCancelTermThenKillGroupIgnoringTerm(t *testing.T) {
	pidFile := t.TempDir() + "/child"
	ctx, cancel := context.WithCancel(context.Background())
	script := `trap '' TERM; sleep 30 & echo $! > "$1"; wait`
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := Command{Name: "sh", Args: []string{"-c", script, "sh", pidFile}, Grace: 300 * time.Millisecond}.Run(ctx)
		errc <- err
	}()
	child := waitPid(t, pidFile)
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("returned after %s, before the grace period", d)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Signal != syscall.SIGKILL || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an *Error, killed by SIGKILL, wrapping context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "context canceled: signal: killed") {
		t.Errorf("Error() = %q", err)
	}
	waitGone(t, child)
}

func TestStopReapsAndKillsTheGroup(t *testing.T) {
	pidFile := t.TempDir() + "/child"
	cmd := exec.Command("sh", "-c", `trap '' TERM; sleep 30 & echo $! > "$1"; wait`, "sh", pidFile)
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	child := waitPid(t, pidFile)
	if pgid, _ := syscall.Getpgid(child); pgid != p.Pid() {
		t.Errorf("child's group = %d, want %d", pgid, p.Pid())
	}
	werr := p.Stop(200 * time.Millisecond)
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Stop = %v, want killed by SIGKILL", werr)
	}
	// Reaped: no zombie left with the shell's pid.
	if _, err := os.Stat("/proc/" + strconv.Itoa(p.Pid())); err == nil {
		t.Errorf("process %d still exists after Stop", p.Pid())
	}
	waitGone(t, child)
	if err := syscall.Kill(-p.Pid(), 0); err == nil {
		if !allZombies(p.Pid()) {
			t.Errorf("group %d still has live processes", p.Pid())
		}
	}
}

func TestStopWithoutGraceKillsAtOnce(t *testing.T) {
	p, err := Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Stop(0)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop(0) took %s", d)
	}
}

func waitPid(t *testing.T, file string) int {
	t.Helper()
	for i := 0; i < 500; i++ {
		if b, err := os.ReadFile(file); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the shell did not start its child")
	return 0
}

// waitGone waits until pid no longer runs: gone, or a zombie left to
// whoever reaps orphans (this machine's pid 1 may not).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if st := state(pid); st == "" || st == "Z" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("child %d still running (state %s)", pid, state(pid))
}

// state is the process state letter of pid ("" when gone).
func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// allZombies reports whether every process of group pgid is a zombie.
func allZombies(pgid int) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && state(pid) != "Z" {
			return false
		}
	}
	return true
}

// A process started InCgroup, and the daemon it detaches with setsid
// (out of its process group), are in that cgroup.
func TestStartInCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a writable cgroup2 hierarchy)")
	}
	g, err := cgroup.Create("proc-test-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := g.Kill(); err != nil {
			t.Error(err)
		}
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	}()
	f, err := g.Open()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(exec.Command("sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 &"), InCgroup(int(f.Fd())))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	// The shell has exited; its setsid daemon is still in the group.
	var pids []int
	for i := 0; i < 250 && len(pids) == 0; i++ {
		pids, _ = g.Procs()
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) != 1 {
		t.Fatalf("cgroup %s holds %v, want the setsid sleep", g.Path, pids)
	}
}
