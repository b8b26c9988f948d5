// Package disk describes and assembles eib's disk images: a typed layout
// (partition table label, partitions with their types, attributes and
// filesystems, raw bootloader blobs) chosen per architecture and platform
// exactly as EIB lays them out, the sizing of the image, and its assembly
// from plain files (mkfs.ext4 -d at an offset, mkfs.vfat + mtools, sfdisk on
// the file, debugfs) without loop devices or mounts.
package disk

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Sector is the logical sector size of every image eib makes.
const Sector = 512

// MiB is one mebibyte in bytes.
const MiB = 1 << 20

// Label is the kind of partition table.
type Label string

// The partition table kinds sfdisk writes.
const (
	GPT Label = "gpt"
	DOS Label = "dos"
)

// Partition type GUIDs (GPT) from the UEFI specification and the
// Discoverable Partitions Specification.
const (
	TypeESP         = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeBIOSBoot    = "21686148-6449-6E6F-744E-656564454649"
	TypeRootX86_64  = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeRootARM64   = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	TypeBasicData   = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
	MBRTypeLinux    = "83"
	MBRTypeESP      = "ef"
	MBRTypeFAT32LBA = "c"
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

// Role says what a partition is for.
type Role string

// The partition roles eib lays out.
const (
	RoleESP      Role = "esp"
	RoleBIOSBoot Role = "bios-boot"
	RoleFirmware Role = "firmware"
	RoleRoot     Role = "root"
)

// Filesystem kinds.
const (
	FSNone = ""
	FSVFAT = "vfat"
	FSExt4 = "ext4"
)

// Bootloader kinds a layout is made for (package boot installs them).
const (
	BootGRUB   = "grub"   // GRUB for BIOS (core.img in the MBR gap or BIOS boot partition) and UEFI
	BootSDBoot = "sdboot" // systemd-boot on a large ESP with the kernels
	BootUBoot  = "u-boot" // raw u-boot blobs from the deployment
	BootNone   = "none"   // nothing: the OS's hooks or firmware take care of it
)

// Partition is one partition of a layout. Start and Size are in sectors;
// Start 0 means "right after the previous partition". The root's Size is
// left 0: NewPlan sizes it for the sysroot, and the last partition of a
// plan extends to the end of the disk.
type Partition struct {
	Role     Role
	Start    int64
	Size     int64
	TypeGUID string // GPT type
	MBRType  string // dos type (hex, without 0x)
	Attrs    []int  // GPT attribute bits
	FS       string
	FSLabel  string
}

// Blob is a file of the deployment written raw at a sector of the disk
// (u-boot stages on Rockchip boards).
type Blob struct {
	File   string // path relative to the deployment root
	Sector int64
}

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

// platforms lists the platforms eib can lay out for each architecture.
var platforms = map[string][]string{
	"amd64": {"amd64"},
	"i386":  {"i386"},
	"arm64": {"arm64", "pinebookpro", "rpi"},
}

const (
	firstSector     = 2048 // 1 MiB of space for the GPT, the MBR gap, u-boot
	espSectors      = 62 * MiB / Sector
	sdbootESPSecs   = 500 * MiB / Sector
	biosBootSectors = 1 * MiB / Sector
	rpiFWSectors    = 512 * MiB / Sector
	rk3399RootStart = 32768
)

// rootExt4Features is the -O of EIB's `mke2fs -t ext4 -O dir_index -m1
// -L ostree -T default` (stages/eib_image, create_image), the same on every
// architecture. EIB forced ^huge_file everywhere and ^64bit on arm64 until
// January 2026 (commits 43003e7 "Revert: Disable 64bit ext4 feature on ARM"
// and f934a3b "Do not force disable ext4 option huge_file"): without 64bit
// resize2fs cannot grow the root past 16 TiB on first boot, and images with
// offline content are large.
const rootExt4Features = "dir_index"

// ForPlatform returns EIB's layout for p, or an error naming what is not
// supported, before any work is done.
func ForPlatform(p Params) (Layout, error) {
	label := p.PartitionTable
	if label == "" {
		label = GPT
	}
	if label != GPT && label != DOS {
		return Layout{}, fmt.Errorf("[image] partition_table = %s: not one of gpt, dos", label)
	}
	plats, ok := platforms[p.Arch]
	if !ok {
		return Layout{}, fmt.Errorf("unsupported architecture %q (platform %q): eib lays out disks for %s",
			p.Arch, p.Platform, strings.Join(sortedKeys(platforms), ", "))
	}
	platform := p.Platform
	if platform == "" {
		platform = p.Arch
	}
	if !contains(plats, platform) {
		return Layout{}, fmt.Errorf("unsupported combination of arch %q and platform %q: %s supports platforms %s",
			p.Arch, platform, p.Arch, strings.Join(plats, ", "))
	}
	l := Layout{Arch: p.Arch, Platform: platform, Label: label,
		Ext4Features: rootExt4Features, Bootloader: BootNone}
	root := Partition{Role: RoleRoot, FS: FSExt4, FSLabel: "ostree", MBRType: MBRTypeLinux}

	switch p.Arch {
	case "amd64", "i386":
		root.TypeGUID = TypeRootX86_64
		esp := Partition{Role: RoleESP, Start: firstSector, Size: espSectors,
			TypeGUID: TypeESP, MBRType: MBRTypeESP, FS: FSVFAT, FSLabel: "EFI"}
		switch {
		case p.SDBoot:
			if p.Arch != "amd64" {
				return Layout{}, fmt.Errorf("[image] sdboot = true: systemd-boot is only laid out for arch amd64, not %q (platform %q)", p.Arch, platform)
			}
			esp.Size = sdbootESPSecs
			l.Partitions = []Partition{esp}
			l.Bootloader = BootSDBoot
			l.Firmware = []string{"uefi"} // systemd-boot is an EFI program
		case label == GPT:
			l.Partitions = []Partition{esp,
				{Role: RoleBIOSBoot, Size: biosBootSectors, TypeGUID: TypeBIOSBoot}}
			l.Bootloader = BootGRUB
			l.Firmware = []string{"bios", "uefi"}
		default:
			// A dos label has no BIOS boot partition type: GRUB's core.img
			// goes into the gap between the MBR and the first partition.
			l.Partitions = []Partition{esp}
			l.Bootloader = BootGRUB
			l.Firmware = []string{"bios", "uefi"}
		}
	case "arm64":
		if p.SDBoot {
			return Layout{}, fmt.Errorf("[image] sdboot = true: systemd-boot is only laid out for arch amd64, not %q (platform %q)", p.Arch, platform)
		}
		root.TypeGUID = TypeRootARM64
		// The generic arm64 image boots with UEFI firmware; the boards
		// below only with their own.
		l.Firmware = []string{"uefi"}
		switch platform {
		case "pinebookpro":
			if label != DOS {
				return Layout{}, fmt.Errorf("[image] partition_table = %s: platform pinebookpro (RK3399) boots only from a dos label", label)
			}
			root.Start = rk3399RootStart
			dir := "usr/lib/u-boot/pinebook-pro-rk3399/"
			l.Blobs = []Blob{{File: dir + "idbloader.img", Sector: 64}, {File: dir + "u-boot.itb", Sector: 16384}}
			l.Bootloader = BootUBoot
			l.Firmware = nil
		case "rpi":
			l.Partitions = []Partition{{Role: RoleFirmware, Start: firstSector, Size: rpiFWSectors,
				TypeGUID: TypeBasicData, MBRType: MBRTypeFAT32LBA, FS: FSVFAT, FSLabel: "RPIFW"}}
			l.Firmware = nil
		}
	}
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string][]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
