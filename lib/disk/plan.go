package disk

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
)

// GiB is one gibibyte in bytes.
const GiB = 1 << 30

// gptTailSectors is what the backup GPT (header + 128 entries) needs at the
// end of the disk.
const gptTailSectors = 33

// Placed is a partition with its final start and size (sectors).
type Placed struct {
	Partition
	Number int    // 1-based partition number
	Start  int64  // sectors
	Size   int64  // sectors
	UUID   string // partition UUID (GPT), "" = chosen by sfdisk
	// FSUUID is the filesystem's UUID (ext4) or volume ID (vfat, 8 hex
	// digits); the bootloader finds the root by it.
	FSUUID string
}

// Offset returns the partition's byte offset in the disk.
func (p Placed) Offset() int64 { return p.Start * Sector }

// Bytes returns the partition's size in bytes.
func (p Placed) Bytes() int64 { return p.Size * Sector }

// Plan is a layout resolved to sectors for one image: what sfdisk writes,
// where each filesystem goes, and the size of the disk file.
type Plan struct {
	Layout     Layout
	Partitions []Placed
	Sectors    int64 // size of the disk in sectors
	DiskID     string
	// RootContent is the sysroot usage the root partition was sized for.
	RootContent int64
}

// Bytes returns the size of the disk file.
func (p Plan) Bytes() int64 { return p.Sectors * Sector }

// Root returns the placed root partition.
func (p Plan) Root() Placed { return p.Partitions[p.Layout.Root()] }

// Part returns the first placed partition with role r.
func (p Plan) Part(r Role) (Placed, bool) {
	if i := p.Layout.Find(r); i >= 0 {
		return p.Partitions[i], true
	}
	return Placed{}, false
}

// RootSize returns the bytes the root partition needs for a sysroot whose
// disk usage is usage: usage plus max(5 %, 1 GiB) of free space, rounded
// down to a 512-byte sector (EIB's rule: du underestimates what a copy
// takes, and the OS should not boot with a full disk before it grows the
// partition).
func RootSize(usage int64) int64 {
	extra := usage * 5 / 100
	if extra < GiB {
		extra = GiB
	}
	size := usage + extra
	return size - size%Sector
}

// NewPlan places the layout's partitions for a root partition of rootBytes
// and checks the disk against maxBytes (0 = no limit, image:max_size).
func NewPlan(l Layout, rootBytes, maxBytes int64) (Plan, error) {
	if l.Root() < 0 {
		return Plan{}, fmt.Errorf("layout %s/%s has no root partition", l.Arch, l.Platform)
	}
	plan := Plan{Layout: l}
	next := int64(firstSector)
	for i, p := range l.Partitions {
		pl := Placed{Partition: p, Number: i + 1, Start: p.Start, Size: p.Size}
		if pl.Start == 0 {
			pl.Start = next
		}
		if pl.Start < next {
			return Plan{}, fmt.Errorf("layout %s/%s: partition %d (%s) starts at sector %d, inside the previous one (ends before %d)",
				l.Arch, l.Platform, pl.Number, p.Role, pl.Start, next)
		}
		if p.Role == RoleRoot {
			pl.Size = (rootBytes + Sector - 1) / Sector
			pl.Size = (pl.Size + 7) / 8 * 8 // whole 4 KiB ext4 blocks
		}
		if pl.Size <= 0 {
			return Plan{}, fmt.Errorf("layout %s/%s: partition %d (%s) has no size", l.Arch, l.Platform, pl.Number, p.Role)
		}
		next = pl.Start + pl.Size
		plan.Partitions = append(plan.Partitions, pl)
	}
	end := next
	if l.Label == GPT {
		end += gptTailSectors
	}
	// A whole number of MiB: friendlier to VMs and to dd.
	plan.Sectors = (end + firstSector - 1) / firstSector * firstSector
	// The last partition takes the rest, as EIB's sfdisk script did.
	last := &plan.Partitions[len(plan.Partitions)-1]
	lastUsable := plan.Sectors - 1
	if l.Label == GPT {
		lastUsable -= gptTailSectors
	}
	last.Size = (lastUsable - last.Start + 1) &^ 7
	plan.RootContent = rootBytes
	if maxBytes > 0 && plan.Bytes() > maxBytes {
		return Plan{}, fmt.Errorf("the disk image needs %d bytes (%d MiB), more than [image] max_size = %d bytes (%d MiB)",
			plan.Bytes(), plan.Bytes()/MiB, maxBytes, maxBytes/MiB)
	}
	return plan, nil
}

// Tree is what a directory tree takes in the root file system eib makes
// of it (ext4, 4 KiB blocks, 256-byte inodes), reckoned from its content
// alone, so that the same sysroot gets the same root partition and inode
// count on every build host.
type Tree struct {
	// Blocks is the bytes of its data blocks: a regular file's size in
	// whole blocks, a directory's entries (ext4's 8-byte entry header and
	// name, 4-byte aligned, the "." and ".." entries, and the 12-byte
	// checksum tail of each block) in whole blocks, one block for a
	// symlink of 60 bytes or more (shorter ones live in the inode), none
	// for device nodes, fifos and sockets. Sparse files are counted at
	// their full size: the OS may fill them in.
	Blocks int64
	// Inodes is the number of its inodes: regular files, directories (the
	// top one included), symlinks, device nodes, fifos and sockets, each
	// hardlinked inode once.
	Inodes int64
}

// Bytes returns the bytes the tree takes: its data blocks and the
// 256-byte inode-table entry of each of its inodes.
func (t Tree) Bytes() int64 { return t.Blocks + t.Inodes*inodeSize }

// Measure walks the tree at dir and returns what it takes in the root
// file system (see Tree). Every inode is counted once, however many
// hardlinks it has.
//
// EIB sized the root with `du -s` of the sysroot, which counts what the
// host's file system allocated: a tmpfs gives directories no blocks,
// btrfs keeps small files inline, so one sysroot got other partition
// sizes, and other image bytes, on other hosts. It counted no inodes, so a
// tree of many empty files or short symlinks could need more inodes than
// mke2fs's default of one per 16 KiB gave its partition.
func Measure(dir string) (Tree, error) {
	type key struct{ dev, ino uint64 }
	seen := map[key]bool{}
	dirBytes := map[string]int64{} // directory -> bytes of its entries
	var t Tree
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("measuring %s: %w", dir, err)
		}
		if path != dir {
			dirBytes[filepath.Dir(path)] += dirEntryBytes(d.Name())
		}
		if d.IsDir() {
			dirBytes[path] += 2 * dirEntryBytes(".") // "." and ".." (12 bytes each)
			t.Inodes++
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("measuring %s: %w", dir, err)
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := key{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		t.Inodes++
		switch {
		case info.Mode().IsRegular():
			t.Blocks += ceilDiv(info.Size(), ext4Block) * ext4Block
		case info.Mode()&fs.ModeSymlink != 0 && info.Size() >= fastSymlinkMax:
			t.Blocks += ext4Block
		}
		return nil
	})
	for _, n := range dirBytes {
		t.Blocks += max(ceilDiv(n, ext4Block-dirTailBytes), 1) * ext4Block
	}
	return t, err
}

// Usage returns the bytes the tree at dir takes in the root file system,
// its data blocks and inode-table entries (Measure, Tree.Bytes): what
// RootSize adds the free space to.
func Usage(dir string) (int64, error) {
	t, err := Measure(dir)
	return t.Bytes(), err
}

// RootInodes returns the number of inodes (mkfs.ext4 -N) of a root file
// system of fsBytes bytes made from tree, where grows says whether the OS
// grows it on first boot (image:rootfs_resize):
//   - the tree's inodes, plus those ext4 reserves (inodes 1 to 10, the
//     root directory being inode 2) and lost+found, which mke2fs makes;
//   - a margin, of the kind RootSize gives bytes: 5 % of the tree's
//     inodes, or one inode per 16 KiB of the bytes left free (fsBytes less
//     tree.Bytes(); 16 KiB is the inode_ratio of the "default" type in
//     eib's mke2fs.conf, as in e2fsprogs' own), whichever is more;
//   - when the file system grows, at least one inode per 16 KiB of all of
//     it. An inode count fixes the inodes per block group, and the
//     inode tables cannot grow: resize2fs gives each block group it adds
//     as many inodes (mke2fs(8), -i: "resizing a file system changes the
//     number of inodes to maintain this ratio"; measured with e2fsprogs
//     1.47.0). The grown file system keeps the ratio the image was made
//     with, so a tree of few huge files must not leave the OS's whole disk
//     with one inode per hundreds of KiB.
//
// mke2fs rounds the count up to fill the inode tables' blocks in every
// block group. The inode tables take 256 bytes per inode: a file system
// that does not grow and holds few huge files gets the tree's and its
// margin's (16 MiB per GiB left free), not the 1/64 of the partition that
// mke2fs's default ratio takes. A tree of many tiny files gets an inode
// for each however few bytes they take, and a grown file system keeps
// that higher ratio (70,000 empty files and 1 GiB free: one inode per
// 9 KiB). Beyond one inode per 4 KiB block, mke2fs makes its block groups
// smaller (a group's inode bitmap is one block: at most 32768 inodes);
// the file system builds, grows and checks clean, with inode tables that
// take a sixteenth of it or more, grown or not.
func RootInodes(tree Tree, fsBytes int64, grows bool) int64 {
	free := max(fsBytes-tree.Bytes(), 0)
	n := tree.Inodes - 1 + ext4FirstIno + max(ceilDiv(tree.Inodes*5, 100), free/inodeRatio)
	if grows {
		n = max(n, fsBytes/inodeRatio)
	}
	return n
}

// Sizes of ext4's on-disk structures that Measure reckons with (the ext4
// disk layout, https://docs.kernel.org/filesystems/ext4/).
const (
	dirEntryHeader = 8  // inode, rec_len, name_len, file_type
	dirTailBytes   = 12 // the checksum tail of a directory block (metadata_csum)
	fastSymlinkMax = 60 // targets shorter than this live in the inode's i_block
	// ext4FirstIno is the first inode a file may get (EXT2_GOOD_OLD_FIRST_INO):
	// inodes 1 to 10 are reserved, 11 is the lost+found that mke2fs makes.
	ext4FirstIno = 11
)

// Inode geometry that eib's mke2fs.conf pins (mke2fs.conf(5)).
const (
	inodeSize  = 256   // bytes of an inode-table entry (inode_size)
	inodeRatio = 16384 // bytes per inode of the "default" type (inode_ratio)
)

// dirEntryBytes is the size of a directory entry for name: its header and
// name, rounded up to 4 bytes.
func dirEntryBytes(name string) int64 {
	return int64(dirEntryHeader+len(name)+3) &^ 3
}

// ceilDiv returns n/d rounded up (n >= 0, d > 0).
func ceilDiv(n, d int64) int64 { return (n + d - 1) / d }

// String describes the plan, one line per partition, for the log and
// --explain.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s: %s label %s, %d sectors (%d MiB), boot loader %s\n", p.Layout.Arch, p.Layout.Platform,
		p.Layout.Label, p.DiskID, p.Sectors, p.Bytes()/MiB, p.Layout.Bootloader)
	for _, pl := range p.Partitions {
		typ := pl.TypeGUID
		if p.Layout.Label == DOS {
			typ = pl.MBRType
		}
		fmt.Fprintf(&b, "  p%d %-9s start %8d size %9d (%6d MiB) type %s", pl.Number, pl.Role, pl.Start, pl.Size, pl.Bytes()/MiB, typ)
		if len(pl.Attrs) > 0 {
			fmt.Fprintf(&b, " attrs %v", pl.Attrs)
		}
		if pl.FS != FSNone {
			fmt.Fprintf(&b, " %s %q %s", pl.FS, pl.FSLabel, pl.FSUUID)
		}
		b.WriteString("\n")
	}
	for _, bl := range p.Layout.Blobs {
		fmt.Fprintf(&b, "  raw /%s at sector %d\n", bl.File, bl.Sector)
	}
	if p.Layout.MBRResize {
		fmt.Fprintf(&b, "  MBR byte %d = %#x (resize root on first boot)\n", MBRResizeOffset, MBRResizeMarker)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
