// Package mount makes the few mounts a build needs (bind, private,
// read-only bind, tmpfs, proc, sysfs) and registers each one's unmount with
// the build's single cleanup path right after it succeeds, so an unmount is
// never forgotten on an error path and mounts come down in reverse order.
package mount

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Deferrer registers a release function (build.Build implements it).
type Deferrer interface {
	Defer(name string, fn func() error)
}

// Bind bind-mounts src on dst (not recursively).
func Bind(d Deferrer, src, dst string) error {
	return mount(d, "bind "+src, src, dst, "", syscall.MS_BIND, "")
}

// BindReadOnly bind-mounts src on dst read-only.
func BindReadOnly(d Deferrer, src, dst string) error {
	if err := Bind(d, src, dst); err != nil {
		return err
	}
	flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY)
	if err := syscall.Mount("", dst, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dst, err)
	}
	return nil
}

// BindSelfPrivate bind-mounts dir over itself and makes the mount private,
// so that mounts made under it do not propagate to the host's mount
// namespace (and the host's do not appear in it).
func BindSelfPrivate(d Deferrer, dir string) error {
	if err := Bind(d, dir, dir); err != nil {
		return err
	}
	if err := syscall.Mount("", dir, "", syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s a private mount: %w", dir, err)
	}
	return nil
}

// Tmpfs mounts a tmpfs on dst with the given options ("mode=1777").
func Tmpfs(d Deferrer, dst, options string) error {
	return mount(d, "tmpfs", "tmpfs", dst, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, options)
}

// Proc mounts a proc file system on dst.
func Proc(d Deferrer, dst string) error {
	return mount(d, "proc", "proc", dst, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
}

// Sysfs mounts a sysfs file system on dst, read-only.
func Sysfs(d Deferrer, dst string) error {
	return mount(d, "sysfs", "sysfs", dst, "sysfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC|syscall.MS_RDONLY, "")
}

func mount(d Deferrer, what, src, dst, fstype string, flags uintptr, data string) error {
	st, err := os.Stat(dst)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", what, dst, err)
	}
	if !st.IsDir() && fstype != "" {
		return fmt.Errorf("mount %s on %s: not a directory", what, dst)
	}
	if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", what, dst, err)
	}
	d.Defer("unmount "+dst, func() error { return Unmount(dst) })
	return nil
}

// Unmount unmounts dst, retrying a few times while it is busy (a process
// of a hook may still be exiting), then detaching it lazily so nothing
// stays mounted; a lazy detach is reported as an error.
func Unmount(dst string) error {
	var err error
	for i := 0; i < 10; i++ {
		err = syscall.Unmount(dst, 0)
		if err == nil || errors.Is(err, syscall.EINVAL) && !IsMountPoint(dst) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if derr := syscall.Unmount(dst, syscall.MNT_DETACH); derr != nil {
		return fmt.Errorf("unmount %s: %w (lazy detach: %v)", dst, err, derr)
	}
	return fmt.Errorf("unmount %s: %w; detached lazily", dst, err)
}

// IsMountPoint reports whether path is a mount point of the current mount
// namespace (from /proc/self/mountinfo).
func IsMountPoint(path string) bool {
	points, err := MountPoints("")
	if err != nil {
		return false
	}
	for _, p := range points {
		if p == path {
			return true
		}
	}
	return false
}

// MountPoints returns the mount points at or under prefix ("" = all), from
// /proc/self/mountinfo, in mount order.
func MountPoints(prefix string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := Unescape(f[4])
		if prefix == "" || p == prefix || strings.HasPrefix(p, strings.TrimSuffix(prefix, "/")+"/") {
			points = append(points, p)
		}
	}
	return points, nil
}

// Unescape decodes the octal escapes of a /proc/self/mountinfo field
// (\040 for a space, \134 for a backslash; proc(5)).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
