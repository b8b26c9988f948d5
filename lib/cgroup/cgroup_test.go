package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// need skips (saying why) where no cgroup2 hierarchy is writable.
func need(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("cgroup tests need root (a writable cgroup2 hierarchy)")
	}
	if _, err := Mount(); err != nil {
		t.Skipf("cgroup tests need cgroup2: %v", err)
	}
}

// testGroup creates a group unique to the test and removes it at the end.
func testGroup(t *testing.T) *Group {
	t.Helper()
	name := fmt.Sprintf("test-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid())
	g, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = g.Kill()
		if err := g.Remove(); err != nil {
			t.Error(err)
		}
	})
	return g
}

// startIn starts `sh -c script` in g through CgroupFD; it is reaped in
// the background.
func startIn(t *testing.T, g *Group, script string) *exec.Cmd {
	t.Helper()
	f, err := g.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd()), Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	return cmd
}

// waitProcs waits until g holds n processes.
func waitProcs(t *testing.T, g *Group, n int) []int {
	t.Helper()
	for i := 0; ; i++ {
		pids, err := g.Procs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) >= n {
			return pids
		}
		if i > 250 {
			t.Fatalf("%s holds %v, want %d processes", g.Path, pids, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	// A zombie is dead: it only waits to be reaped.
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestMountAndSelf(t *testing.T) {
	need(t)
	mnt, _ := Mount()
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(self, "/") {
		t.Errorf("Self() = %q, want an absolute path", self)
	}
	if _, err := os.Stat(filepath.Join(mnt, self, "cgroup.procs")); err != nil {
		t.Errorf("own cgroup %s%s: %v", mnt, self, err)
	}
}

// A process started into the group, and the daemon it detaches with
// setsid, are both in it; Kill kills both and Remove removes the group
// and a child group.
func TestCreateStartKillRemove(t *testing.T) {
	need(t)
	g := testGroup(t)
	mnt, _ := Mount()
	self, _ := Self()
	if want := filepath.Join(mnt, filepath.Dir(self), "eib-test-"+t.Name()+"-"+strconv.Itoa(os.Getpid())); g.Path != want {
		t.Errorf("Path = %s, want %s", g.Path, want)
	}
	child, err := g.Child("hook-image-50-x")
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, child, "setsid sleep 300 & exec sleep 301")
	pids := waitProcs(t, g, 2)
	// Until both have exec'd sleep.
	for i := 0; i < 250 && !(strings.HasPrefix(Cmdline(pids[0]), "sleep") && strings.HasPrefix(Cmdline(pids[1]), "sleep")); i++ {
		time.Sleep(20 * time.Millisecond)
		pids, _ = g.Procs()
	}
	if len(pids) != 2 {
		t.Fatalf("Procs() = %v, want the shell's sleep and the setsid one", pids)
	}
	for _, pid := range pids {
		if c := Cmdline(pid); !strings.HasPrefix(c, "sleep 30") {
			t.Errorf("Cmdline(%d) = %q", pid, c)
		}
	}
	if pop, err := g.Populated(); err != nil || !pop {
		t.Errorf("Populated() = %v, %v; want true", pop, err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d (%s) alive after Kill", pid, Cmdline(pid))
		}
	}
	if pop, _ := g.Populated(); pop {
		t.Error("populated after Kill")
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path); !os.IsNotExist(err) {
		t.Errorf("%s still there after Remove: %v", g.Path, err)
	}
	if err := g.Remove(); err != nil {
		t.Errorf("Remove of a removed group: %v", err)
	}
}

// The processes a killed build left are found by the next Create of the
// same name.
func TestSecondCreateFindsLeftovers(t *testing.T) {
	need(t)
	g := testGroup(t)
	startIn(t, g, "exec sleep 302")
	pids := waitProcs(t, g, 1)
	again, err := Create(strings.TrimPrefix(filepath.Base(g.Path), "eib-"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Path != g.Path {
		t.Fatalf("second Create: %s, want %s", again.Path, g.Path)
	}
	got, err := again.Procs()
	if err != nil || !slices.Equal(got, pids) {
		t.Fatalf("second Create's Procs() = %v, %v; want %v", got, err, pids)
	}
	if err := again.Kill(); err != nil {
		t.Fatal(err)
	}
	if alive(pids[0]) {
		t.Errorf("pid %d alive after Kill", pids[0])
	}
}

// Enter moves the caller in (its children start there), Leave moves it
// back.
func TestEnterLeave(t *testing.T) {
	need(t)
	g := testGroup(t)
	before, _ := Self()
	if err := g.Enter(); err != nil {
		t.Fatal(err)
	}
	in, _ := Self()
	cmd := exec.Command("sleep", "303")
	if err := cmd.Start(); err != nil {
		g.Leave()
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := g.Leave(); err != nil {
		t.Fatal(err)
	}
	after, _ := Self()
	mnt, _ := Mount()
	if filepath.Join(mnt, in) != g.Path || after != before {
		t.Errorf("cgroup before, in, after = %s, %s, %s; want in = %s", before, in, after, g.Path)
	}
	pids, _ := g.Procs()
	if !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Procs() = %v, want the child %d", pids, cmd.Process.Pid)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsNamePath(t *testing.T) {
	need(t)
	g := &Group{Path: "/sys/fs/cgroup/does-not-exist-eib"}
	for _, err := range []error{g.Enter(), func() error { _, err := g.Populated(); return err }(), func() error { _, err := g.Procs(); return err }()} {
		if err == nil || !strings.Contains(err.Error(), g.Path) {
			t.Errorf("err = %v, want it to name %s", err, g.Path)
		}
	}
	if _, err := Create("a/b"); err == nil {
		t.Error("Create(a/b) did not fail")
	}
}

// WaitEmpty lets a process that is ending anyway end; one left running
// is still there after it.
func TestWaitEmpty(t *testing.T) {
	need(t)
	g := testGroup(t)
	startIn(t, g, "exec sleep 0.1")
	if !g.WaitEmpty(5 * time.Second) {
		t.Error("WaitEmpty = false for a sleep of 0.1 s")
	}
	startIn(t, g, "exec sleep 304")
	waitProcs(t, g, 1)
	if g.WaitEmpty(50 * time.Millisecond) {
		t.Error("WaitEmpty = true with a sleep of 304 s running")
	}
}
