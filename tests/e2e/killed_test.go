package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check/checktest"
)

// lockedBuffer is an output buffer written by a running eib and read by
// the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// bg is an eib build running in the background.
type bg struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed once it has exited and been reaped
}

// startBuild starts the demo build in the background.
func (p *project) startBuild(ctx context.Context) *bg {
	p.T.Helper()
	b := &bg{cmd: p.buildCommand(ctx), out: &lockedBuffer{}, done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		p.T.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	return b
}

// waitUntil polls cond every 100 ms until it holds; at timeout, or when
// the build exits first, the test fails with the build's output.
func (b *bg) waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-b.done:
			t.Fatalf("waiting for %s: the build ended:\n%s", what, tail(b.out.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s passed:\n%s", what, timeout, tail(b.out.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill9 SIGKILLs eib (no cleanup of its own can run) and waits until it
// is reaped.
func (b *bg) kill9() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i:], ") Z")
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pid
}

// TestKilledBuildLeavesNothingToTheNext: eib is SIGKILLed while an image
// hook runs, with a sleep the hook waits for and a setsid daemon that
// would write into the next build's outdir 5 s later. The next build
// logs and kills both (they are in the cgroup of the lock) before it
// recreates the build dirs, and nothing of the first build lands in its
// outdir. That build is SIGKILLed in turn while it boots the image; the
// third build succeeds and publishes nothing stray, and the QEMU of the
// second is gone.
func TestKilledBuildLeavesNothingToTheNext(t *testing.T) {
	needDemo(t)
	p := newDemoProject(t, "[check]\nfirmware = bios\n\n[image]\nhooks_add = 90-hang\n")
	state := filepath.Join(p.Dir, "hang")
	os.MkdirAll(state, 0o755)
	ready := filepath.Join(state, "ready")
	// Only the first build hangs in the hook.
	p.Write("hooks/image/90-hang", `[ ! -e `+ready+` ] || return 0
setsid sh -c 'sleep 5; touch "$EIB_OUTDIR/stray"' </dev/null >/dev/null 2>&1 &
echo $! > `+state+`/stray.pid
sleep 600 &
echo $! > `+state+`/sleep.pid
touch `+ready+`
wait
`, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	// 1. Killed in the image hook.
	b := p.startBuild(ctx)
	b.waitUntil(t, "the image hook", 15*time.Minute, func() bool {
		_, err := os.Stat(ready)
		return err == nil
	})
	stray, sleep := readPid(t, filepath.Join(state, "stray.pid")), readPid(t, filepath.Join(state, "sleep.pid"))
	b.kill9()
	defer func() {
		for _, pid := range []int{stray, sleep} {
			if running(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if !running(stray) || !running(sleep) {
		t.Fatalf("the hook's processes (setsid sh %d: %v, sleep %d: %v) died with eib: the test would prove nothing",
			stray, running(stray), sleep, running(sleep))
	}

	// 2. The next build kills them at once, and is killed in the check
	// stage while QEMU boots the image.
	b = p.startBuild(ctx)
	b.waitUntil(t, "stage check", 15*time.Minute, func() bool {
		return strings.Contains(b.out.String(), "stage check: start")
	})
	for _, pid := range []int{stray, sleep} {
		if running(pid) {
			t.Errorf("process %d (%s) of the killed build still runs in the next one", pid, cmdline(pid))
		}
		if want := "killing leftover process " + strconv.Itoa(pid) + " "; !strings.Contains(b.out.String(), want) {
			t.Errorf("the next build did not log %q:\n%s", want, tail(b.out.String(), 60))
		}
	}
	for _, line := range strings.Split(b.out.String(), "\n") {
		if strings.Contains(line, "killing leftover process") {
			t.Log("second build: " + line)
		}
	}
	if _, err := os.Stat(filepath.Join(p.Outdir(), "stray")); err == nil {
		t.Errorf("the killed build's daemon wrote into the next build's outdir %s", p.Outdir())
	}
	var qemu []string // "pid: command line"
	b.waitUntil(t, "QEMU", 5*time.Minute, func() bool {
		qemu = checktest.QEMUProcesses(t, p.Dir)
		return len(qemu) > 0
	})
	b.kill9()

	// 3. The third build succeeds and publishes nothing stray.
	log, code := p.build()
	if code != 0 {
		t.Fatalf("the build after two killed ones exited %d:\n%s", code, tail(log, 60))
	}
	// Nothing of the killed builds was left for it, and the shipped
	// hooks (the .chroot ones' sandboxes too) leave nothing running.
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "killing leftover process") || strings.Contains(line, "still ran") {
			t.Errorf("third build: %s", line)
		}
	}
	for _, q := range qemu {
		pid, _ := strconv.Atoi(q[:strings.IndexByte(q, ':')])
		if running(pid) {
			t.Errorf("QEMU of the build killed while booting still runs: %s", q)
		}
	}
	files := p.published()
	if len(files) == 0 {
		t.Fatal("the third build published nothing")
	}
	for _, f := range append(files, p.outFiles()...) {
		if filepath.Base(f) == "stray" {
			t.Errorf("a stray file of a killed build was published or left in the outdir: %s", f)
		}
	}
}

// cmdline is a process's command line, for a message.
func cmdline(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// outFiles lists the files in the outdir.
func (p *project) outFiles() []string {
	ents, _ := os.ReadDir(p.Outdir())
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
