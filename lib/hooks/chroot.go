package hooks

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"unicode"

	"github.com/eib-builder/eib/lib/build"
)

// In-root paths of the read-only binds given to .chroot hooks: the
// cachedir and the eib tree where EIB's .chroot hooks find them (its
// EIB_CACHEDIR_CHROOT and EIB_SRCDIR_CHROOT; the image stage binds them at
// the same places in the deployment for the host hooks' chroot function),
// and the localdir (eib's own addition, for <localdir>/lib).
const (
	ChrootCacheDir = "/tmp/eos-image-builder"
	ChrootSrcDir   = "/tmp/eos-image-builder/src"
	ChrootLocalDir = "/tmp/eib-local"
	chrootPath     = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// chrootCaps are the only capabilities a .chroot hook keeps: enough to
// create users, fix owners and modes, and set file capabilities in its
// root; none to mount, create device nodes, load modules, reach raw
// devices or open files by handle, so it cannot write outside its root
// except through the binds.
var chrootCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
	"CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP", "CAP_KILL", "CAP_SYS_CHROOT",
}

// chrootCommand builds the bubblewrap command of a .chroot hook: root bound
// at / with its own submounts (in the image stage: the tmpfs /tmp that the
// host hooks also write to, as in EIB, where 60-dconf-prepare hands files
// over to 61-dconf-compile.chroot in the deployment's /tmp), fresh /proc
// and /dev, a read-only /sys, cachedir, srcdir and localdir read-only at
// ChrootCacheDir, ChrootSrcDir and ChrootLocalDir, the hook at /tmp/<name>,
// and the environment of ChrootEnv.
//
// The mount points bwrap has to make in root's /tmp (when it is not a
// tmpfs: the content group) are removed by tidy once the hook has ended;
// tidy returns those it could not remove.
func (r *Runner) chrootCommand(b *build.Build, h Hook, root string, env []string) (cmd *exec.Cmd, tidy func() []string, err error) {
	if !isDir(root) {
		return nil, nil, fmt.Errorf("install root %s is not a directory", root)
	}
	cacheDir, err := b.Dir("cachedir")
	if err != nil {
		return nil, nil, err
	}
	srcDir := filepath.Clean(b.SrcDir)
	localDir := ""
	if b.LocalDir != "" && isDir(b.LocalDir) {
		localDir = filepath.Clean(b.LocalDir)
	}
	// bwrap cannot create the srcdir mount point inside the read-only
	// cachedir bind: make it on the host (an empty directory).
	if err := os.MkdirAll(filepath.Join(cacheDir, "src"), 0o755); err != nil {
		return nil, nil, fmt.Errorf("cachedir mount point for the srcdir: %w", err)
	}
	bwrap := r.Bwrap
	if bwrap == "" {
		bwrap = "bwrap"
	}
	inRoot := "/tmp/" + h.Name
	// What bwrap will create in root for its mount points, parents first.
	points := []string{"/tmp", ChrootCacheDir, inRoot}
	if localDir != "" {
		points = append(points, ChrootLocalDir)
	}
	var made []string
	for _, p := range points {
		if _, err := os.Lstat(filepath.Join(root, p)); errors.Is(err, os.ErrNotExist) {
			made = append(made, filepath.Join(root, p))
		}
	}
	tidy = func() []string {
		var left []string
		for i := len(made) - 1; i >= 0; i-- {
			if err := removeMountPoint(made[i]); err != nil {
				left = append(left, err.Error())
			}
		}
		return left
	}
	args := []string{
		"--bind", root, "/",
		"--proc", "/proc",
		// Kernel knobs stay out of reach (bwrap covers /proc/irq and
		// /proc/bus itself).
		"--ro-bind-try", "/proc/sys", "/proc/sys",
		"--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
		"--dev", "/dev",
		// The image stage may have mounted the host's sysfs (and /dev)
		// in the root for the host-side hooks: /sys is read-only here,
		// /dev the sandbox's own.
		"--ro-bind", "/sys", "/sys",
		"--ro-bind", cacheDir, ChrootCacheDir,
		"--ro-bind", srcDir, ChrootSrcDir,
	}
	if localDir != "" {
		args = append(args, "--ro-bind", localDir, ChrootLocalDir)
	}
	args = append(args,
		"--ro-bind", h.Path, inRoot,
		"--chdir", "/",
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent", "--new-session",
		"--cap-drop", "ALL",
	)
	for _, c := range chrootCaps {
		args = append(args, "--cap-add", c)
	}
	if h.Executable {
		args = append(args, inRoot)
	} else {
		args = append(args, "bash", "-ex", inRoot)
	}
	cmd = exec.Command(bwrap, args...)
	cmd.Dir = "/"
	cmd.Env = ChrootEnv(env, cacheDir, srcDir, localDir)
	return cmd, tidy, nil
}

// removeMountPoint removes an empty file or directory that bwrap made as a
// mount point; anything with content is left (and named in the error).
func removeMountPoint(p string) error {
	st, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if st.Mode().IsRegular() && st.Size() != 0 {
		return fmt.Errorf("%s (not empty)", p)
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("%s (%v)", p, err)
	}
	return nil
}

// ChrootEnv is the environment of a .chroot hook, as EIB's eib-chroot
// makes it: PATH, LANG=C.UTF-8, SHELL, and the EIB_* variables of env
// with values under cacheDir, srcDir or localDir rewritten to their
// in-root paths, then every EIB_X_CHROOT passed as EIB_X instead (and not
// itself); PYTHONPATH finds the eib module (and <localdir>/lib first).
func ChrootEnv(env []string, cacheDir, srcDir, localDir string) []string {
	dirs := map[string]string{srcDir: ChrootSrcDir, cacheDir: ChrootCacheDir}
	if localDir != "" {
		dirs[localDir] = ChrootLocalDir
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "EIB_") {
			continue
		}
		vars[k] = RewritePaths(v, dirs)
	}
	for k, v := range vars {
		if base, ok := strings.CutSuffix(k, "_CHROOT"); ok && base != "EIB" {
			vars[base] = v
			delete(vars, k)
		}
	}
	py := ChrootSrcDir + "/lib"
	if localDir != "" && isDir(filepath.Join(localDir, "lib")) {
		py = ChrootLocalDir + "/lib:" + py
	}
	out := []string{"PATH=" + chrootPath, "LANG=C.UTF-8", "SHELL=/bin/bash", "PYTHONPATH=" + py}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	// The reproducible-builds.org variable: tools inside the OS
	// (systemd-sysusers' /etc/shadow dates, ldconfig hooks) honour it.
	for _, kv := range env {
		if strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") {
			out = append(out, kv)
		}
	}
	sort.Strings(out[4:])
	return out
}

// RewritePaths replaces, in a value, every path that starts a word and is
// one of the keys of dirs or below it with the mapped path; the longest
// directory wins (srcdir inside cachedir maps to ChrootSrcDir).
func RewritePaths(v string, dirs map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(v); {
		if i == 0 || unicode.IsSpace(rune(v[i-1])) || v[i-1] == '=' || v[i-1] == ':' {
			best := ""
			for d := range dirs {
				if d == "" || d == "/" || !strings.HasPrefix(v[i:], d) || len(d) <= len(best) {
					continue
				}
				rest := v[i+len(d):]
				if rest == "" || rest[0] == '/' || unicode.IsSpace(rune(rest[0])) || rest[0] == ':' {
					best = d
				}
			}
			if best != "" {
				b.WriteString(dirs[best])
				i += len(best)
				continue
			}
		}
		b.WriteByte(v[i])
		i++
	}
	return b.String()
}
