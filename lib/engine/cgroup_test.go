package engine

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/cgroup"
)

// hookStage runs the hook group check (a group of config.KeysRead); with keep it also starts a
// process of its own that it leaves running (its pid in kept).
type hookStage struct{}

var keep string // a program a hookStage leaves running (with argument 300)
var kept int

func (hookStage) Name() string { return "t-hooks" }
func (hookStage) Run(ctx context.Context, b *build.Build) error {
	if err := b.Hooks.RunGroup(ctx, b, "check", ""); err != nil {
		return err
	}
	if keep != "" {
		cmd := exec.Command(keep, "300")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		kept = cmd.Process.Pid
		go cmd.Wait()
	}
	return nil
}

func init() { testStages = append(testStages, hookStage{}) }

func needCgroup(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a writable cgroup2 hierarchy)")
	}
	if _, err := cgroup.Mount(); err != nil {
		t.Skipf("needs cgroup2: %v", err)
	}
}

// gone waits a little for pid to be gone (or a zombie).
func gone(pid int) bool {
	for i := 0; i < 100; i++ {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if s := string(data); strings.Contains(s[strings.LastIndexByte(s, ')'):], ") Z ") {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func buildLog(t *testing.T, e *env) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.cache, "build", "tmp", "build.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A hook's daemon that left its process group with setsid is logged with
// the hook's name and killed when the hook ends; the build's cgroup is
// removed and eib is back in its own.
func TestHookSetsidDaemonIsLoggedAndKilled(t *testing.T) {
	needCgroup(t)
	e := newEnv(t, "t-hooks\n")
	token := strconv.Itoa(300000 + os.Getpid()%100000)
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.loaded.Full.Set("check", "hooks", "10-daemon")
	os.MkdirAll(filepath.Join(e.local, "hooks", "check"), 0o755)
	os.WriteFile(filepath.Join(e.local, "hooks", "check", "10-daemon"),
		[]byte("setsid sleep "+token+" </dev/null >/dev/null 2>&1 &\necho $! > "+pidFile+"\n"+
			"until pgrep -x -f 'sleep "+token+"' >/dev/null; do sleep 0.02; done\n"), 0o644)
	o := e.opts(t)
	before, _ := cgroup.Self()
	keep = ""
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	log := buildLog(t, e)
	// setsid forks when it is a process group leader; the sleep is its
	// pid or a child's.
	re := regexp.MustCompile(`10-daemon: process (\d+) \(sleep ` + token + `\) still ran when the hook ended: killed`)
	m := re.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the log does not name the hook's leftover sleep:\n%s", log)
	}
	left, _ := strconv.Atoi(m[1])
	if left != pid && left != pid+1 {
		t.Logf("logged pid %d, the hook's $! was %d", left, pid)
	}
	if !gone(left) {
		t.Errorf("the hook's setsid sleep (pid %d) still runs", left)
	}
	if after, _ := cgroup.Self(); after != before {
		t.Errorf("eib is in cgroup %s after the build, was in %s", after, before)
	}
	mnt, _ := cgroup.Mount()
	dir := filepath.Join(mnt, filepath.Dir(before), "eib-"+cgroupName(o.LockFile))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the build's cgroup %s is still there: %v", dir, err)
	}
}

// A process a stage leaves running (out of eib's process groups) is
// logged and killed at the end of the build.
func TestProcessLeftAtTheEndIsLoggedAndKilled(t *testing.T) {
	needCgroup(t)
	e := newEnv(t, "t-hooks\n")
	e.loaded.Full.Set("check", "hooks", "")
	// A copy of sleep under a name unique to the test.
	token := "sleep-" + strconv.Itoa(os.Getpid())
	keep = filepath.Join(t.TempDir(), token)
	if data, err := os.ReadFile("/bin/sleep"); err != nil || os.WriteFile(keep, data, 0o755) != nil {
		t.Fatalf("copying /bin/sleep: %v", err)
	}
	defer func() { keep = "" }()
	if err := execute(context.Background(), e.opts(t)); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("process %d (%s 300) of the build still ran at the end: killed", kept, keep)
	if log := buildLog(t, e); !strings.Contains(log, want) {
		t.Errorf("the log has no line %q:\n%s", want, log)
	}
	if !gone(kept) {
		t.Errorf("pid %d still runs", kept)
	}
}

// What a killed build left in the cgroup of the lock is logged and killed
// by the next build with the same lock, before it cleans the build dirs.
func TestNextBuildKillsWhatAKilledBuildLeft(t *testing.T) {
	needCgroup(t)
	e := newEnv(t, "t-one\n")
	o := e.opts(t)
	g, err := cgroup.Create(cgroupName(o.LockFile))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { g.Kill(); g.Remove() }()
	child, err := g.Child("hook-image-50-x")
	if err != nil {
		t.Fatal(err)
	}
	f, err := child.Open()
	if err != nil {
		t.Fatal(err)
	}
	token := strconv.Itoa(500000 + os.Getpid()%100000)
	cmd := exec.Command("sleep", token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: int(f.Fd())}
	err = cmd.Start()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("killing leftover process %d (sleep %s) of an earlier build (killed) with this lock", cmd.Process.Pid, token)
	if log := buildLog(t, e); !strings.Contains(log, want) {
		t.Errorf("the log has no line %q:\n%s", want, log)
	}
	if !gone(cmd.Process.Pid) {
		t.Errorf("the earlier build's sleep (pid %d) still runs", cmd.Process.Pid)
	}
	if _, err := os.Stat(child.Path); !os.IsNotExist(err) {
		t.Errorf("the earlier build's hook cgroup %s is still there: %v", child.Path, err)
	}
}

func TestCgroupNameIsPerLockFile(t *testing.T) {
	a, b := cgroupName("/var/lock/eib.lock"), cgroupName("/tmp/x/eib.lock")
	if a == b || !strings.HasPrefix(a, "eib.lock-") || len(a) != len("eib.lock-")+12 {
		t.Errorf("cgroupName = %q, %q", a, b)
	}
	if n := cgroupName("/tmp/a b/l:ck"); !strings.HasPrefix(n, "l_ck-") {
		t.Errorf("cgroupName of l:ck = %q", n)
	}
}

// Without a usable cgroup2 hierarchy the build runs as before and the log
// says why, once.
func TestNoCgroupFallsBackAndSaysSo(t *testing.T) {
	defer func(f func(string) (*cgroup.Group, error)) { createCgroup = f }(createCgroup)
	createCgroup = func(string) (*cgroup.Group, error) {
		return nil, fmt.Errorf("no cgroup2 filesystem mounted (/proc/self/mountinfo)")
	}
	e := newEnv(t, "t-hooks\n")
	e.loaded.Full.Set("check", "hooks", "10-ok")
	os.MkdirAll(filepath.Join(e.local, "hooks", "check"), 0o755)
	os.WriteFile(filepath.Join(e.local, "hooks", "check", "10-ok"), []byte("true\n"), 0o644)
	keep = ""
	if err := execute(context.Background(), e.opts(t)); err != nil {
		t.Fatal(err)
	}
	log := buildLog(t, e)
	want := "processes of this build are not held in a cgroup (no cgroup2 filesystem mounted (/proc/self/mountinfo)): only their process groups are killed"
	if n := strings.Count(log, want); n != 1 {
		t.Errorf("the log says %d times %q:\n%s", n, want, log)
	}
	if !strings.Contains(log, "10-ok: done") {
		t.Errorf("the hook did not run:\n%s", log)
	}
}
