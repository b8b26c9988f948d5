package disk_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/disk"
)

// superblock reads the numeric fields of `dumpe2fs -h` of the ext4 in
// file at byte offset (a device name with ?offset= when offset > 0).
func superblock(t *testing.T, file string, offset int64) map[string]int64 {
	t.Helper()
	dev := file
	if offset > 0 {
		dev += "?offset=" + itoa(offset)
	}
	fields := map[string]int64{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z ]+):\s+(\d+)$`).FindAllStringSubmatch(sh(t, "dumpe2fs", "-h", dev), -1) {
		n, err := strconv.ParseInt(m[2], 10, 64)
		must(t, err)
		fields[m[1]] = n
	}
	for _, k := range []string{"Inode count", "Free inodes", "Block count", "Free blocks", "Inodes per group", "Blocks per group"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("dumpe2fs -h %s: no %q", dev, k)
		}
	}
	return fields
}

// tmpfsSysroot makes the fixture sysroot on a new tmpfs: trees of tens
// of thousands of files are made and removed there in a moment.
func tmpfsSysroot(t *testing.T) fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	must(t, os.Mkdir(dir, 0o755))
	must(t, syscall.Mount("eib-test", dir, "tmpfs", 0, "mode=0755"))
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return newSysroot(t, dir)
}

// growRoot copies the root file system of img out of it (e2image -ra, its
// used blocks only), grows the copy to factor times its size with
// resize2fs, as the OS does on first boot (image:rootfs_resize), checks
// it with e2fsck -fn and returns its superblock.
func growRoot(t *testing.T, img string, root disk.Placed, factor int64) map[string]int64 {
	t.Helper()
	grown := filepath.Join(t.TempDir(), "root.img")
	sh(t, "e2image", "-ra", "-o", itoa(root.Offset()), img, grown)
	must(t, os.Truncate(grown, factor*root.Bytes()))
	sh(t, "resize2fs", grown)
	sh(t, "e2fsck", "-fn", grown)
	return superblock(t, grown, 0)
}

// TestManyTinyFilesGetTheirInodes is the field fault of 70,000 files
// without data blocks (empty files, short symlinks, hardlinks), which
// mkfs.ext4 -d refused with "Could not allocate inode" when the root was
// sized from bytes alone: its partition (the bytes and 1 GiB) got mke2fs's
// default of one inode per 16 KiB, 65,536 for the GiB. Sized as the image
// stage sizes it, the image builds and is clean (Assemble runs e2fsck
// -fn), holds every inode, and has the free inodes of its free GiB at
// 16 KiB each. Grown 4 times on first boot, it keeps its inodes per
// group: resize2fs gives each new group as many, so the grown file system
// keeps the image's inode ratio (here one per 9 KiB).
func TestManyTinyFilesGetTheirInodes(t *testing.T) {
	needTools(t, "grub-mkimage", "dumpe2fs", "e2image", "resize2fs")
	f := tmpfsSysroot(t)
	fixtureTree, err := disk.Measure(f.sysroot)
	must(t, err)
	const files, perDir = 70000, 100
	base := filepath.Join(f.deployment, "usr", "share", "many")
	for i := 0; i < files; i++ {
		d := filepath.Join(base, fmt.Sprintf("d%03d", i/perDir))
		if i%perDir == 0 {
			must(t, os.MkdirAll(d, 0o755))
		}
		p := filepath.Join(d, fmt.Sprintf("f%05d", i))
		if i%10 == 0 {
			must(t, os.Symlink("../target", p))
			continue
		}
		must(t, os.WriteFile(p, nil, 0o644))
		if i%10 == 1 {
			must(t, os.Link(p, p+".link")) // a name, not an inode
		}
	}
	treeInodes := fixtureTree.Inodes + files + files/perDir + 1 // + the d??? directories and many/

	usage, err := disk.Usage(f.sysroot)
	must(t, err)
	start := time.Now()
	plan, img := build(t, f, disk.Params{Arch: "amd64", RootfsResize: true}, disk.RootSize(usage), disk.RandomIDs(), -1, nil)
	t.Logf("70,000 files: usage %d bytes, root %d MiB, image %d MiB, assembled in %.1f s",
		usage, plan.Root().Bytes()/disk.MiB, plan.Bytes()/disk.MiB, time.Since(start).Seconds())

	// The sysroot as mkfs.ext4 -d copied it: boot.Prepare added grub.cfg.
	final, err := disk.Measure(f.sysroot)
	must(t, err)
	if final.Inodes < treeInodes {
		t.Errorf("Measure: %d inodes, fewer than the %d made", final.Inodes, treeInodes)
	}
	sb := superblock(t, img, plan.Root().Offset())
	used := sb["Inode count"] - sb["Free inodes"]
	t.Logf("root file system: %d inodes, %d used, %d free, %d per group", sb["Inode count"], used, sb["Free inodes"], sb["Inodes per group"])
	if used != final.Inodes+10 {
		t.Errorf("%d inodes used; want the tree's %d and ext4's reserved ones and lost+found (10 more)", used, final.Inodes)
	}
	if free := sb["Free inodes"]; free < disk.GiB/16384 || free < used*5/100 {
		t.Errorf("%d free inodes: fewer than one per 16 KiB of the free GiB (%d) or 5 %% of those used (%d)", free, disk.GiB/16384, used*5/100)
	}

	grown := growRoot(t, img, plan.Root(), 4)
	groups := (grown["Block count"] + grown["Blocks per group"] - 1) / grown["Blocks per group"]
	t.Logf("grown 4 times: %d inodes in %d groups of %d", grown["Inode count"], groups, grown["Inodes per group"])
	if grown["Inodes per group"] != sb["Inodes per group"] || grown["Inode count"] != groups*sb["Inodes per group"] {
		t.Errorf("grown 4 times: %d inodes in %d groups (%d per group); made with %d per group",
			grown["Inode count"], groups, grown["Inodes per group"], sb["Inodes per group"])
	}
}

// TestFewHugeFilesKeepInodeTablesSmall builds a sysroot of three sparse
// 3 GiB files (Usage counts them at their full size: the OS may fill them
// in). A root file system that does not grow gets the inodes of the tree
// and of its free GiB (16 MiB of inode tables), not one per 16 KiB of
// its 10 GiB (160 MiB); one that grows on first boot keeps one per 16 KiB,
// as the whole disk it grows to needs. Either way the image is as large as
// when the root was sized from the data blocks alone, give or take a MiB.
func TestFewHugeFilesKeepInodeTablesSmall(t *testing.T) {
	needTools(t, "grub-mkimage", "dumpe2fs", "e2image", "resize2fs")
	f := tmpfsSysroot(t)
	base := filepath.Join(f.deployment, "usr", "share", "huge")
	must(t, os.MkdirAll(base, 0o755))
	const fileBytes = 3 * disk.GiB
	for i := 0; i < 3; i++ {
		fh, err := os.Create(filepath.Join(base, "huge"+itoa(int64(i))))
		must(t, err)
		_, err = fh.Write(randomBytes(t, disk.MiB))
		must(t, err)
		_, err = fh.WriteAt(randomBytes(t, disk.MiB), fileBytes-disk.MiB)
		must(t, err)
		must(t, fh.Close())
	}
	tree, err := disk.Measure(f.sysroot)
	must(t, err)
	if tree.Blocks < 3*fileBytes {
		t.Fatalf("Measure: %d bytes of blocks, less than the files' %d", tree.Blocks, 3*fileBytes)
	}
	usage, err := disk.Usage(f.sysroot)
	must(t, err)

	for _, resize := range []bool{false, true} {
		t.Run(map[bool]string{false: "fixed", true: "grows"}[resize], func(t *testing.T) {
			p := disk.Params{Arch: "amd64", RootfsResize: resize}
			layout, err := disk.ForPlatform(p)
			must(t, err)
			before, err := disk.NewPlan(layout, disk.RootSize(tree.Blocks), 0)
			must(t, err)
			plan, img := build(t, f, p, disk.RootSize(usage), disk.RandomIDs(), -1, nil)
			if plan.Bytes() > before.Bytes()+disk.MiB {
				t.Errorf("image of %d bytes; %d when sized from the data blocks alone", plan.Bytes(), before.Bytes())
			}
			sb := superblock(t, img, plan.Root().Offset())
			tables := sb["Inode count"] * 256
			defaultTables := plan.Root().Bytes() / 16384 * 256
			t.Logf("root %d MiB: %d inodes (%d MiB of inode tables; %d MiB at one per 16 KiB), %d MiB free; image %d MiB (%d MiB sized from blocks alone)",
				plan.Root().Bytes()/disk.MiB, sb["Inode count"], tables/disk.MiB, defaultTables/disk.MiB,
				sb["Free blocks"]*4096/disk.MiB, plan.Bytes()/disk.MiB, before.Bytes()/disk.MiB)
			if !resize {
				if tables > 17*disk.MiB {
					t.Errorf("%d inodes, %d MiB of inode tables for %d files: more than the free GiB's 16 MiB and a MiB", sb["Inode count"], tables/disk.MiB, tree.Inodes)
				}
				return
			}
			if tables < defaultTables {
				t.Errorf("%d inodes: fewer than one per 16 KiB of the root (%d), which the grown file system keeps", sb["Inode count"], plan.Root().Bytes()/16384)
			}
			grown := growRoot(t, img, plan.Root(), 2)
			if grownBytes := grown["Block count"] * 4096; grown["Inode count"] < grownBytes/16384 {
				t.Errorf("grown to %d MiB: %d inodes, fewer than one per 16 KiB (%d)", grownBytes/disk.MiB, grown["Inode count"], grownBytes/16384)
			}
		})
	}
}
