package boot

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/eib-builder/eib/lib/disk"
	"github.com/eib-builder/eib/lib/platform"
)

// Options are what the boot loaders of one image are made from.
type Options struct {
	Sysroot    string // the deployed sysroot (gets boot/grub/grub.cfg)
	Deployment string // the deployment root (may ship the boot loaders)
	Kargs      string // kernel arguments of the deployment
	TmpDir     string // scratch space for the generated binaries
	Timeout    int    // menu timeout in seconds
	// HostRoot is where the host's boot loader packages are looked up
	// ("" = "/").
	HostRoot string
	Log      func(format string, args ...any)
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// Setup is what a boot loader adds to a disk: files on the ESP and the
// firmware partition, and raw writes.
type Setup struct {
	ESP      []disk.File
	Firmware []disk.File
	Raw      []disk.Raw
}

// Prepare makes the boot loader of plan's layout: for GRUB, grub.cfg in
// the sysroot, BIOS core.img/boot.img and BOOTX64.EFI; for systemd-boot,
// the ESP with the entries and kernels. It runs before disk.Assemble, which
// writes what it returns.
func Prepare(ctx context.Context, plan disk.Plan, o Options) (Setup, error) {
	loader, err := loaderOf(plan.Layout)
	if err != nil {
		return Setup{}, err
	}
	setup, err := prepareLoader(ctx, plan, loader, o)
	if err != nil {
		return setup, err
	}
	if _, ok := plan.Part(disk.RoleFirmware); ok {
		setup.Firmware, err = firmwareFiles(o, loader.FirmwareDir)
	}
	return setup, err
}

// firmwareFiles lists the files of the deployment's dir (the platform
// table's Boot.FirmwareDir: the Raspberry Pi firmware) for the firmware
// partition (empty, with a log line, when it ships none).
func firmwareFiles(o Options, rel string) ([]disk.File, error) {
	if rel == "" {
		return nil, fmt.Errorf("firmware partition: the platform table names no deployment directory for it")
	}
	dir := filepath.Join(o.Deployment, rel)
	if _, err := os.Stat(dir); err != nil {
		o.logf("firmware partition: the deployment has no /%s; the partition is left empty", rel)
		return nil, nil
	}
	var files []disk.File
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, disk.File{Dest: filepath.ToSlash(rel), Src: p})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("firmware partition: reading %s: %w", dir, err)
	}
	o.logf("firmware partition: %d files from the deployment's /%s", len(files), rel)
	return files, nil
}

// loaderOf returns the platform table's boot of the layout's arch and
// platform: its GRUB targets, its sources and its firmware directory.
func loaderOf(l disk.Layout) (platform.Boot, error) {
	pl, err := platform.Find(l.Arch, l.Platform)
	if err != nil {
		return platform.Boot{}, err
	}
	return pl.Loader(l.Bootloader == disk.BootSDBoot)
}

func prepareLoader(ctx context.Context, plan disk.Plan, loader platform.Boot, o Options) (Setup, error) {
	switch plan.Layout.Bootloader {
	case disk.BootGRUB:
		return prepareGRUB(ctx, plan, loader.GRUB, o)
	case disk.BootSDBoot:
		return prepareSDBoot(plan, loader.SDBoot, loader.EFIPath, o)
	case disk.BootUBoot:
		o.logf("boot loader: u-boot blobs from the deployment (%d)", len(plan.Layout.Blobs))
		return Setup{}, nil
	case disk.BootNone:
		o.logf("boot loader: none installed for %s/%s (the OS's hooks or firmware provide it)", plan.Layout.Arch, plan.Layout.Platform)
		return Setup{}, nil
	}
	return Setup{}, fmt.Errorf("unknown boot loader %q for %s/%s", plan.Layout.Bootloader, plan.Layout.Arch, plan.Layout.Platform)
}

// source finds a boot loader's directory src.Dir: in the deployment when
// it ships one with src.Check, else on the host. It logs which.
func source(o Options, what string, src platform.Source) (string, error) {
	rel, check := src.Dir, src.Check
	host := o.HostRoot
	if host == "" {
		host = "/"
	}
	for _, c := range []struct{ root, from string }{{o.Deployment, "the deployment"}, {host, "the host"}} {
		if c.root == "" {
			continue
		}
		p := filepath.Join(c.root, rel)
		if _, err := os.Stat(filepath.Join(p, check)); err == nil {
			o.logf("boot loader: %s from %s (%s)", what, c.from, p)
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: neither the deployment nor the host has %s (install the host package %s)", what, filepath.Join("/", rel, check), src.Package)
}

// grubModules are the modules built into GRUB's images: the config is
// found by the root filesystem's UUID and nothing is loaded later.
var grubModules = []string{"part_gpt", "part_msdos", "ext2", "normal", "linux", "search",
	"search_fs_uuid", "search_label", "configfile", "echo", "test", "serial", "terminal", "gzio", "minicmd",
	// GRUB's syslinux parser: reads ostree's menu (FollowingGrubConfig).
	"syslinuxcfg"}

// prepareGRUB makes grub.cfg and a GRUB image for each of targets (the
// platform table's GRUB targets, BIOS before UEFI).
func prepareGRUB(ctx context.Context, plan disk.Plan, targets []platform.GRUBTarget, o Options) (Setup, error) {
	root := plan.Root()
	if root.FSUUID == "" {
		return Setup{}, fmt.Errorf("GRUB: the root filesystem has no UUID in the plan (call AssignIDs)")
	}
	if len(targets) == 0 {
		return Setup{}, fmt.Errorf("GRUB: the platform table has no GRUB target for %s/%s", plan.Layout.Arch, plan.Layout.Platform)
	}
	entries, err := ReadEntries(o.Sysroot)
	if err != nil {
		return Setup{}, err
	}
	cfgDir := filepath.Join(o.Sysroot, "boot", "grub")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return Setup{}, err
	}
	follow, why, err := ostreeMenu(o, entries)
	if err != nil {
		return Setup{}, err
	}
	cfg := GrubConfig(entries, o.Kargs, o.Timeout)
	if follow {
		cfg = FollowingGrubConfig(entries, o.Kargs, o.Timeout)
		if err := SetMenuTimeout(o.Sysroot, o.Timeout); err != nil {
			return Setup{}, fmt.Errorf("ostree's boot menu: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "grub.cfg"), []byte(cfg), 0o644); err != nil {
		return Setup{}, fmt.Errorf("writing grub.cfg: %w", err)
	}
	if follow {
		o.logf("boot loader: GRUB reads ostree's menu /%s (%d entries, default %q), which ostree rewrites at every deploy: updates reach the boot menu", OSTreeMenuPath, len(entries), entries[0].Title)
	} else {
		o.logf("warning: the OS ships no boot loader integration (%s): updates will not reach the boot menu; grub.cfg lists only this build's deployments (%d), default %q", why, len(entries), entries[0].Title)
	}

	early := filepath.Join(o.TmpDir, "grub-early.cfg")
	earlyCfg := fmt.Sprintf("search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n", root.FSUUID)
	if err := os.WriteFile(early, []byte(earlyCfg), 0o644); err != nil {
		return Setup{}, err
	}
	var setup Setup
	for _, t := range targets {
		switch t.Firmware {
		case platform.BIOS:
			raws, err := grubBIOS(ctx, plan, t, early, o)
			if err != nil {
				return Setup{}, err
			}
			setup.Raw = append(setup.Raw, raws...)
		case platform.UEFI:
			// The removable-media path, so no NVRAM entry is needed.
			if _, ok := plan.Part(disk.RoleESP); !ok {
				continue
			}
			dir, err := source(o, "GRUB "+t.Format, t.Source)
			if err != nil {
				return Setup{}, err
			}
			efi := filepath.Join(o.TmpDir, path.Base(t.EFIPath))
			mods := append([]string{"fat", "all_video", "efi_gop"}, grubModules...)
			if err := mkimage(ctx, dir, t.Format, early, efi, mods); err != nil {
				return Setup{}, err
			}
			setup.ESP = append(setup.ESP, disk.File{Dest: t.EFIPath, Src: efi})
		default:
			return Setup{}, fmt.Errorf("GRUB %s: unknown firmware %q in the platform table", t.Format, t.Firmware)
		}
	}
	return setup, nil
}

// grubBIOS makes GRUB's BIOS boot code for target t: core.img in the BIOS
// boot partition (gpt) or the gap after the MBR (dos), boot.img's code in
// the MBR.
func grubBIOS(ctx context.Context, plan disk.Plan, t platform.GRUBTarget, early string, o Options) ([]disk.Raw, error) {
	pcDir, err := source(o, "GRUB "+t.Format, t.Source)
	if err != nil {
		return nil, err
	}
	coreStart, coreMax := int64(1), plan.Partitions[0].Start-1
	if bb, ok := plan.Part(disk.RoleBIOSBoot); ok {
		coreStart, coreMax = bb.Start, bb.Size
	}
	core := filepath.Join(o.TmpDir, "core.img")
	// linux16: what GRUB's syslinux parser boots with on a PC.
	mods := append([]string{"biosdisk", "linux16"}, grubModules...)
	if err := mkimage(ctx, pcDir, t.Format, early, core, mods); err != nil {
		return nil, err
	}
	return BIOSImages(filepath.Join(pcDir, "boot.img"), core, coreStart, coreMax)
}

// mkimage runs grub-mkimage with the modules of dir.
func mkimage(ctx context.Context, dir, format, early, out string, mods []string) error {
	args := append([]string{"-d", dir, "-O", format, "-c", early, "-p", "/boot/grub", "-o", out}, mods...)
	if b, err := exec.CommandContext(ctx, "grub-mkimage", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("grub-mkimage %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// Offsets that grub-bios-setup patches (GRUB 2.06, grub-core/boot/i386/pc).
const (
	bootImgKernelSector = 0x5c  // boot.img: u64 LBA of core.img's first sector
	bootImgDriveCheck   = 0x66  // boot.img: 2 bytes, NOPed for hard disks
	coreImgBlocklist    = 0x1f4 // core.img (diskboot): u64 start of the first blocklist
	mbrCodeSize         = 440   // boot code area of the MBR, before the disk signature
)

// BIOSImages returns GRUB's BIOS boot code for a disk whose core.img is at
// sector coreStart with at most coreMax sectors: boot.img's first 440 bytes
// for the MBR, pointing at core.img, and core.img with its first blocklist
// pointing at the sectors that follow it. This is what grub-bios-setup
// writes, without a device.
func BIOSImages(bootImg, coreImg string, coreStart, coreMax int64) ([]disk.Raw, error) {
	boot, err := os.ReadFile(bootImg)
	if err != nil {
		return nil, err
	}
	if len(boot) != disk.Sector {
		return nil, fmt.Errorf("%s: %d bytes, expected GRUB's 512-byte boot.img", bootImg, len(boot))
	}
	core, err := os.ReadFile(coreImg)
	if err != nil {
		return nil, err
	}
	sectors := (int64(len(core)) + disk.Sector - 1) / disk.Sector
	if sectors > coreMax {
		return nil, fmt.Errorf("GRUB core.img is %d sectors, its space at sector %d holds %d", sectors, coreStart, coreMax)
	}
	if len(core) < disk.Sector {
		return nil, fmt.Errorf("%s: too short for a GRUB core.img", coreImg)
	}
	binary.LittleEndian.PutUint64(boot[bootImgKernelSector:], uint64(coreStart))
	boot[bootImgDriveCheck], boot[bootImgDriveCheck+1] = 0x90, 0x90
	binary.LittleEndian.PutUint64(core[coreImgBlocklist:], uint64(coreStart+1))
	return []disk.Raw{
		{What: "GRUB boot.img (MBR boot code)", Offset: 0, Data: boot[:mbrCodeSize]},
		{What: "GRUB core.img", Offset: coreStart * disk.Sector, Data: core},
	}, nil
}

// prepareSDBoot puts systemd-boot (from src, the platform table's
// source, at efiPath and under EFI/systemd), its entries and the kernels
// on the ESP.
func prepareSDBoot(plan disk.Plan, src platform.Source, efiPath string, o Options) (Setup, error) {
	dir, err := source(o, "systemd-boot", src)
	if err != nil {
		return Setup{}, err
	}
	efi := filepath.Join(dir, src.Check)
	entries, err := ReadEntries(o.Sysroot)
	if err != nil {
		return Setup{}, err
	}
	loaderConf := filepath.Join(o.TmpDir, "loader.conf")
	conf := fmt.Sprintf("timeout %d\n", o.Timeout)
	if err := os.WriteFile(loaderConf, []byte(conf), 0o644); err != nil {
		return Setup{}, err
	}
	setup := Setup{ESP: []disk.File{
		{Dest: efiPath, Src: efi},
		{Dest: "EFI/systemd/" + src.Check, Src: efi},
		{Dest: "loader/loader.conf", Src: loaderConf},
	}}
	entriesDir := filepath.Join(o.Sysroot, "boot", "loader", "entries")
	for _, e := range entries {
		setup.ESP = append(setup.ESP, disk.File{Dest: "loader/entries/" + e.File, Src: filepath.Join(entriesDir, e.File)})
	}
	// The kernels, initramfs and device trees: systemd-boot cannot read
	// ext4, so the whole of /boot/ostree goes onto the ESP.
	bootDir := filepath.Join(o.Sysroot, "boot")
	var files []string
	err = filepath.WalkDir(filepath.Join(bootDir, "ostree"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return Setup{}, fmt.Errorf("systemd-boot: collecting the kernels under %s: %w", filepath.Join(bootDir, "ostree"), err)
	}
	sort.Strings(files)
	var size int64
	for _, f := range files {
		rel, _ := filepath.Rel(bootDir, f)
		setup.ESP = append(setup.ESP, disk.File{Dest: filepath.ToSlash(rel), Src: f})
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	if esp, ok := plan.Part(disk.RoleESP); ok && size > esp.Bytes()*9/10 {
		return Setup{}, fmt.Errorf("systemd-boot: the kernels and initramfs under %s take %d MiB, more than the %d MiB ESP holds", bootDir, size/disk.MiB, esp.Bytes()/disk.MiB)
	}
	o.logf("boot loader: systemd-boot with %d entries and %d kernel files on the ESP", len(entries), len(files))
	// systemd-boot reads entries only from FAT; ostree writes them under
	// /boot of the root filesystem, so this copy is the build's.
	o.logf("warning: the OS ships no boot loader integration (systemd-boot reads the copy of the entries and kernels on the ESP, which ostree does not update): updates will not reach the boot menu")
	return setup, nil
}
