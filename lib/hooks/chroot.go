package hooks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/eib-builder/eib/lib/build"
)

// In-root paths of the read-only binds given to .chroot hooks.
const (
	ChrootCacheDir = "/tmp/eib"
	ChrootSrcDir   = "/tmp/eib/src"
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
// at /, fresh /proc and /dev, a read-only /sys, a tmpfs /tmp, cachedir and srcdir read-only
// at /tmp/eib and /tmp/eib/src, the hook at /tmp/<name>, and an
// environment of only EIB_* (paths rewritten to the in-root binds), PATH
// and LANG.
func (r *Runner) chrootCommand(b *build.Build, h Hook, root string, env []string) (*exec.Cmd, error) {
	if !isDir(root) {
		return nil, fmt.Errorf("install root %s is not a directory", root)
	}
	cacheDir, err := b.Get("build", "cachedir")
	if err != nil {
		return nil, fmt.Errorf("[build] cachedir: %w", err)
	}
	cacheDir = filepath.Clean(cacheDir)
	srcDir := filepath.Clean(b.SrcDir)
	// bwrap cannot create the srcdir mount point inside the read-only
	// cachedir bind: make it on the host (an empty directory).
	if err := os.MkdirAll(filepath.Join(cacheDir, "src"), 0o755); err != nil {
		return nil, fmt.Errorf("cachedir mount point for the srcdir: %w", err)
	}
	bwrap := r.Bwrap
	if bwrap == "" {
		bwrap = "bwrap"
	}
	inRoot := "/tmp/" + h.Name
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
		"--tmpfs", "/tmp",
		"--ro-bind", cacheDir, ChrootCacheDir,
		"--ro-bind", srcDir, ChrootSrcDir,
		"--ro-bind", h.Path, inRoot,
		"--chdir", "/",
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent", "--new-session",
		"--cap-drop", "ALL",
	}
	for _, c := range chrootCaps {
		args = append(args, "--cap-add", c)
	}
	if h.Executable {
		args = append(args, inRoot)
	} else {
		args = append(args, "bash", "-ex", inRoot)
	}
	cmd := exec.Command(bwrap, args...)
	cmd.Dir = "/"
	cmd.Env = ChrootEnv(env, cacheDir, srcDir)
	return cmd, nil
}

// ChrootEnv keeps only the EIB_* variables of env, with values under
// cacheDir or srcDir rewritten to their in-root paths, plus PATH and LANG.
func ChrootEnv(env []string, cacheDir, srcDir string) []string {
	out := []string{"PATH=" + chrootPath, "LANG=C"}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "EIB_") {
			continue
		}
		out = append(out, k+"="+RewritePaths(v, map[string]string{srcDir: ChrootSrcDir, cacheDir: ChrootCacheDir}))
	}
	return out
}

// RewritePaths replaces, in a value, every path that starts a word and is
// one of the keys of dirs or below it with the mapped path; the longest
// directory wins (srcdir inside cachedir maps to /tmp/eib/src).
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
