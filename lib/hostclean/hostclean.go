// Package hostclean removes what a build (this one or a killed earlier one)
// left on the host under the build directories: processes running with
// their root inside them, mounts under them, loop devices backed by files
// there, and the immutable flag that `ostree admin deploy` puts on
// deployment roots. The engine calls Clean before the first stage and again
// as the last step of cleanup, and RemoveAll to recreate a build directory.
package hostclean

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/eib-builder/eib/lib/mount"
)

// Logf receives one line per action taken.
type Logf func(format string, args ...any)

// Clean kills processes rooted under roots, unmounts everything under
// them (deepest first) and detaches loop devices backed by files under
// them. It goes on after an error and returns all errors joined.
func Clean(roots []string, logf Logf) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	roots = resolve(roots)
	if len(roots) == 0 {
		return nil
	}
	var errs []error
	errs = append(errs, KillProcesses(roots, logf))
	errs = append(errs, UnmountAll(roots, logf))
	errs = append(errs, DetachLoops(roots, logf))
	return errors.Join(errs...)
}

// resolve makes roots absolute and symlink-free, dropping "/" and empties
// (a build dir of "/" would make everything on the host a leftover).
func resolve(roots []string) []string {
	var out []string
	for _, r := range roots {
		if strings.TrimSpace(r) == "" {
			continue
		}
		abs, err := filepath.Abs(r)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		if abs == "/" {
			continue
		}
		out = append(out, filepath.Clean(abs))
	}
	return out
}

// Under reports whether path is root or inside it.
func Under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

func underAny(path string, roots []string) bool {
	for _, r := range roots {
		if Under(path, r) {
			return true
		}
	}
	return false
}

// Processes returns the PIDs of processes whose root directory is under
// one of roots (never this process).
func Processes(roots []string) []int {
	roots = resolve(roots)
	ents, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
		if err != nil {
			continue
		}
		if underAny(root, roots) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillProcesses sends SIGTERM to every process rooted under roots, waits
// up to 3 seconds, then SIGKILLs the rest.
func KillProcesses(roots []string, logf Logf) error {
	pids := Processes(roots)
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		logf("killing leftover process %d (%s) rooted in the build dirs", pid, comm(pid))
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if len(Processes(roots)) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range Processes(roots) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if len(Processes(roots)) == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left := Processes(roots); len(left) > 0 {
		return fmt.Errorf("processes %v rooted under %s survived SIGKILL", left, strings.Join(roots, " "))
	}
	return nil
}

func comm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// Mounts returns the mount points (of this mount namespace) under roots,
// deepest first; a mount point stacked n times appears n times.
func Mounts(roots []string) ([]string, error) {
	roots = resolve(roots)
	all, err := mount.MountPoints("")
	if err != nil {
		return nil, err
	}
	var mps []string
	for _, mp := range all {
		if underAny(mp, roots) {
			mps = append(mps, mp)
		}
	}
	// Deepest first; among equal depth, later mounts (stacked on top)
	// first — mountinfo lists them in mount order, so reverse first.
	for i, j := 0, len(mps)-1; i < j; i, j = i+1, j-1 {
		mps[i], mps[j] = mps[j], mps[i]
	}
	sort.SliceStable(mps, func(i, j int) bool {
		return strings.Count(mps[i], "/") > strings.Count(mps[j], "/")
	})
	return mps, nil
}

// UnmountAll unmounts every mount under roots, deepest first, falling back
// to a lazy unmount for busy ones.
func UnmountAll(roots []string, logf Logf) error {
	for attempt := 0; attempt < 20; attempt++ {
		mps, err := Mounts(roots)
		if err != nil {
			return fmt.Errorf("reading /proc/self/mountinfo: %w", err)
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			err := syscall.Unmount(mp, 0)
			if errors.Is(err, syscall.EBUSY) {
				logf("%s is busy; detaching it lazily", mp)
				err = syscall.Unmount(mp, syscall.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				logf("unmount %s: %v", mp, err)
			} else if err == nil {
				logf("unmounted leftover %s", mp)
			}
		}
	}
	mps, _ := Mounts(roots)
	if len(mps) > 0 {
		return fmt.Errorf("could not unmount %s", strings.Join(mps, ", "))
	}
	return nil
}

// Loops returns the loop devices (/dev/loopN) whose backing file is under
// roots.
func Loops(roots []string) []string {
	roots = resolve(roots)
	devs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, p := range devs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		file := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if underAny(file, roots) {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(p))))
		}
	}
	sort.Strings(out)
	return out
}

// DetachLoops detaches (losetup -d) the loop devices backed by files under
// roots.
func DetachLoops(roots []string, logf Logf) error {
	var errs []error
	for _, dev := range Loops(roots) {
		out, err := exec.Command("losetup", "-d", dev).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("losetup -d %s: %v: %s", dev, err, strings.TrimSpace(string(out))))
			continue
		}
		logf("detached leftover loop device %s", dev)
	}
	return errors.Join(errs...)
}

const (
	fsIocGetflags  = 0x80086601
	fsIocSetflags  = 0x40086602
	fsImmutableFl  = 0x00000010
	fsAppendFl     = 0x00000020
	clearableFlags = fsImmutableFl | fsAppendFl
)

// ClearImmutable clears the immutable and append-only flags on every
// directory and regular file under dir (ostree sets +i on deployment
// roots, which makes them undeletable). Mounts are not crossed.
func ClearImmutable(dir string, logf Logf) error {
	return clearFlags(dir, false, logf)
}

// clearFlags is ClearImmutable; dirsOnly skips regular files (ostree
// only marks directories, and a file walk costs ten times more).
func clearFlags(dir string, dirsOnly bool, logf Logf) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var dev uint64
	if st, err := os.Lstat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	} else if s, ok := st.Sys().(*syscall.Stat_t); ok {
		dev = s.Dev
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // removal will report what really cannot go
		}
		if !d.IsDir() && (dirsOnly || !d.Type().IsRegular()) {
			return nil
		}
		if d.IsDir() {
			if info, err := d.Info(); err == nil {
				if s, ok := info.Sys().(*syscall.Stat_t); ok && s.Dev != dev {
					return fs.SkipDir
				}
			}
		}
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		defer syscall.Close(fd)
		var flags int32
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), fsIocGetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
			return nil // file system without flags
		}
		if flags&clearableFlags == 0 {
			return nil
		}
		flags &^= clearableFlags
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), fsIocSetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
			return fmt.Errorf("clearing the immutable flag of %s: %w", path, e)
		}
		logf("cleared the immutable flag of %s", path)
		return nil
	})
}

// RemoveAll deletes dir after making sure nothing is mounted under it (a
// surviving bind mount would make the removal delete host files) and
// clearing immutable flags.
func RemoveAll(dir string, logf Logf) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	mps, err := Mounts([]string{dir})
	if err != nil {
		return fmt.Errorf("removing %s: reading /proc/self/mountinfo: %w", dir, err)
	}
	if len(mps) > 0 {
		return fmt.Errorf("refusing to remove %s: still mounted under it: %s", dir, strings.Join(mps, ", "))
	}
	// Directories first (what ostree marks); files only if that was not
	// enough.
	if err := clearFlags(dir, true, logf); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	if err := clearFlags(dir, false, logf); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
