package disk

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ext4Block is the block size of the root filesystem.
const ext4Block = 4096

// immutableFlag is EXT2_IMMUTABLE_FL, the flag ostree sets on each
// deployment root and that mkfs.ext4 -d drops.
const immutableFlag = 0x10

// mke2fsConf pins the filesystem defaults (Debian 12's ext4 profile), so
// the root filesystem does not change with the host's /etc/mke2fs.conf:
// the same features on every build host, which a reproducible image and
// the OS's own e2fsprogs (resize2fs on first boot) rely on.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	default = {
		inode_ratio = 16384
	}
`

// ext4Dev returns the unix_io name that opens the filesystem of pl inside
// img without a loop device.
func ext4Dev(img string, pl Placed) string {
	return fmt.Sprintf("%s?offset=%d", img, pl.Offset())
}

// makeExt4 creates the root filesystem of pl inside img, populated from
// c.Sysroot with mkfs.ext4 -d (hardlinks, xattrs, owners, modes and device
// nodes survive), then restores what -d drops and sets the version xattr.
// Its inode count is RootInodes of the sysroot as mkfs.ext4 -d copies it
// (the boot loader's files are added after the plan was sized), grows
// saying whether the OS grows the filesystem on first boot.
func makeExt4(ctx context.Context, img string, pl Placed, features string, grows bool, c Content) error {
	blocks := pl.Bytes() / ext4Block
	tree, err := Measure(c.Sysroot)
	if err != nil {
		return err
	}
	inodes := RootInodes(tree, pl.Bytes(), grows)
	// The disk file is new and sparse: its zeros need not be written, and
	// the inode tables are marked zeroed (no lazy init on first boot).
	ext := fmt.Sprintf("offset=%d,nodiscard,assume_storage_prezeroed=1", pl.Offset())
	conf, err := os.CreateTemp("", "eib-mke2fs-*.conf")
	if err != nil {
		return err
	}
	defer os.Remove(conf.Name())
	if _, err := conf.WriteString(mke2fsConf); err != nil {
		conf.Close()
		return err
	}
	if err := conf.Close(); err != nil {
		return err
	}
	env := e2fsEnv("MKE2FS_CONFIG=" + conf.Name())
	if c.Reproducible() {
		// A fixed directory hash seed and filesystem times.
		ext += ",hash_seed=" + pl.FSUUID
		env = append(env, fmt.Sprintf("E2FSPROGS_FAKE_TIME=%d", c.Epoch))
	}
	args := []string{"-q", "-F", "-t", "ext4", "-O", features, "-m", "1", "-T", "default",
		"-b", strconv.Itoa(ext4Block), "-N", strconv.FormatInt(inodes, 10), "-L", pl.FSLabel, "-E", ext, "-d", c.Sysroot}
	if pl.FSUUID != "" {
		args = append(args, "-U", pl.FSUUID)
	}
	args = append(args, img, strconv.FormatInt(blocks, 10))
	c.logf("root filesystem: mkfs.ext4 -d %s into partition %d (%d MiB at byte %d), %d inodes for a tree of %d (%d MiB of blocks)%s",
		c.Sysroot, pl.Number, pl.Bytes()/MiB, pl.Offset(), inodes, tree.Inodes, tree.Blocks/MiB,
		map[bool]string{true: ", at least one per 16 KiB: it grows on first boot", false: ""}[grows])
	began := time.Now()
	// mke2fs fsyncs the whole disk file at the end: needless for a
	// scratch image that is read back at once (a third of its time).
	tool, args := noSync("mkfs.ext4", args)
	if _, err := run(ctx, nil, env, tool, args...); err != nil {
		return fmt.Errorf("creating the root filesystem from %s: %w", c.Sysroot, err)
	}
	c.logf("mkfs.ext4 -d: %.1f s", time.Since(began).Seconds())
	began = time.Now()

	dev := ext4Dev(img, pl)
	var cmds, times []string
	if c.Reproducible() {
		scratch, err := os.MkdirTemp("", "eib-xattrs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(scratch)
		// The xattrs in order first (the version xattr is then added to
		// the root directory's), the times last (nothing after them may
		// touch an inode).
		if cmds, times, err = canonicalize(ctx, dev, c.Sysroot, c.Epoch, scratch); err != nil {
			return err
		}
	}
	for _, p := range c.Immutable {
		flags, err := inodeFlags(ctx, dev, p)
		if err != nil {
			return err
		}
		cmds = append(cmds, fmt.Sprintf("set_inode_field %s flags 0x%x", quoteDebugfs(p), flags|immutableFlag))
	}
	if c.Version != "" {
		cmds = append(cmds, fmt.Sprintf("ea_set / user.eos-image-version %s", quoteDebugfs(c.Version)))
	}
	cmds = append(cmds, times...)
	if err := debugfsWrite(ctx, dev, cmds, env); err != nil {
		return fmt.Errorf("finishing the root filesystem of %s: %w", img, err)
	}
	c.logf("debugfs: immutable deployment root, version xattr%s: %d commands in %.1f s",
		map[bool]string{true: ", xattrs in name order, fixed times", false: ""}[c.Reproducible()], len(cmds), time.Since(began).Seconds())
	return nil
}

// e2fsEnv is the environment of mke2fs and debugfs: the host's, the C
// locale, and extra. mke2fs -d reads each directory with scandir() and
// alphasort(), whose strcoll() follows LC_COLLATE: e2fsprogs 1.47.0 sets
// only LC_CTYPE and LC_MESSAGES from the environment (measured), so the
// order is byte order today; the C locale keeps it so, and keeps the
// debugfs messages that eib reads untranslated.
func e2fsEnv(extra ...string) []string {
	return append(os.Environ(), append([]string{"LC_ALL=C"}, extra...)...)
}

var flagsRE = regexp.MustCompile(`Flags: 0x([0-9a-f]+)`)

// inodeFlags reads the inode flags of path in the filesystem dev.
func inodeFlags(ctx context.Context, dev, path string) (uint64, error) {
	tool, args := noSync("debugfs", []string{"-R", "stat " + quoteDebugfs(path), dev})
	out, err := run(ctx, nil, e2fsEnv(), tool, args...)
	if err != nil {
		return 0, err
	}
	m := flagsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("debugfs stat %s in %s: no flags in its output (is the path in the sysroot?)", path, dev)
	}
	return strconv.ParseUint(m[1], 16, 32)
}

// debugfsWrite runs commands with debugfs -w; debugfs exits 0 on failed
// commands, so any message on stderr other than its banner is an error.
func debugfsWrite(ctx context.Context, dev string, cmds []string, env []string) error {
	if len(cmds) == 0 {
		return nil
	}
	f, err := os.CreateTemp("", "eib-debugfs-*.cmds")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(strings.Join(cmds, "\n") + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	tool, cmd := noSync("debugfs", []string{"-w", "-f", f.Name(), dev})
	_, stderr, err := runOutputs(ctx, nil, env, tool, cmd...)
	if err != nil {
		return err
	}
	var problems []string
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "debugfs ") {
			continue
		}
		problems = append(problems, line)
	}
	if len(problems) > 0 {
		return fmt.Errorf("debugfs -w %s: %s", dev, strings.Join(problems, "; "))
	}
	return nil
}

// noSync returns the command line that runs tool with args under
// eatmydata when it is installed (its fsync and sync calls become no-ops:
// the disk file is scratch, read back at once and removed), else tool and
// args themselves. The bytes written are the same either way. mke2fs,
// debugfs (even read-only) and e2fsck -n all fsync the whole disk file when
// they close the filesystem (e2fsprogs 1.47.0, strace): the root's data,
// just written by mkfs.ext4 -d and still in the page cache, would go to
// disk first (measured: 0.2 to 0.5 s per 1 GiB here, against 5 to 15 ms).
func noSync(tool string, args []string) (string, []string) {
	eat, err := exec.LookPath("eatmydata")
	if err != nil {
		return tool, args
	}
	return eat, append([]string{tool}, args...)
}

// canonicalize returns the debugfs commands that take out of the
// filesystem dev, made from sysroot, what mkfs.ext4 -d copied from the
// build host rather than from the content:
//   - xattrs: the order of each inode's, which mkfs.ext4 -d writes in the
//     order the host file system lists them (ext4 in the order they were
//     set, tmpfs of Linux 6.18 in reverse name order; measured): an inode
//     with more than one gets them all removed and set again in byte
//     order of their names, from value files written under scratch;
//   - times: fixed access, change and creation times (epoch) and a
//     modification time no later than epoch (SOURCE_DATE_EPOCH's clamping).
//
// Inodes are addressed by number (<N>): a path would make debugfs follow
// symlinks. Each inode is done once, whichever of its hardlinks comes
// first.
func canonicalize(ctx context.Context, dev, sysroot string, epoch int64, scratch string) (xattrs, times []string, err error) {
	type entry struct {
		rel    string
		mtime  int64
		xattrs []string // names, when more than one
	}
	var entries []entry
	var dirs []string
	err = filepath.WalkDir(sysroot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(sysroot, path)
		if err != nil {
			return err
		}
		rel = "/" + filepath.ToSlash(rel)
		if rel == "/." {
			rel = "/"
		}
		if strings.ContainsAny(rel, "\"\n") {
			return fmt.Errorf("cannot fix the times of %q (quote or newline in the name)", path)
		}
		names, err := xattrNames(path)
		if err != nil {
			return err
		}
		if len(names) < 2 {
			names = nil // nothing to order
		}
		entries = append(entries, entry{rel, info.ModTime().Unix(), names})
		if d.IsDir() {
			dirs = append(dirs, rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reproducible image: walking %s: %w", sysroot, err)
	}
	inodes, err := listInodes(ctx, dev, dirs)
	if err != nil {
		return nil, nil, fmt.Errorf("reproducible image: %w", err)
	}
	inodes["/"] = "2" // the root directory

	done := map[string]bool{}
	at := "@" + strconv.FormatInt(epoch, 10)
	setTimes := func(ino string, mtime int64) {
		for _, f := range []string{"atime", "ctime", "crtime"} {
			times = append(times, "set_inode_field <"+ino+"> "+f+" "+at)
		}
		if mtime > epoch {
			times = append(times, "set_inode_field <"+ino+"> mtime "+at)
		}
	}
	setTimes("11", epoch+1) // lost+found, made by mke2fs
	done["11"] = true
	for _, e := range entries {
		ino, ok := inodes[e.rel]
		if !ok {
			return nil, nil, fmt.Errorf("reproducible image: %s is not in the filesystem made from %s", e.rel, sysroot)
		}
		if done[ino] {
			continue
		}
		done[ino] = true
		if len(e.xattrs) > 0 {
			cmds, err := xattrsInOrder(ino, filepath.Join(sysroot, e.rel), e.xattrs, scratch)
			if err != nil {
				return nil, nil, fmt.Errorf("reproducible image: %w", err)
			}
			xattrs = append(xattrs, cmds...)
		}
		mtime := e.mtime
		if e.rel == "/" {
			mtime = epoch + 1 // the root directory: always at epoch
		}
		setTimes(ino, mtime)
	}
	return xattrs, times, nil
}

// xattrNames lists the extended attributes of path (not following a
// symlink), as mkfs.ext4 -d reads them.
func xattrNames(path string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing the xattrs of %s: %w", path, err)
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

// xattrsInOrder returns the debugfs commands that remove the xattrs names
// of inode ino and set them again, with the values path has, in byte order
// of their names. The values go through files under scratch (they may hold
// any byte).
func xattrsInOrder(ino, path string, names []string, scratch string) ([]string, error) {
	names = slices.Clone(names)
	slices.Sort(names)
	cmds := []string{"ea_rm <" + ino + ">"}
	for _, name := range names {
		if strings.ContainsAny(name, " \t\"") {
			return nil, fmt.Errorf("%s: cannot reorder the xattr %q (space or quote in its name)", path, name)
		}
		cmds[0] += " " + name
	}
	for i, name := range names {
		value, err := xattrValue(path, name)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(scratch, ino+"."+strconv.Itoa(i))
		if err := os.WriteFile(file, value, 0o600); err != nil {
			return nil, err
		}
		cmds = append(cmds, "ea_set -f "+quoteDebugfs(file)+" <"+ino+"> "+name)
	}
	return cmds, nil
}

// xattrValue reads the value of the xattr name of path (not following a
// symlink).
func xattrValue(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the xattr %s of %s: %w", name, path, err)
		}
		return buf[:n], nil
	}
}

// listInodes returns the inode number of every entry of dirs in the
// filesystem dev, by path ("ls -p" of each directory in one debugfs run).
func listInodes(ctx context.Context, dev string, dirs []string) (map[string]string, error) {
	f, err := os.CreateTemp("", "eib-debugfs-*.cmds")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	for _, d := range dirs {
		fmt.Fprintf(f, "ls -p %s\n", quoteDebugfs(d))
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	tool, args := noSync("debugfs", []string{"-f", f.Name(), dev})
	out, err := run(ctx, nil, e2fsEnv(), tool, args...)
	if err != nil {
		return nil, err
	}
	inodes := map[string]string{}
	dir := ""
	for _, line := range strings.Split(out, "\n") {
		if cmd, ok := strings.CutPrefix(line, "debugfs: ls -p "); ok {
			dir = strings.Trim(cmd, `"`)
			continue
		}
		// /INODE/MODE/UID/GID/NAME/SIZE/
		fields := strings.Split(line, "/")
		if len(fields) != 8 || fields[0] != "" {
			continue
		}
		name := fields[5]
		if name == "." || name == ".." || name == "" {
			continue
		}
		inodes[path.Join(dir, name)] = fields[1]
	}
	return inodes, nil
}

// quoteDebugfs quotes a path or value for debugfs's command parser.
func quoteDebugfs(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"") {
		return s
	}
	return `"` + s + `"`
}

// Fsck checks the root filesystem of the plan in img with e2fsck -fn.
func Fsck(ctx context.Context, img string, root Placed) error {
	tool, args := noSync("e2fsck", []string{"-f", "-n", ext4Dev(img, root)})
	out, err := exec.CommandContext(ctx, tool, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("the root filesystem in %s is not clean: e2fsck -fn %s: %w:\n%s", img, ext4Dev(img, root), err, strings.TrimSpace(string(out)))
	}
	return nil
}
