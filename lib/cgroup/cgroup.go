// Package cgroup holds the processes of one build in a cgroup v2 group,
// so that every process the build started can be found and killed,
// whatever became of eib: a hook's daemon that left its process group
// with setsid, or the children of a build that was killed with SIGKILL
// (found by the next build with the same lock).
//
// It needs a writable cgroup2 (unified) hierarchy, found in
// /proc/self/mountinfo (/sys/fs/cgroup on a pure v2 host,
// /sys/fs/cgroup/unified on a hybrid one), and enables no controller: a
// group may then hold processes and child groups at once (cgroup-v2.rst,
// "No Internal Process Constraint", applies to controllers only).
// Killing uses cgroup.kill (Linux 5.14) and falls back to SIGKILL of
// each process listed in cgroup.procs.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eib-builder/eib/lib/mount"
)

// KillTimeout bounds how long Kill waits for a group to empty.
const KillTimeout = 10 * time.Second

// Group is one cgroup v2 directory.
type Group struct {
	Path string // absolute, under the cgroup2 mount
	// home is the cgroup eib was in before Enter, parent the directory
	// holding the eib- group (absolute paths).
	home, parent string
}

// Mount returns the mount point of the cgroup2 hierarchy, read from
// /proc/self/mountinfo; an error when there is none.
func Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// "id parent maj:min root mountpoint options [optional...] - fstype source superoptions"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if len(fields) >= 5 && len(postFields) >= 1 && postFields[0] == "cgroup2" {
			return mount.Unescape(fields[4]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("/proc/self/mountinfo: %w", err)
	}
	return "", errors.New("no cgroup2 filesystem mounted (/proc/self/mountinfo)")
}

// Self returns the cgroup v2 path of the calling process, relative to the
// mount ("/" for the root), from the "0::" line of /proc/self/cgroup.
func Self() (string, error) {
	return ofPid("self")
}

func ofPid(pid string) (string, error) {
	data, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("/proc/%s/cgroup: no cgroup v2 (0::) line", pid)
}

// Create opens the group "eib-<name>" next to eib's own cgroup (in its
// parent; at the mount's root when eib is in the root cgroup), creating
// it when it does not exist. An existing group is kept with whatever is
// in it: see Procs and Kill. name must be a file name.
func Create(name string) (*Group, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return nil, fmt.Errorf("cgroup name %q: not a file name", name)
	}
	mnt, err := Mount()
	if err != nil {
		return nil, err
	}
	self, err := Self()
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Join("/", self))
	g := &Group{Path: filepath.Join(mnt, parent, "eib-"+name), home: filepath.Join(mnt, self), parent: filepath.Join(mnt, parent)}
	if err := g.mkdir(); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Group) mkdir() error {
	if err := os.Mkdir(g.Path, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating cgroup %s: %w", g.Path, err)
	}
	if _, err := os.Stat(filepath.Join(g.Path, "cgroup.procs")); err != nil {
		return fmt.Errorf("cgroup %s: not a cgroup v2 directory: %w", g.Path, err)
	}
	return nil
}

// Child opens the child group name of g, creating it when it does not
// exist. name must be a file name (longer ones are cut to 200 bytes).
func (g *Group) Child(name string) (*Group, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return nil, fmt.Errorf("cgroup %s: child name %q is not a file name", g.Path, name)
	}
	if len(name) > 200 {
		name = name[:200]
	}
	c := &Group{Path: filepath.Join(g.Path, name), home: g.home, parent: g.parent}
	if err := c.mkdir(); err != nil {
		return nil, err
	}
	return c, nil
}

// Open opens the group's directory, for SysProcAttr.CgroupFD (a process
// started with clone3 CLONE_INTO_CGROUP starts in the group). The caller
// closes it.
func (g *Group) Open() (*os.File, error) {
	f, err := os.OpenFile(g.Path, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening cgroup %s: %w", g.Path, err)
	}
	return f, nil
}

// Procs returns the pids in the group and in its child groups, sorted.
func (g *Group) Procs() ([]int, error) {
	var pids []int
	err := filepath.WalkDir(g.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != g.Path && errors.Is(err, fs.ErrNotExist) {
				return nil // a child group removed meanwhile
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if p != g.Path && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: listing processes: %w", g.Path, err)
	}
	sort.Ints(pids)
	return pids, nil
}

// Populated reports whether the group or a child group has a process
// ("populated 1" in cgroup.events).
func (g *Group) Populated() (bool, error) {
	data, err := os.ReadFile(filepath.Join(g.Path, "cgroup.events"))
	if err != nil {
		return false, fmt.Errorf("cgroup %s: %w", g.Path, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return strings.TrimSpace(v) != "0", nil
		}
	}
	return false, fmt.Errorf("cgroup %s: no populated line in cgroup.events", g.Path)
}

// WaitEmpty waits up to d for the group and its child groups to hold no
// process, and reports whether they are empty. Processes that are
// exiting on their own (the pid 1 of a bubblewrap sandbox after its
// parent returned) leave within milliseconds; what is left after that
// was left running.
func (g *Group) WaitEmpty(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		populated, err := g.Populated()
		if err != nil || !populated {
			return err == nil
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill kills every process in the group and its child groups (SIGKILL
// through cgroup.kill; where the kernel has none, SIGKILL to each pid in
// cgroup.procs, again until none is left) and waits until the group is
// empty, at most KillTimeout. The caller must not be in the group.
func (g *Group) Kill() error {
	deadline := time.Now().Add(KillTimeout)
	useKill := true
	for {
		populated, err := g.Populated()
		if err != nil {
			return err
		}
		if !populated {
			return nil
		}
		if time.Now().After(deadline) {
			pids, _ := g.Procs()
			return fmt.Errorf("cgroup %s: processes %v still there %s after SIGKILL", g.Path, pids, KillTimeout)
		}
		if useKill {
			err := os.WriteFile(filepath.Join(g.Path, "cgroup.kill"), []byte("1"), 0)
			if errors.Is(err, fs.ErrNotExist) {
				useKill = false // before Linux 5.14
			} else if err != nil {
				return fmt.Errorf("cgroup %s: writing cgroup.kill: %w", g.Path, err)
			}
		}
		if !useKill {
			pids, err := g.Procs()
			if err != nil {
				return err
			}
			for _, pid := range pids {
				if pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remove removes the group and its child groups (deepest first). A group
// that does not exist is no error; one with processes left is.
func (g *Group) Remove() error {
	var dirs []string
	err := filepath.WalkDir(g.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("removing cgroup %s: %w", g.Path, err)
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && err != syscall.ENOENT {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// Enter moves eib (all its threads) into the group; its children started
// from now on start in it.
func (g *Group) Enter() error {
	return g.move(g.Path)
}

// Leave moves eib back to the cgroup it was in when the group was
// created (Create) or, when that one is gone, to the cgroup holding the
// group. The error names both when neither took it.
func (g *Group) Leave() error {
	if g.home == "" {
		return fmt.Errorf("cgroup %s: no cgroup to go back to", g.Path)
	}
	err := g.move(g.home)
	if err == nil || g.parent == "" {
		return err
	}
	perr := g.move(g.parent)
	if perr == nil {
		return nil
	}
	return errors.Join(err, perr)
}

func (g *Group) move(dir string) error {
	err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
	if err != nil {
		return fmt.Errorf("moving eib (pid %d) into cgroup %s: %w", os.Getpid(), dir, err)
	}
	return nil
}

// Cmdline is a process's command line from /proc/PID/cmdline on one
// line: its arguments separated by spaces, control characters (a
// script's newlines) shown as spaces, cut to 200 bytes with "..."
// ("[comm]" for a kernel thread or zombie, "" when it is gone).
func Cmdline(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err == nil && len(data) > 0 {
		s := strings.Join(strings.FieldsFunc(string(data), func(r rune) bool { return r < ' ' || r == 0x7f }), " ")
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		return s
	}
	if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
		return "[" + strings.TrimSpace(string(comm)) + "]"
	}
	return ""
}
