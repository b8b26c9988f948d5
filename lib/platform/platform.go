// Package platform is eib's table of what each architecture and board
// boots with: one entry per generic arch image (named after its Debian
// architecture) or board, giving the partition table it boots from, the
// boot loader and where its files come from (the host's GRUB directories,
// the deployment's u-boot blobs or Raspberry Pi firmware), the GRUB targets,
// the firmwares the QEMU boot check boots it with, the root's ext4 features
// and its Debian architecture.
//
// Every other place reads these facts from here: disk.ForPlatform lays the
// disk out from an entry, package boot picks the GRUB targets and sources,
// check.Firmwares the QEMU firmwares, the command line its --arch values and
// config/schema.ini's [build] arch_values is checked against Arches by a test.
// A new board is one entry of table plus its golden layout files
// (lib/disk/testdata, written by go test ./lib/disk -update).
//
// The package is a leaf: it imports nothing of eib, so disk, boot, check and
// the command line can all import it.
package platform

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Sector is the logical sector size in bytes of every image eib makes.
const Sector = 512

// MiB is one mebibyte in bytes.
const MiB = 1 << 20

// FirstSector is where the first partition starts unless an entry says
// otherwise: 1 MiB, which leaves room for the GPT, GRUB's core.img in the
// MBR gap of a dos label and u-boot stages.
const FirstSector = 2048

// Label is the kind of partition table, as sfdisk names it.
type Label string

// The partition table kinds sfdisk writes.
const (
	GPT Label = "gpt"
	DOS Label = "dos"
)

// Partition type GUIDs (GPT) from the UEFI specification (5.3.3, "EFI
// System Partition", and GRUB's "BIOS boot partition" registered there) and
// the Discoverable Partitions Specification (root of x86-64 and arm64, and
// Microsoft's basic data type for a FAT partition any firmware reads), and
// MBR type bytes (hex, without 0x).
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

// Boot loader kinds (package boot installs them).
const (
	BootGRUB   = "grub"   // GRUB for BIOS (core.img in the MBR gap or BIOS boot partition) and UEFI
	BootSDBoot = "sdboot" // systemd-boot on a large ESP with the kernels
	BootUBoot  = "u-boot" // raw u-boot blobs from the deployment
	BootNone   = "none"   // nothing: the OS's hooks or firmware take care of it
)

// PC firmware interfaces a disk's boot loader answers to, as [check]
// firmware names them.
const (
	BIOS = "bios"
	UEFI = "uefi"
)

// Partition is one partition of a layout. Start and Size are in sectors;
// Start 0 means "right after the previous partition". The root's Size is
// left 0: disk.NewPlan sizes it for the sysroot, and the last partition of
// a plan extends to the end of the disk.
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

// Source is where a boot loader's files come from: a directory looked up
// in the deployment first, then on the host (relative to either root),
// which counts only when it has the file Check.
type Source struct {
	Dir     string
	Check   string
	Package string // the Debian package that installs Dir on the host
}

// GRUBTarget is one GRUB platform an image gets a GRUB image for
// (grub-mkimage -O Format, GRUB manual, "Invoking grub-mkimage").
type GRUBTarget struct {
	Format   string // grub-mkimage -O: i386-pc, x86_64-efi, arm64-efi ...
	Firmware string // BIOS or UEFI: the interface the image answers to
	Source   Source // the GRUB modules and, for i386-pc, boot.img
	// EFIPath is where a UEFI image goes on the ESP: the removable-media
	// path of the UEFI specification (3.5.1.1, \EFI\BOOT\BOOT<arch>.EFI),
	// so no NVRAM entry is needed. Empty for BIOS.
	EFIPath string
}

// Boot is how a disk of an entry boots: the partitions before the root,
// the root's start, raw blobs and the boot loader.
type Boot struct {
	Loader string // BootGRUB, BootSDBoot, BootUBoot or BootNone
	// Partitions are the partitions before the root for each partition
	// table Label the entry boots from.
	Partitions map[Label][]Partition
	// RootStart is the root's first sector; 0 = right after the previous
	// partition, or FirstSector when it is the only one.
	RootStart int64
	Blobs     []Blob // Loader BootUBoot: the deployment's u-boot stages
	// Firmware lists the PC firmware interfaces the disk boots with (BIOS
	// and/or UEFI). Empty when only a board's own firmware boots it.
	Firmware []string
	GRUB     []GRUBTarget // Loader BootGRUB, in the order they are made
	SDBoot   Source       // Loader BootSDBoot: Check is the EFI program
	// EFIPath is where Loader BootSDBoot's EFI program goes on the ESP
	// (the UEFI specification's removable-media path, 3.5.1.1).
	EFIPath string
	// FirmwareDir is the deployment's directory whose files fill the
	// RoleFirmware partition ("" = no such partition).
	FirmwareDir string
}

// QEMUFirmware is one way the QEMU boot check boots an image.
type QEMUFirmware struct {
	Interface string // BIOS or UEFI: the [check] firmware value that selects it
	Name      string // the boot's name (check.Firmware): bios, uefi, aarch64-uefi
	Emulator  string // the QEMU system emulator
	What      string // the firmware QEMU runs
}

// Platform is one entry of the table.
type Platform struct {
	// Name is the --platform value: the Debian architecture for the
	// generic image of an arch, the board's name otherwise.
	Name string
	// Arch is the Debian architecture (dpkg --print-architecture) of the
	// OS, the --arch value.
	Arch        string
	Description string
	// Labels are the partition tables the entry boots from (image:
	// partition_table; eib's default is gpt), LabelNote why when there is
	// only one.
	Labels    []Label
	LabelNote string
	RootType  string // GPT type of the root partition
	// Ext4Features are the mkfs.ext4 -O features of the root filesystem,
	// on top of the ext4 defaults of mke2fs.conf (which include 64bit and
	// huge_file).
	Ext4Features string
	Boot         Boot
	SDBoot       *Boot // with image:sdboot = true; nil = not laid out
	// QEMU lists the boot check's firmwares for the arch's images; empty
	// when the entry cannot be booted under QEMU, QEMUNote says why (or
	// why an interface is missing).
	QEMU     []QEMUFirmware
	QEMUNote string
}

// Generic reports whether p is the generic image of its arch, not a board.
func (p Platform) Generic() bool { return p.Name == p.Arch }

// Sizes in sectors.
const (
	espSectors      = 62 * MiB / Sector  // EIB's ESP with GRUB
	sdbootESPSecs   = 500 * MiB / Sector // EIB's ESP holding the kernels for systemd-boot
	biosBootSectors = 1 * MiB / Sector   // GRUB's core.img (GRUB manual, "BIOS installation")
	rpiFWSectors    = 512 * MiB / Sector // the Raspberry Pi firmware partition
	// rk3399RootStart leaves sectors 64 to 32767 to u-boot (Rockchip's
	// boot flow: idbloader at 64, u-boot.itb at 16384).
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

// The ESP of a GRUB image (FAT, labelled EFI).
var esp = Partition{Role: RoleESP, Start: FirstSector, Size: espSectors,
	TypeGUID: TypeESP, MBRType: MBRTypeESP, FS: FSVFAT, FSLabel: "EFI"}

// pcGRUB is the boot of a PC image: GRUB for BIOS and UEFI. A dos label has
// no BIOS boot partition type: GRUB's core.img goes into the gap between
// the MBR and the first partition.
var pcGRUB = Boot{
	Loader: BootGRUB,
	Partitions: map[Label][]Partition{
		GPT: {esp, {Role: RoleBIOSBoot, Size: biosBootSectors, TypeGUID: TypeBIOSBoot}},
		DOS: {esp},
	},
	Firmware: []string{BIOS, UEFI},
	GRUB: []GRUBTarget{
		{Format: "i386-pc", Firmware: BIOS,
			Source: Source{Dir: "usr/lib/grub/i386-pc", Check: "boot.img", Package: "grub-pc-bin"}},
		{Format: "x86_64-efi", Firmware: UEFI, EFIPath: "EFI/BOOT/BOOTX64.EFI",
			Source: Source{Dir: "usr/lib/grub/x86_64-efi", Check: "kernel.img", Package: "grub-efi-amd64-bin"}},
	},
}

// The QEMU firmwares (Debian packages seabios, ovmf, qemu-efi-aarch64).
var (
	qemuBIOS  = QEMUFirmware{Interface: BIOS, Name: "bios", Emulator: "qemu-system-x86_64", What: "SeaBIOS"}
	qemuUEFI  = QEMUFirmware{Interface: UEFI, Name: "uefi", Emulator: "qemu-system-x86_64", What: "OVMF"}
	qemuAAVMF = QEMUFirmware{Interface: UEFI, Name: "aarch64-uefi", Emulator: "qemu-system-aarch64", What: "AAVMF"}
)

// table is every arch and board eib builds for: the generic image of each
// arch first, in the order of --arch's values.
var table = []Platform{
	{
		Name: "i386", Arch: "i386", Description: "32-bit PCs",
		Labels: []Label{GPT, DOS}, RootType: TypeRootX86_64, Ext4Features: rootExt4Features,
		Boot: pcGRUB,
		// qemu-system-x86_64 boots 32-bit PCs; there is no 32-bit OVMF here.
		QEMU: []QEMUFirmware{qemuBIOS}, QEMUNote: "i386 images are checked with BIOS only; use bios",
	},
	{
		Name: "amd64", Arch: "amd64", Description: "64-bit PCs",
		Labels: []Label{GPT, DOS}, RootType: TypeRootX86_64, Ext4Features: rootExt4Features,
		Boot: pcGRUB,
		SDBoot: &Boot{
			Loader:     BootSDBoot,
			Partitions: map[Label][]Partition{GPT: {sdbootESP()}, DOS: {sdbootESP()}},
			Firmware:   []string{UEFI}, // systemd-boot is an EFI program
			SDBoot:     Source{Dir: "usr/lib/systemd/boot/efi", Check: "systemd-bootx64.efi", Package: "systemd-boot-efi"},
			EFIPath:    "EFI/BOOT/BOOTX64.EFI",
		},
		QEMU: []QEMUFirmware{qemuBIOS, qemuUEFI},
	},
	{
		Name: "arm64", Arch: "arm64", Description: "64-bit ARM with UEFI firmware",
		Labels: []Label{GPT, DOS}, RootType: TypeRootARM64, Ext4Features: rootExt4Features,
		// The generic arm64 image boots with UEFI firmware; eib installs
		// no boot loader for it (the OS's hooks provide one).
		Boot: Boot{Loader: BootNone, Firmware: []string{UEFI}},
		QEMU: []QEMUFirmware{qemuAAVMF}, QEMUNote: "arm64 images have no BIOS boot; use uefi",
	},
	{
		Name: "pinebookpro", Arch: "arm64", Description: "PINE64 Pinebook Pro laptop (Rockchip RK3399)",
		Labels: []Label{DOS}, LabelNote: "the RK3399 boot ROM only reads an MBR; u-boot sits in the gap after it",
		RootType: TypeRootARM64, Ext4Features: rootExt4Features,
		Boot: Boot{
			Loader:    BootUBoot,
			RootStart: rk3399RootStart,
			Blobs: []Blob{
				{File: "usr/lib/u-boot/pinebook-pro-rk3399/idbloader.img", Sector: 64},
				{File: "usr/lib/u-boot/pinebook-pro-rk3399/u-boot.itb", Sector: 16384},
			},
		},
		QEMUNote: "QEMU has no RK3399 machine: the image boots only with its board's own firmware",
	},
	{
		Name: "rpi", Arch: "arm64", Description: "Raspberry Pi (64-bit)",
		Labels: []Label{GPT, DOS}, RootType: TypeRootARM64, Ext4Features: rootExt4Features,
		Boot: Boot{
			Loader:     BootNone,
			Partitions: map[Label][]Partition{GPT: {rpiFirmware}, DOS: {rpiFirmware}},
			// Debian's raspi-firmware package keeps the boot firmware here.
			FirmwareDir: "usr/lib/raspi-firmware",
		},
		QEMUNote: "QEMU has no Raspberry Pi machine that boots from its firmware partition: the image boots only with the board's own firmware",
	},
}

// rpiFirmware is the FAT partition the Raspberry Pi's boot ROM reads its
// firmware from.
var rpiFirmware = Partition{Role: RoleFirmware, Start: FirstSector, Size: rpiFWSectors,
	TypeGUID: TypeBasicData, MBRType: MBRTypeFAT32LBA, FS: FSVFAT, FSLabel: "RPIFW"}

func sdbootESP() Partition {
	p := esp
	p.Size = sdbootESPSecs
	return p
}

// All returns every entry of the table, generic arch images first.
func All() []Platform {
	out := make([]Platform, len(table))
	for i, p := range table {
		out[i] = p.clone()
	}
	return out
}

// Arches returns the Debian architectures eib builds for, in the order of
// --arch's values.
func Arches() []string {
	var out []string
	for _, p := range table {
		if p.Generic() {
			out = append(out, p.Arch)
		}
	}
	return out
}

// Names returns the platforms of arch (its generic image first).
func Names(arch string) []string {
	var out []string
	for _, p := range table {
		if p.Arch == arch {
			out = append(out, p.Name)
		}
	}
	return out
}

// ForArch returns the generic image entry of arch.
func ForArch(arch string) (Platform, bool) {
	for _, p := range table {
		if p.Generic() && p.Arch == arch {
			return p.clone(), true
		}
	}
	return Platform{}, false
}

// Find returns the entry for arch and platform name ("" = the arch's
// generic image), or an error naming what is supported.
func Find(arch, name string) (Platform, error) {
	if _, ok := ForArch(arch); !ok {
		arches := Arches()
		sort.Strings(arches)
		return Platform{}, fmt.Errorf("unsupported architecture %q (platform %q): eib lays out disks for %s",
			arch, name, strings.Join(arches, ", "))
	}
	if name == "" {
		name = arch
	}
	for _, p := range table {
		if p.Arch == arch && p.Name == name {
			return p.clone(), nil
		}
	}
	return Platform{}, fmt.Errorf("unsupported combination of arch %q and platform %q: %s supports platforms %s",
		arch, name, arch, strings.Join(Names(arch), ", "))
}

// Loader returns the boot of p with or without image:sdboot.
func (p Platform) Loader(sdboot bool) (Boot, error) {
	if !sdboot {
		return p.Boot, nil
	}
	if p.SDBoot == nil {
		var arches []string
		for _, q := range table {
			if q.SDBoot != nil {
				arches = append(arches, q.Name)
			}
		}
		return Boot{}, fmt.Errorf("[image] sdboot = true: systemd-boot is only laid out for arch %s, not %q (platform %q)",
			strings.Join(arches, ", "), p.Arch, p.Name)
	}
	return *p.SDBoot, nil
}

// BootsFrom reports an error when p does not boot from a label partition
// table.
func (p Platform) BootsFrom(label Label) error {
	if slices.Contains(p.Labels, label) {
		return nil
	}
	var names []string
	for _, l := range p.Labels {
		names = append(names, string(l))
	}
	msg := fmt.Sprintf("[image] partition_table = %s: platform %s boots only from a %s label", label, p.Name, strings.Join(names, " or "))
	if p.LabelNote != "" {
		msg += " (" + p.LabelNote + ")"
	}
	return fmt.Errorf("%s", msg)
}

// clone copies p's slices and maps, so a caller cannot change the table.
func (p Platform) clone() Platform {
	p.Labels = slices.Clone(p.Labels)
	p.Boot = p.Boot.clone()
	if p.SDBoot != nil {
		b := p.SDBoot.clone()
		p.SDBoot = &b
	}
	p.QEMU = slices.Clone(p.QEMU)
	return p
}

func (b Boot) clone() Boot {
	if b.Partitions != nil {
		m := make(map[Label][]Partition, len(b.Partitions))
		for l, parts := range b.Partitions {
			c := make([]Partition, len(parts))
			for i, part := range parts {
				part.Attrs = slices.Clone(part.Attrs)
				c[i] = part
			}
			m[l] = c
		}
		b.Partitions = m
	}
	b.Blobs = slices.Clone(b.Blobs)
	b.Firmware = slices.Clone(b.Firmware)
	b.GRUB = slices.Clone(b.GRUB)
	return b
}
