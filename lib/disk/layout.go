// Package disk describes and assembles eib's disk images: a typed layout
// (partition table label, partitions with their types, attributes and
// filesystems, raw bootloader blobs) made from the architecture's or
// board's entry of the platform table (package platform) exactly as EIB lays
// them out, the sizing of the image, and its assembly
// from plain files (mkfs.ext4 -d at an offset, mkfs.vfat + mtools, sfdisk on
// the file, debugfs) without loop devices or mounts.
package disk

import (
	"fmt"
	"slices"

	"github.com/eib-builder/eib/lib/platform"
)

// Sector is the logical sector size of every image eib makes.
const Sector = 512

// MiB is one mebibyte in bytes.
const MiB = 1 << 20

// The vocabulary of layouts is package platform's, whose table says
// which partitions, blobs and boot loader each arch and board gets.
type (
	// Label is the kind of partition table.
	Label = platform.Label
	// Role says what a partition is for.
	Role = platform.Role
	// Partition is one partition of a layout (sectors; see
	// platform.Partition).
	Partition = platform.Partition
	// Blob is a file of the deployment written raw at a sector of the
	// disk (u-boot stages on Rockchip boards).
	Blob = platform.Blob
)

// The partition table kinds sfdisk writes.
const (
	GPT = platform.GPT
	DOS = platform.DOS
)

// Partition type GUIDs (GPT) from the UEFI specification and the
// Discoverable Partitions Specification, and MBR type bytes.
const (
	TypeESP         = platform.TypeESP
	TypeBIOSBoot    = platform.TypeBIOSBoot
	TypeRootX86_64  = platform.TypeRootX86_64
	TypeRootARM64   = platform.TypeRootARM64
	TypeBasicData   = platform.TypeBasicData
	MBRTypeLinux    = platform.MBRTypeLinux
	MBRTypeESP      = platform.MBRTypeESP
	MBRTypeFAT32LBA = platform.MBRTypeFAT32LBA
)

// AttrResize is the GPT attribute bit eos-repartition reads as "grow this
// partition and its filesystem on first boot" (image:rootfs_resize).
const AttrResize = 55

// MBRResizeOffset is the byte of the MBR that image:rootfs_resize sets to
// MBRResizeMarker on a dos label: the type byte of the fourth primary entry,
// an empty partition sfdisk refuses to create.
const (
	MBRResizeOffset = 498
	MBRResizeMarker = 0xdd
)

// The partition roles eib lays out.
const (
	RoleESP      = platform.RoleESP
	RoleBIOSBoot = platform.RoleBIOSBoot
	RoleFirmware = platform.RoleFirmware
	RoleRoot     = platform.RoleRoot
)

// Filesystem kinds.
const (
	FSNone = platform.FSNone
	FSVFAT = platform.FSVFAT
	FSExt4 = platform.FSExt4
)

// Bootloader kinds a layout is made for (package boot installs them).
const (
	BootGRUB   = platform.BootGRUB   // GRUB for BIOS (core.img in the MBR gap or BIOS boot partition) and UEFI
	BootSDBoot = platform.BootSDBoot // systemd-boot on a large ESP with the kernels
	BootUBoot  = platform.BootUBoot  // raw u-boot blobs from the deployment
	BootNone   = platform.BootNone   // nothing: the OS's hooks or firmware take care of it
)

// Layout is the complete description of a disk's partitioning.
type Layout struct {
	Arch, Platform string
	Label          Label
	Partitions     []Partition
	Blobs          []Blob
	// MBRResize sets byte MBRResizeOffset of the MBR to MBRResizeMarker.
	MBRResize  bool
	Bootloader string
	// Firmware lists the PC firmware interfaces the disk boots with,
	// "bios" and/or "uefi" (a BIOS boot partition or GRUB in the MBR gap;
	// an ESP with a boot loader): which the boot check can use. Empty when
	// only a board's own firmware boots it (u-boot blobs, the Raspberry
	// Pi's firmware partition).
	Firmware []string
	// Ext4Features are the -O features of the root filesystem, on top of
	// the ext4 defaults of mke2fs.conf (which include 64bit and huge_file).
	Ext4Features string
}

// Params select a layout: the build's arch and platform and the [image]
// keys that change the layout.
type Params struct {
	Arch           string
	Platform       string
	PartitionTable Label // image:partition_table, "" = gpt
	SDBoot         bool  // image:sdboot
	RootfsResize   bool  // image:rootfs_resize
}

// firstSector is where partitions start: 1 MiB of space for the GPT, the
// MBR gap, u-boot.
const firstSector = platform.FirstSector

// ForPlatform returns EIB's layout for p, from p's entry of the platform
// table, or an error naming what is not supported, before any work is done.
func ForPlatform(p Params) (Layout, error) {
	label := p.PartitionTable
	if label == "" {
		label = GPT
	}
	if label != GPT && label != DOS {
		return Layout{}, fmt.Errorf("[image] partition_table = %s: not one of gpt, dos", label)
	}
	pl, err := platform.Find(p.Arch, p.Platform)
	if err != nil {
		return Layout{}, err
	}
	boot, err := pl.Loader(p.SDBoot)
	if err != nil {
		return Layout{}, err
	}
	if err := pl.BootsFrom(label); err != nil {
		return Layout{}, err
	}
	l := Layout{Arch: pl.Arch, Platform: pl.Name, Label: label,
		Ext4Features: pl.Ext4Features, Bootloader: boot.Loader,
		Partitions: boot.Partitions[label], Blobs: boot.Blobs, Firmware: boot.Firmware}
	root := Partition{Role: RoleRoot, FS: FSExt4, FSLabel: "ostree", MBRType: MBRTypeLinux,
		TypeGUID: pl.RootType, Start: boot.RootStart}
	if p.RootfsResize {
		if label == GPT {
			root.Attrs = []int{AttrResize}
		} else {
			l.MBRResize = true
		}
	}
	if len(l.Partitions) == 0 && root.Start == 0 {
		root.Start = firstSector
	}
	l.Partitions = append(l.Partitions, root)
	return l, nil
}

// Root returns the index of the root partition.
func (l Layout) Root() int {
	for i, p := range l.Partitions {
		if p.Role == RoleRoot {
			return i
		}
	}
	return -1
}

// RootGrows reports whether the OS grows the root partition and its
// filesystem on first boot (image:rootfs_resize): the GPT attribute
// AttrResize on the root partition, or the MBR resize marker.
func (l Layout) RootGrows() bool {
	if l.MBRResize {
		return true
	}
	if i := l.Root(); i >= 0 {
		return slices.Contains(l.Partitions[i].Attrs, AttrResize)
	}
	return false
}

// Find returns the index of the first partition with role r, or -1.
func (l Layout) Find(r Role) int {
	for i, p := range l.Partitions {
		if p.Role == r {
			return i
		}
	}
	return -1
}
