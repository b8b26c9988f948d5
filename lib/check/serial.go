package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SerialConsoleArg is what the check boot appends to a kernel command line
// that has no console=ttyS0: the kernel's console (and so systemd's
// status output, its serial-getty and the demo's marker) goes to the first
// serial port, which QEMU logs.
const SerialConsoleArg = "console=ttyS0,115200"

// Serial console settings: [check] serial_console and eib check-image
// --serial-console.
const (
	SerialAuto = "auto" // give the check boot a serial console (a throw-away copy) where it has none
	SerialOff  = "off"  // boot the image exactly as shipped
)

// Where boot entries are looked for on each file system of an image: GRUB
// menus (kernel lines: linux, linux16, linuxefi) and directories of Boot
// Loader Specification entries (*.conf, "options" lines). An ext2/3/4
// root holds /boot as a directory (ostree's /boot/loader is a symlink to
// loader.0 or loader.1, followed); a separate /boot or a FAT ESP holds
// them at its top.
var (
	grubMenus = []string{"/boot/grub/grub.cfg", "/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub2/grub.cfg"}
	blsDirs   = []string{"/boot/loader/entries", "/loader/entries"}
)

// hasSerialConsole reports whether a kernel command line (white-space
// separated) already has console=ttyS0 (with or without options).
func hasSerialConsole(cmdline string) bool {
	for _, a := range strings.Fields(cmdline) {
		if a == "console=ttyS0" || strings.HasPrefix(a, "console=ttyS0,") {
			return true
		}
	}
	return false
}

// appendArg appends " "+SerialConsoleArg to line, after its trailing
// white space is dropped.
func appendArg(line string) string {
	return strings.TrimRight(line, " \t\r") + " " + SerialConsoleArg
}

// grubKernelLine reports whether a grub.cfg line loads a kernel with its
// command line (first word linux, linux16 or linuxefi).
func grubKernelLine(line string) bool {
	f := strings.Fields(line)
	return len(f) > 1 && (f[0] == "linux" || f[0] == "linux16" || f[0] == "linuxefi")
}

// rewriteGRUB appends SerialConsoleArg to every kernel line of a GRUB menu
// that has no console=ttyS0. It returns the new text, how many lines it
// changed and how many already had one.
func rewriteGRUB(text string) (out string, changed, had int) {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !grubKernelLine(l) {
			continue
		}
		if hasSerialConsole(l) {
			had++
			continue
		}
		lines[i] = appendArg(l)
		changed++
	}
	return strings.Join(lines, "\n"), changed, had
}

// rewriteBLS appends SerialConsoleArg to the options lines of a Boot
// Loader Specification entry that has no console=ttyS0 in any of them (an
// entry may split its options over several lines), or adds an options
// line to an entry that has none. changed or had is true.
func rewriteBLS(text string) (out string, changed, had bool) {
	lines := strings.Split(text, "\n")
	last := -1
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "options" {
			last = i
			if hasSerialConsole(strings.Join(f[1:], " ")) {
				return text, false, true
			}
		}
	}
	if last >= 0 {
		lines[last] = appendArg(lines[last])
		return strings.Join(lines, "\n"), true, false
	}
	nl := ""
	if text != "" && !strings.HasSuffix(text, "\n") {
		nl = "\n"
	}
	return text + nl + "options " + SerialConsoleArg + "\n", true, false
}

// fsKind is a file system the edit can read and write without mounting.
type fsKind string

const (
	fsExt fsKind = "ext" // ext2/3/4, through debugfs
	fsFAT fsKind = "fat" // FAT12/16/32, through mtools
)

// volume is a file system of a disk image at a byte offset.
type volume struct {
	Part   int // partition number (1-based), 0 for a file system on the whole disk
	Offset int64
	Kind   fsKind
}

func (v volume) String() string {
	if v.Part == 0 {
		return "whole disk (" + string(v.Kind) + ")"
	}
	return fmt.Sprintf("partition %d (%s)", v.Part, v.Kind)
}

// volumes lists the ext and FAT file systems of the raw disk image at
// path: those of its partitions (sfdisk --json; GPT or dos), or the whole
// disk when it has no partitions. Other partitions are left out.
func volumes(ctx context.Context, path string) ([]volume, error) {
	var t struct {
		Table struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	cmd := exec.CommandContext(ctx, "sfdisk", "--json", path)
	out, err := cmd.Output()
	if err == nil {
		if err := json.Unmarshal(out, &t); err != nil {
			return nil, fmt.Errorf("%s: reading sfdisk --json: %w", path, err)
		}
	}
	if t.Table.SectorSize == 0 {
		t.Table.SectorSize = 512
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vols []volume
	if len(t.Table.Partitions) == 0 {
		if k := probeFS(f, 0); k != "" {
			vols = append(vols, volume{Part: 0, Offset: 0, Kind: k})
		}
		return vols, nil
	}
	for i, p := range t.Table.Partitions {
		// sfdisk names a partition by the image path and its number.
		n := i + 1
		if j := strings.LastIndexFunc(p.Node, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 && j < len(p.Node)-1 {
			if v, err := strconv.Atoi(p.Node[j+1:]); err == nil {
				n = v
			}
		}
		off := p.Start * t.Table.SectorSize
		if k := probeFS(f, off); k != "" {
			vols = append(vols, volume{Part: n, Offset: off, Kind: k})
		}
	}
	return vols, nil
}

// probeFS tells an ext or FAT file system at off by its superblock: the
// ext magic 0xEF53 at byte 1080, or a boot sector ending in 0x55AA that
// names FAT12/16 (byte 54) or FAT32 (byte 82).
func probeFS(f *os.File, off int64) fsKind {
	b := make([]byte, 2048)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	switch {
	case b[1080] == 0x53 && b[1081] == 0xEF:
		return fsExt
	case b[510] == 0x55 && b[511] == 0xAA && (bytes.HasPrefix(b[54:], []byte("FAT1")) || bytes.HasPrefix(b[82:], []byte("FAT32"))):
		return fsFAT
	}
	return ""
}

// bootFile is one file of boot entries, read from the image, with its new
// content when it needs the console.
type bootFile struct {
	Vol     volume
	Path    string // absolute path in the file system
	Mode    string // ext: octal mode, uid and gid of the original, kept
	UID     string
	GID     string
	New     string
	Changed int // kernel command lines changed
	Had     int // kernel command lines that already had console=ttyS0
}

func (b bootFile) String() string {
	return fmt.Sprintf("%s:%s", b.Vol, b.Path)
}

// fsReader reads the file systems of one image without writing it.
type fsReader struct {
	ctx   context.Context
	image string
}

// run runs a tool and returns its standard output; a tool that fails is
// an error naming its command line and its error output.
func (r fsReader) run(name string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(r.ctx, name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return "", stderr.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), nil
}

// debugfsErr is what debugfs printed on its error output besides its
// version banner (debugfs exits 0 when a request fails).
func debugfsErr(stderr string) string {
	var msgs []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debugfs ") {
			continue
		}
		msgs = append(msgs, l)
	}
	return strings.Join(msgs, "; ")
}

func (r fsReader) extSpec(v volume) string { return fmt.Sprintf("%s?offset=%d", r.image, v.Offset) }
func (r fsReader) fatSpec(v volume) string { return fmt.Sprintf("%s@@%d", r.image, v.Offset) }

// extEntry is a line of debugfs "ls -p": /inode/mode/uid/gid/name/size/.
type extEntry struct{ Name, Mode, UID, GID string }

// extList lists a directory of an ext file system; a missing directory is
// an empty list.
func (r fsReader) extList(v volume, dir string) ([]extEntry, error) {
	out, stderr, err := r.run("debugfs", "-R", "ls -p "+dir, r.extSpec(v))
	if err != nil {
		return nil, err
	}
	if msg := debugfsErr(stderr); msg != "" {
		if strings.Contains(msg, "not found") {
			return nil, nil
		}
		return nil, fmt.Errorf("debugfs ls -p %s %s: %s", dir, r.extSpec(v), msg)
	}
	var es []extEntry
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "/")
		if len(f) < 7 || f[5] == "." || f[5] == ".." {
			continue
		}
		es = append(es, extEntry{Name: f[5], Mode: f[2], UID: f[3], GID: f[4]})
	}
	return es, nil
}

func (r fsReader) extCat(v volume, path string) (string, error) {
	out, stderr, err := r.run("debugfs", "-R", "cat "+path, r.extSpec(v))
	if err != nil {
		return "", err
	}
	if msg := debugfsErr(stderr); msg != "" {
		return "", fmt.Errorf("debugfs cat %s %s: %s", path, r.extSpec(v), msg)
	}
	return out, nil
}

// fatList lists the files of a directory of a FAT file system (mdir -b
// prints their ::/ paths); a missing directory is an empty list.
func (r fsReader) fatList(v volume, dir string) ([]string, error) {
	out, stderr, err := r.run("mdir", "-b", "-i", r.fatSpec(v), "::"+dir)
	if err != nil {
		if strings.Contains(stderr, "not found") {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if p, ok := strings.CutPrefix(l, "::"); ok && !strings.HasSuffix(p, "/") {
			names = append(names, p)
		}
	}
	return names, nil
}

func (r fsReader) fatCat(v volume, path string) (string, error) {
	out, _, err := r.run("mtype", "-i", r.fatSpec(v), "::"+path)
	return out, err
}

// extRegular reports whether an octal mode of debugfs is a regular file.
func extRegular(mode string) bool {
	m, err := strconv.ParseUint(mode, 8, 32)
	return err == nil && m&0o170000 == 0o100000
}

// bootFiles reads every GRUB menu and BLS entry of the image's ext and FAT
// file systems and works out each one's new content.
func bootFiles(ctx context.Context, image string) ([]bootFile, error) {
	vols, err := volumes(ctx, image)
	if err != nil {
		return nil, err
	}
	r := fsReader{ctx: ctx, image: image}
	var files []bootFile
	for _, v := range vols {
		// candidates: path -> true for a GRUB menu, false for a BLS entry.
		type cand struct {
			path          string
			grub          bool
			mode, uid, gd string
		}
		var cands []cand
		switch v.Kind {
		case fsExt:
			for _, m := range grubMenus {
				es, err := r.extList(v, filepath.Dir(m))
				if err != nil {
					return nil, err
				}
				for _, e := range es {
					if e.Name == filepath.Base(m) && extRegular(e.Mode) {
						cands = append(cands, cand{m, true, e.Mode, e.UID, e.GID})
					}
				}
			}
			for _, d := range blsDirs {
				es, err := r.extList(v, d)
				if err != nil {
					return nil, err
				}
				for _, e := range es {
					if strings.HasSuffix(e.Name, ".conf") && extRegular(e.Mode) {
						cands = append(cands, cand{d + "/" + e.Name, false, e.Mode, e.UID, e.GID})
					}
				}
			}
		case fsFAT:
			for _, m := range grubMenus {
				names, err := r.fatList(v, filepath.Dir(m))
				if err != nil {
					return nil, err
				}
				for _, n := range names {
					if strings.EqualFold(n, m) {
						cands = append(cands, cand{path: n, grub: true})
					}
				}
			}
			for _, d := range blsDirs {
				names, err := r.fatList(v, d)
				if err != nil {
					return nil, err
				}
				for _, n := range names {
					if strings.HasSuffix(strings.ToLower(n), ".conf") {
						cands = append(cands, cand{path: n})
					}
				}
			}
		}
		for _, c := range cands {
			var text string
			if v.Kind == fsExt {
				text, err = r.extCat(v, c.path)
			} else {
				text, err = r.fatCat(v, c.path)
			}
			if err != nil {
				return nil, err
			}
			bf := bootFile{Vol: v, Path: c.path, Mode: c.mode, UID: c.uid, GID: c.gd}
			if c.grub {
				bf.New, bf.Changed, bf.Had = rewriteGRUB(text)
			} else {
				var ch, had bool
				bf.New, ch, had = rewriteBLS(text)
				bf.Changed, bf.Had = b2i(ch), b2i(had)
			}
			if bf.Changed == 0 {
				bf.New = ""
			}
			files = append(files, bf)
		}
	}
	return files, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ConsoleCopy is what WithSerialConsole did for one image.
type ConsoleCopy struct {
	// Image is the file to boot: the throw-away copy, or the image itself
	// when no entry needed the console (then Copied is false).
	Image   string
	Copied  bool
	Changed int      // kernel command lines given SerialConsoleArg
	Had     int      // kernel command lines that already had console=ttyS0
	Files   []string // the files changed, as "partition N (fs):/path"
	Copy    time.Duration
	remove  func() error
}

// Remove deletes the throw-away copy (a no-op when there is none).
func (c ConsoleCopy) Remove() error {
	if c.remove == nil {
		return nil
	}
	return c.remove()
}

// Summary is the log line that says what the check changed.
func (c ConsoleCopy) Summary() string {
	switch {
	case c.Copied:
		s := fmt.Sprintf("check boot: added %s to %d boot entries of a throw-away copy (the image is unchanged; copied and edited in %.1f s): %s",
			SerialConsoleArg, c.Changed, c.Copy.Seconds(), strings.Join(c.Files, ", "))
		if c.Had > 0 {
			s += fmt.Sprintf("; %d already had console=ttyS0", c.Had)
		}
		return s
	case c.Had > 0:
		return fmt.Sprintf("check boot: all %d boot entries already have console=ttyS0; booting the image as it is", c.Had)
	}
	return "check boot: no GRUB menu or boot loader entry found on an ext or FAT file system of the image; booting it as it is (the OS must print on ttyS0 by itself)"
}

// WithSerialConsole gives the check boot of the raw or qcow2 disk image
// at image a serial console without changing the image: when a GRUB menu
// (grub.cfg: linux, linux16, linuxefi lines) or a Boot Loader
// Specification entry (loader/entries/*.conf: options lines) on one of its
// ext2/3/4 or FAT file systems has a kernel command line without
// console=ttyS0, it makes a sparse copy of the image in dir (cp
// --sparse=always, which also reflinks where the file system can; qemu-img
// convert for a qcow2 image) and appends " console=ttyS0,115200" to those
// lines in the copy, with debugfs -w (ext, at the partition's byte offset)
// and mcopy (FAT). No mount, loop device or root is needed. Each edited
// file is read back and compared. The caller boots ConsoleCopy.Image and
// calls Remove when the boots are done; on an error nothing is left in dir.
func WithSerialConsole(ctx context.Context, image, dir string) (ConsoleCopy, error) {
	cc := ConsoleCopy{Image: image}
	f, err := os.Open(image)
	if err != nil {
		return cc, fmt.Errorf("serial console for the check boot: %w", err)
	}
	head := make([]byte, 4)
	_, rerr := io.ReadFull(f, head)
	f.Close()
	qcow := rerr == nil && magic(head) == FormatQCOW2

	start := time.Now()
	src := image
	var tmpRaw string
	if qcow {
		// The entries can only be read from a raw image.
		tmpRaw = filepath.Join(dir, filepath.Base(image)+".console.raw")
		if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", image, tmpRaw).CombinedOutput(); err != nil {
			os.Remove(tmpRaw)
			return cc, fmt.Errorf("serial console for the check boot: qemu-img convert -O raw %s %s: %v: %s", image, tmpRaw, err, strings.TrimSpace(string(out)))
		}
		src = tmpRaw
	}
	files, err := bootFiles(ctx, src)
	if err != nil {
		if tmpRaw != "" {
			os.Remove(tmpRaw)
		}
		return cc, fmt.Errorf("serial console for the check boot of %s: %w", image, err)
	}
	var edit []bootFile
	for _, bf := range files {
		cc.Had += bf.Had
		if bf.Changed > 0 {
			edit = append(edit, bf)
			cc.Changed += bf.Changed
			cc.Files = append(cc.Files, bf.String())
		}
	}
	if len(edit) == 0 {
		if tmpRaw != "" {
			os.Remove(tmpRaw)
		}
		return cc, nil
	}
	copyPath := tmpRaw
	if copyPath == "" {
		copyPath = filepath.Join(dir, filepath.Base(image)+".console.raw")
		if out, err := exec.CommandContext(ctx, "cp", "--sparse=always", image, copyPath).CombinedOutput(); err != nil {
			os.Remove(copyPath)
			return cc, fmt.Errorf("serial console for the check boot: cp --sparse=always %s %s: %v: %s", image, copyPath, err, strings.TrimSpace(string(out)))
		}
		// The copy is written below whatever the image's mode.
		if err := os.Chmod(copyPath, 0o644); err != nil {
			os.Remove(copyPath)
			return cc, fmt.Errorf("serial console for the check boot: %w", err)
		}
	}
	if err := writeBootFiles(ctx, copyPath, dir, edit); err != nil {
		os.Remove(copyPath)
		return cc, fmt.Errorf("serial console for the check boot of %s (throw-away copy %s): %w", image, copyPath, err)
	}
	cc.Image, cc.Copied, cc.Copy = copyPath, true, time.Since(start)
	cc.remove = func() error {
		if err := os.Remove(copyPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return cc, nil
}

// q quotes a path for a debugfs request.
func q(s string) string { return `"` + s + `"` }

// writeBootFiles writes the new content of files into the raw image at
// path (debugfs -w for ext, one run per file system; mcopy -o for FAT)
// and reads each back.
func writeBootFiles(ctx context.Context, path, dir string, files []bootFile) error {
	tmp, err := os.MkdirTemp(dir, "console-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	r := fsReader{ctx: ctx, image: path}
	ext := map[volume][]string{} // debugfs requests per file system
	var order []volume
	for i, bf := range files {
		local := filepath.Join(tmp, strconv.Itoa(i))
		if err := os.WriteFile(local, []byte(bf.New), 0o644); err != nil {
			return err
		}
		switch bf.Vol.Kind {
		case fsExt:
			if _, ok := ext[bf.Vol]; !ok {
				order = append(order, bf.Vol)
			}
			d, name := filepath.Dir(bf.Path), filepath.Base(bf.Path)
			ext[bf.Vol] = append(ext[bf.Vol],
				"cd "+q(d), "rm "+q(name), "write "+q(local)+" "+q(name),
				"sif "+q(name)+" mode 0"+bf.Mode, "sif "+q(name)+" uid "+bf.UID, "sif "+q(name)+" gid "+bf.GID, "cd /")
		case fsFAT:
			if _, _, err := r.run("mcopy", "-o", "-i", r.fatSpec(bf.Vol), local, "::"+bf.Path); err != nil {
				return err
			}
		}
	}
	for _, v := range order {
		req := filepath.Join(tmp, fmt.Sprintf("debugfs-%d", v.Part))
		if err := os.WriteFile(req, []byte(strings.Join(ext[v], "\n")+"\n"), 0o644); err != nil {
			return err
		}
		_, stderr, err := r.run("debugfs", "-w", "-f", req, r.extSpec(v))
		if err != nil {
			return err
		}
		if msg := debugfsErr(stderr); msg != "" {
			return fmt.Errorf("debugfs -w %s: %s", r.extSpec(v), msg)
		}
	}
	for _, bf := range files {
		var got string
		if bf.Vol.Kind == fsExt {
			got, err = r.extCat(bf.Vol, bf.Path)
		} else {
			got, err = r.fatCat(bf.Vol, bf.Path)
		}
		if err != nil {
			return err
		}
		if got != bf.New {
			return fmt.Errorf("%s: reads back different from what was written", bf)
		}
	}
	return nil
}
