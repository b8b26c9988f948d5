package mount

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// stack is a Deferrer that releases in reverse order, like build.Build.
type stack struct{ fns []func() error }

func (s *stack) Defer(name string, fn func() error) { s.fns = append(s.fns, fn) }

func (s *stack) release() error {
	var errs []error
	for i := len(s.fns) - 1; i >= 0; i-- {
		errs = append(errs, s.fns[i]())
	}
	s.fns = nil
	return errors.Join(errs...)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
}

func TestMountsAreRegisteredAndReleasedInReverseOrder(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"proc", "sys", "tmp", "src"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &stack{}
	t.Cleanup(func() { _ = s.release() })
	steps := []error{
		BindSelfPrivate(s, root),
		Proc(s, filepath.Join(root, "proc")),
		Sysfs(s, filepath.Join(root, "sys")),
		Tmpfs(s, filepath.Join(root, "tmp"), "mode=1777"),
		BindReadOnly(s, src, filepath.Join(root, "src")),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	points, err := MountPoints(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{root, root + "/proc", root + "/sys", root + "/tmp", root + "/src"}
	if !slices.Equal(points, want) {
		t.Fatalf("mount points %v, want %v", points, want)
	}
	if _, err := os.Stat(filepath.Join(root, "proc", "self", "status")); err != nil {
		t.Errorf("proc not mounted: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "src", "f")); err != nil || string(b) != "x" {
		t.Errorf("bind: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(root, "src", "g"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write into the read-only bind: %v, want EROFS", err)
	}
	if err := s.release(); err != nil {
		t.Fatal(err)
	}
	if points, _ := MountPoints(root); len(points) != 0 {
		t.Fatalf("left mounted: %v", points)
	}
}

func TestMountOnMissingDirectoryNamesItAndRegistersNothing(t *testing.T) {
	needRoot(t)
	s := &stack{}
	dst := filepath.Join(t.TempDir(), "missing")
	err := Tmpfs(s, dst, "")
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
	if len(s.fns) != 0 {
		t.Fatalf("%d cleanups registered for a failed mount", len(s.fns))
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := Unescape(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("unescape = %q", got)
	}
}
