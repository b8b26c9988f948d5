// Package hooks runs a hook group with EIB's contract: the hook names come
// from the merged "<group>:hooks" key, sorted by name (byte order); each is
// looked up in <localdir>/hooks/<group>/ and then <srcdir>/hooks/<group>/
// (the first regular file wins); an executable hook is executed, any other
// is run by "bash -ex" with lib/eib.sh sourced first; "*.chroot" hooks run
// confined in the group's install root with bubblewrap (see chroot.go).
//
// Hooks run with cwd = srcdir, in their own process group, with the build
// environment (build.Build.Environ) plus EIB_HOOK_GROUP, EIB_PROGRAM,
// EIB_DEBUG=1 with --debug, PYTHONPATH with <localdir>/lib and
// <srcdir>/lib first (the eib Python module, lib/eib.py), and, when the
// install root has the cachedir and the eib tree bound at ChrootCacheDir
// and ChrootSrcDir (the image stage does that), EIB_CACHEDIR_CHROOT and
// EIB_SRCDIR_CHROOT for lib/eib.sh's chroot function. EIB_HOOKSDIR (from
// the environment or a [build] hooksdir key) replaces <srcdir>/hooks.
// Cancelling the context (SIGINT/SIGTERM) kills the hook's whole group;
// processes a hook leaves behind are killed when it ends. With the
// build's cgroup (Runner.Cgroup) each hook runs in a child cgroup of its
// own, so that this holds for a daemon that left the process group with
// setsid too, and each such process is logged with the hook's name.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/cgroup"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/proc"
)

// ChrootSuffix marks hooks that run inside the install root.
const ChrootSuffix = ".chroot"

// killGrace is how long a hook's process group gets between SIGTERM and
// SIGKILL when the build is interrupted.
const killGrace = 5 * time.Second

// exitSettle is how long the processes in a hook's cgroup get to exit on
// their own after the hook returned, before what is left is logged and
// killed.
const exitSettle = 500 * time.Millisecond

// Runner runs hook groups; it implements build.HookRunner.
type Runner struct {
	// Program is the eib executable exported as EIB_PROGRAM (lib/eib.sh's
	// sign_file calls "$EIB_PROGRAM" sign). "" = os.Executable().
	Program string
	// Bwrap is the bubblewrap executable for .chroot hooks ("" = "bwrap").
	Bwrap string
	// Cgroup, when not nil, is the build's cgroup (the engine's): each
	// hook starts in its own child group "hook-<group>-<name>", and what
	// it leaves running there (a setsid daemon too) is logged with the
	// hook's name and killed when it ends. nil: only the hook's process
	// group is killed.
	Cgroup *cgroup.Group
}

// Hook is one resolved hook of a group.
type Hook struct {
	Group      string
	Name       string
	Path       string // the file found
	Chroot     bool   // name ends in .chroot
	Executable bool   // any execute bit set
}

// Dirs returns the directories searched for a group's hooks, in order:
// <localDir>/hooks/<group>, then <hooksDir>/<group> (hooksDir is eib's
// hooks directory, see HooksDir).
func Dirs(localDir, hooksDir, group string) []string {
	var dirs []string
	if localDir != "" {
		dirs = append(dirs, filepath.Join(localDir, "hooks", group))
	}
	return append(dirs, filepath.Join(hooksDir, group))
}

// Resolve sorts names (byte order) and finds each one's file in dirs. A
// missing hook is a *build.HookError naming the hook and the directories.
func Resolve(group string, names []string, dirs []string) ([]Hook, error) {
	names = append([]string(nil), names...)
	sort.Strings(names)
	var hooks []Hook
	for _, name := range names {
		if name == "" {
			continue
		}
		if strings.Contains(name, "/") || name == "." || name == ".." {
			return nil, &build.HookError{Group: group, Hook: name,
				Err: fmt.Errorf("invalid hook name in [%s] hooks: a hook name is a file name", group)}
		}
		h := Hook{Group: group, Name: name, Chroot: strings.HasSuffix(name, ChrootSuffix)}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			st, err := os.Stat(p)
			if err == nil && !st.Mode().IsRegular() && !st.IsDir() {
				// A directory is skipped, as EIB's [ -f ] skips it; a
				// FIFO, socket or device where a hook should be is a
				// mistake eib names instead of running the next
				// directory's hook (eib's rule).
				return nil, &build.HookError{Group: group, Hook: name, Path: p,
					Err: fmt.Errorf("%s is not a regular file (%s): a hook must be a regular file or a symbolic link to one", p, config.FileKind(st.Mode()))}
			}
			if err == nil && !st.IsDir() {
				h.Path = p
				h.Executable = st.Mode()&0o111 != 0
				break
			}
		}
		if h.Path == "" {
			return nil, &build.HookError{Group: group, Hook: name,
				Err: fmt.Errorf("missing hook: %s is listed in [%s] hooks but is not a file in %s",
					name, group, strings.Join(dirs, " or "))}
		}
		hooks = append(hooks, h)
	}
	return hooks, nil
}

// GroupHooks reads "<group>:hooks" from the build's config and resolves it
// in <localdir>/hooks/<group>, then <hooksdir>/<group> (HooksDir).
func GroupHooks(b *build.Build, group string) ([]Hook, error) {
	r := b.Config.Read()
	if !r.Has(group, "hooks") {
		return nil, r.Err()
	}
	names := r.List(group, "hooks")
	if err := r.Err(); err != nil {
		return nil, err
	}
	env, err := b.Environ()
	if err != nil {
		return nil, err
	}
	hooksDir, err := HooksDir(env, b.SrcDir)
	if err != nil {
		return nil, err
	}
	return Resolve(group, names, Dirs(b.LocalDir, hooksDir, group))
}

// HooksDir is the directory of eib's own hook groups: EIB_HOOKSDIR of env
// when set (as EIB's run_hooks allows; an absolute path), else
// <srcdir>/hooks.
func HooksDir(env []string, srcDir string) (string, error) {
	d := lookupEnv(env, "EIB_HOOKSDIR")
	if d == "" {
		return filepath.Join(srcDir, "hooks"), nil
	}
	if !filepath.IsAbs(d) {
		return "", fmt.Errorf("EIB_HOOKSDIR=%s: not an absolute path", d)
	}
	return filepath.Clean(d), nil
}

// lookupEnv returns the value of key in a KEY=VALUE list ("" if absent).
func lookupEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// hookEnv returns the variables RunGroup adds for the hooks of group.
func (r *Runner) hookEnv(b *build.Build, group, root string, env []string) []string {
	program := r.Program
	if program == "" {
		if exe, err := os.Executable(); err == nil {
			program = exe
		}
	}
	add := []string{"EIB_HOOK_GROUP=" + group, "EIB_PROGRAM=" + program}
	if b.Debug {
		add = append(add, "EIB_DEBUG=1")
	}
	// The eib Python module: <localdir>/lib first (EIB's order), then
	// the eib tree's lib, then what the environment had.
	var py []string
	if b.LocalDir != "" && isDir(filepath.Join(b.LocalDir, "lib")) {
		py = append(py, filepath.Join(b.LocalDir, "lib"))
	}
	py = append(py, filepath.Join(b.SrcDir, "lib"))
	if old := lookupEnv(env, "PYTHONPATH"); old != "" {
		py = append(py, old)
	}
	add = append(add, "PYTHONPATH="+strings.Join(py, ":"))
	if root != "" && sameFile(filepath.Join(root, ChrootSrcDir), b.SrcDir) {
		add = append(add, "EIB_CACHEDIR_CHROOT="+ChrootCacheDir, "EIB_SRCDIR_CHROOT="+ChrootSrcDir)
	}
	return add
}

// sameFile reports whether a and b are the same directory (a bind mount
// of b at a counts).
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// RunGroup runs the hooks of group. root is the install root for .chroot
// hooks; "" skips them with a log line.
func (r *Runner) RunGroup(ctx context.Context, b *build.Build, group, root string) error {
	hooks, err := GroupHooks(b, group)
	if err != nil {
		return err
	}
	if len(hooks) == 0 {
		b.Log.Debugf("no %s hooks", group)
		return nil
	}
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.Name
	}
	b.Log.Printf("running %s hooks: %s", group, strings.Join(names, " "))
	env, err := b.Environ()
	if err != nil {
		return err
	}
	env = build.MergeEnv(env, r.hookEnv(b, group, root, env))
	for _, h := range hooks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s hooks interrupted before %s: %w", group, h.Name, err)
		}
		if h.Chroot && root == "" {
			logHook(b, label(b, group, h.Name), "skipped: no install root for .chroot hooks in the %s group", group)
			continue
		}
		if err := r.run(ctx, b, h, root, env); err != nil {
			return err
		}
	}
	return nil
}

func logHook(b *build.Build, hook, format string, args ...any) {
	if l, ok := b.Log.(*buildlog.Log); ok {
		l.HookPrintf(hook, format, args...)
		return
	}
	b.Log.Printf(hook+": "+format, args...)
}

// output returns the writer for a hook's output and its last lines.
func output(b *build.Build, hook string) (io.WriteCloser, func() []string) {
	if l, ok := b.Log.(*buildlog.Log); ok {
		w := l.Output(hook)
		return w, w.Tail
	}
	w := &debugWriter{log: b.Log, hook: hook}
	return w, func() []string { return nil }
}

type debugWriter struct {
	log  build.Logger
	hook string
	buf  []byte
}

func (w *debugWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.log.Debugf("%s: %s", w.hook, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *debugWriter) Close() error {
	if len(w.buf) > 0 {
		w.log.Debugf("%s: %s", w.hook, w.buf)
	}
	return nil
}

// label names a hook in the log after the stage: "50-x" when the group is
// the stage's own, "content/50-x" for another group (the image stage also
// runs the content hooks).
func label(b *build.Build, group, hook string) string {
	if b.Stage == group {
		return hook
	}
	return group + "/" + hook
}

// run runs one hook and logs its start, end, status and duration.
func (r *Runner) run(ctx context.Context, b *build.Build, h Hook, root string, env []string) error {
	name := label(b, h.Group, h.Name)
	var cmd *exec.Cmd
	var err error
	if h.Chroot {
		var tidy func() []string
		cmd, tidy, err = r.chrootCommand(b, h, root, env)
		if err != nil {
			return &build.HookError{Group: h.Group, Hook: h.Name, Path: h.Path, Err: err}
		}
		defer func() {
			for _, left := range tidy() {
				logHook(b, name, "left in the install root: %s", left)
			}
		}()
		logHook(b, name, "start (in %s, from %s)", root, h.Path)
	} else {
		cmd = hostCommand(b, h, env)
		logHook(b, name, "start (%s)", h.Path)
	}
	w, tail := output(b, name)
	var cg *cgroup.Group
	if r.Cgroup != nil {
		if cg, err = r.Cgroup.Child("hook-" + h.Group + "-" + h.Name); err != nil {
			return &build.HookError{Group: h.Group, Hook: h.Name, Path: h.Path, Err: err}
		}
	}
	start := time.Now()
	err = runGroup(ctx, cmd, w, cg, func(pid int, cmdline string) {
		logHook(b, name, "process %d (%s) still ran when the hook ended: killed", pid, cmdline)
	})
	w.Close()
	d := time.Since(start)
	status := "ok"
	if err != nil {
		status = err.Error()
	}
	b.AddTiming(build.Timing{Stage: b.Stage, Hook: h.Group + "/" + h.Name, Seconds: d.Seconds(), Status: status, Started: start})
	if err != nil {
		logHook(b, name, "failed after %.1fs: %v", d.Seconds(), err)
		// Without --debug the terminal has not shown the output: show
		// its end (the file has all of it).
		if l, ok := b.Log.(*buildlog.Log); ok && !b.Debug {
			for _, line := range tail() {
				l.TermHookf(name, "| %s", line)
			}
		}
		return &build.HookError{Group: h.Group, Hook: h.Name, Path: h.Path, Err: err}
	}
	logHook(b, name, "done in %.1fs (exit status 0)", d.Seconds())
	return nil
}

// hostCommand runs a hook on the host with cwd = srcdir.
func hostCommand(b *build.Build, h Hook, env []string) *exec.Cmd {
	var cmd *exec.Cmd
	if h.Executable {
		cmd = exec.Command(h.Path)
	} else {
		// "bash -ex" with eib.sh sourced first: xtrace starts at the
		// hook (eib.sh's own lines would only be noise in the log), and
		// the positional parameters are cleared.
		cmd = exec.Command("bash", "-e", "-c", ". \"$1\"\n__eib_hook=$2\nset -x --\n. \"$__eib_hook\"",
			"bash", filepath.Join(b.SrcDir, "lib", "eib.sh"), h.Path)
	}
	cmd.Dir = b.SrcDir
	cmd.Env = env
	return cmd
}

// runGroup runs cmd in its own process group (proc.Start) with its output
// to w. When ctx is cancelled the group gets SIGTERM, then SIGKILL after
// killGrace. Processes the command leaves in its group are killed when it
// exits. With cg (not nil) it runs in that cgroup: what is left there when
// it ends, in or out of its process group, is passed to left, killed, and
// the cgroup removed.
func runGroup(ctx context.Context, cmd *exec.Cmd, w io.Writer, cg *cgroup.Group, left func(pid int, cmdline string)) (err error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	var opts []proc.Option
	if cg != nil {
		dir, err := cg.Open()
		if err != nil {
			pr.Close()
			pw.Close()
			return err
		}
		defer dir.Close()
		opts = append(opts, proc.InCgroup(int(dir.Fd())))
		// Once, when the hook has ended (or did not start).
		defer func() {
			if kerr := killCgroup(cg, left); kerr != nil && err == nil {
				err = kerr
			}
		}()
	}
	p, err := proc.Start(cmd, opts...)
	if err != nil {
		pr.Close()
		pw.Close()
		return err
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(w, pr)
		close(copied)
	}()
	var werr error
	select {
	case <-p.Done():
		werr = p.Wait()
		// Whatever the hook left running in its cgroup or its process
		// group goes too.
		if cg != nil {
			kerr := killCgroup(cg, left)
			cg, left = nil, nil
			if kerr != nil {
				defer func() {
					if err == nil {
						err = kerr
					}
				}()
			}
		}
		p.KillGroup()
	case <-ctx.Done():
		werr = p.Stop(killGrace)
		if cg != nil {
			// Its cgroup too, before waiting for its output to end.
			_ = cg.Kill()
		}
	}
	select {
	case <-copied:
	case <-time.After(killGrace):
		// A process outside the group still holds the pipe.
	}
	pr.Close()
	if ctx.Err() != nil {
		return fmt.Errorf("stopped, the build was interrupted: %w", context.Cause(ctx))
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("killed by signal %v", ws.Signal())
		}
		return fmt.Errorf("exit status %d", ee.ExitCode())
	}
	return werr
}

// killCgroup passes each process left in cg to left, kills them all and
// removes cg.
func killCgroup(cg *cgroup.Group, left func(pid int, cmdline string)) error {
	if cg == nil {
		return nil // done already
	}
	// A sandbox's processes exit just after the hook's bwrap returns.
	cg.WaitEmpty(exitSettle)
	pids, err := cg.Procs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		left(pid, cgroup.Cmdline(pid))
	}
	if err := cg.Kill(); err != nil {
		return err
	}
	return cg.Remove()
}

// isDir reports whether p is a directory.
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
