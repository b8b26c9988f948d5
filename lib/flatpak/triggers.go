package flatpak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/eib-builder/eib/lib/proc"
)

// TriggersDir is where an OS keeps its Flatpak triggers (the flatpak
// package's /usr/share/flatpak/triggers: desktop database, MIME database,
// icon caches), in-root.
const TriggersDir = "/usr/share/flatpak/triggers"

// SystemDir is the system installation's path in a running OS (flatpak's
// default FLATPAK_SYSTEM_DIR), where the triggers see it.
const SystemDir = "/var/lib/flatpak"

// Bwrap is the bubblewrap program the triggers run under.
var Bwrap = "bwrap"

// triggerPath is the PATH of a trigger (an OS's own, as .chroot hooks'
// PATH).
const triggerPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Triggers are the executable TriggersDir/*.trigger of the OS tree root,
// sorted, as in-root paths; skipped names the *.trigger files that are not
// executable regular files (after a symlink, followed inside root). A tree
// without TriggersDir has none (nil, nil, nil).
func Triggers(root string) (run, skipped []string, err error) {
	dir := filepath.Join(root, TriggersDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".trigger") {
			continue
		}
		inRoot := path.Join(TriggersDir, e.Name())
		st, err := statInRoot(root, inRoot)
		if err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			run = append(run, inRoot)
		} else {
			skipped = append(skipped, inRoot)
		}
	}
	sort.Strings(run)
	sort.Strings(skipped)
	return run, skipped, nil
}

// statInRoot stats the in-root path p of root, following symlinks as the
// OS would (an absolute target starts at root), at most 40 of them.
func statInRoot(root, p string) (os.FileInfo, error) {
	for range 40 {
		host := filepath.Join(root, p)
		st, err := os.Lstat(host)
		if err != nil || st.Mode()&os.ModeSymlink == 0 {
			return st, err
		}
		target, err := os.Readlink(host)
		if err != nil {
			return nil, err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean("/" + target)
	}
	return nil, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// RunTriggers runs the OS's own Flatpak triggers (Triggers) on the
// installation in.Dir after an install, as flatpak runs the running
// system's after each transaction (eib's flatpak commands run none:
// FLATPAK_TRIGGERSDIR is empty, see the package doc). Each trigger runs
// under bubblewrap confined in the OS tree root: root read-only at /, the
// installation writable at SystemDir (/var read-only from varDir, the
// deployment's /var, so that the installation is where the booted OS has
// it), fresh /proc, /dev and /tmp, no network, every capability dropped,
// and SystemDir as its one argument (flatpak's calling convention). Only
// the installation is writable: that is what triggers write (the exports'
// caches), as under flatpak's own sandbox of them.
//
// A tree without triggers is logged and no error. A trigger that fails
// is an error naming it (its in-root path), how it ended and its last
// error lines; the remaining triggers do not run.
//
// in.Dir must be varDir/lib/flatpak. root must have /proc, /dev and /var
// (bwrap cannot make mount points in a read-only root): an error names
// the one missing; a missing /tmp gets no tmpfs.
func (in Installation) RunTriggers(ctx context.Context, root, varDir string) error {
	run, skipped, err := Triggers(root)
	if err != nil {
		return fmt.Errorf("flatpak triggers: %w", err)
	}
	for _, s := range skipped {
		in.logf("flatpak: %s is not an executable file: not run", s)
	}
	if len(run) == 0 {
		in.logf("flatpak: the OS has no executable %s/*.trigger: no triggers run on %s", TriggersDir, SystemDir)
		return nil
	}
	if rel, err := filepath.Rel(filepath.Clean(varDir), filepath.Clean(in.Dir)); err != nil || rel != filepath.Join("lib", "flatpak") {
		return fmt.Errorf("flatpak triggers: the installation %s is not %s/lib/flatpak", in.Dir, varDir)
	}
	args := []string{"--ro-bind", root, "/"}
	for _, d := range []string{"/proc", "/dev", "/var"} {
		if !isDir(filepath.Join(root, d)) {
			return fmt.Errorf("flatpak triggers: the OS tree %s has no %s directory to run %s in", root, d, strings.Join(run, " "))
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev")
	if isDir(filepath.Join(root, "tmp")) {
		args = append(args, "--tmpfs", "/tmp")
	}
	args = append(args,
		"--ro-bind", varDir, "/var",
		"--bind", in.Dir, SystemDir,
		"--chdir", "/",
		"--unshare-all", "--die-with-parent", "--new-session",
		"--cap-drop", "ALL",
	)
	env := []string{"PATH=" + triggerPath, "LANG=C.UTF-8", "HOME=/"}
	if v, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		env = append(env, "SOURCE_DATE_EPOCH="+v)
	}
	for _, t := range run {
		argv := append(append([]string{}, args...), t, SystemDir)
		if in.Debugf != nil {
			in.Debugf("$ %s %s", Bwrap, strings.Join(argv, " "))
		}
		out, _, err := proc.Command{Name: Bwrap, Args: argv, Env: env}.Run(ctx)
		if err != nil {
			return fmt.Errorf("flatpak trigger %s of the OS (run on %s): %w", t, SystemDir, err)
		}
		in.logf("flatpak: ran the OS's trigger %s on %s%s", t, SystemDir, outputNote(out))
	}
	return nil
}

// outputNote is a trigger's output for the log ("" when none).
func outputNote(out string) string {
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	return ": " + strings.ReplaceAll(out, "\n", "; ")
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
