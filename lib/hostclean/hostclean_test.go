package hostclean

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, loop devices, chroot)")
	}
}

// assertNoLeftovers fails when anything is still mounted or looped under dir.
func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), " "+dir) {
		t.Errorf("mount left under %s:\n%s", dir, mi)
	}
	if l := Loops([]string{dir}); len(l) > 0 {
		t.Errorf("loop devices left: %v", l)
	}
	if p := Processes([]string{dir}); len(p) > 0 {
		t.Errorf("processes left: %v", p)
	}
}

func TestCleanKillsUnmountsAndDetaches(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"losetup", "chroot", "/bin/busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: %v (run make deps)", tool, err)
		}
	}
	dir := t.TempDir()
	build := filepath.Join(dir, "build")
	root := filepath.Join(build, "root")
	for _, d := range []string{filepath.Join(root, "bin"), filepath.Join(build, "mnt", "a", "b"), filepath.Join(dir, "keep")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { Clean([]string{build}, nil) })

	// A process chrooted into the build dir, as a hook might leave.
	bb, _ := os.ReadFile("/bin/busybox")
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("chroot", root, "/bin/busybox", "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()

	// Stacked and nested mounts.
	mnt := filepath.Join(build, "mnt")
	for _, m := range []struct{ src, dst, typ string }{
		{"tmpfs", mnt, "tmpfs"}, {"tmpfs", mnt, "tmpfs"},
	} {
		if err := syscall.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(mnt, "a", "b"), 0o755)
	if err := syscall.Mount(filepath.Join(dir, "keep"), filepath.Join(mnt, "a", "b"), "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	// A loop device backed by a file there.
	img := filepath.Join(build, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	if l := Loops([]string{build}); len(l) != 1 || l[0] != strings.TrimSpace(string(out)) {
		t.Fatalf("Loops = %v, want %s", l, out)
	}
	mps, err := Mounts([]string{build})
	if err != nil || len(mps) != 3 || !strings.HasSuffix(mps[0], "/a/b") {
		t.Fatalf("Mounts = %v, %v; want 3, deepest first", mps, err)
	}
	// chroot(8) needs a moment to chroot and exec.
	for i := 0; ; i++ {
		p := Processes([]string{build})
		if len(p) == 1 && p[0] == sleeper.Process.Pid {
			break
		}
		if i > 500 {
			t.Fatalf("Processes = %v, want [%d]", p, sleeper.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var logged []string
	if err := Clean([]string{build}, func(f string, a ...any) { logged = append(logged, f) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("chrooted process still running")
	}
	assertNoLeftovers(t, build)
	if len(logged) < 5 {
		t.Errorf("expected a log line per action, got %q", logged)
	}
	// The bind-mounted directory outside the build dirs is untouched.
	if _, err := os.Stat(filepath.Join(dir, "keep")); err != nil {
		t.Error(err)
	}
}

func TestRemoveAllClearsImmutableAndRefusesMounted(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "sysroot")
	deploy := filepath.Join(dir, "ostree", "deploy", "os", "deploy", "abc.0")
	os.MkdirAll(filepath.Join(deploy, "etc"), 0o755)
	os.WriteFile(filepath.Join(deploy, "etc", "f"), []byte("x"), 0o644)
	if out, err := exec.Command("chattr", "+i", deploy, filepath.Join(deploy, "etc", "f")).CombinedOutput(); err != nil {
		t.Skipf("chattr +i not supported here: %v: %s", err, out)
	}
	// A mount under the dir blocks removal.
	mnt := filepath.Join(dir, "m")
	os.MkdirAll(mnt, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	err := RemoveAll(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "still mounted") {
		t.Fatalf("RemoveAll with a mount under it: %v", err)
	}
	syscall.Unmount(mnt, 0)
	var logged []string
	if err := RemoveAll(dir, func(f string, a ...any) { logged = append(logged, f) }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there: %v", dir, err)
	}
	if len(logged) != 2 {
		t.Errorf("want 2 immutable flags cleared, logged %q", logged)
	}
}

func TestRootSlashIsNeverARoot(t *testing.T) {
	if r := resolve([]string{"/", "", "  "}); len(r) != 0 {
		t.Errorf("resolve = %v", r)
	}
}
