package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The menu that follows the deployments.
//
// libostree regenerates a boot loader's configuration on every deploy,
// upgrade, rollback and undeploy (a "bootconfig swap": it writes
// boot/loader.N+1 and flips the boot/loader link). Of its backends, the
// syslinux one is written by libostree itself, in C, with paths that carry
// the /boot prefix (ostree's src/libostree/ostree-bootloader-syslinux.c,
// v2022.7): it works when /boot is a directory of the root filesystem, as
// in eib's images, and it needs nothing from the OS but ostree. The grub2
// backend of Debian 12's ostree (2022.7) does not fit that layout: it runs
// grub-mkconfig, whose 15_ostree writes the entries' paths without /boot
// (wrong when /boot is not a partition of its own) and linux16/initrd16
// unless it finds a grub.cfg under /boot/efi/EFI (no such command under
// UEFI). So eib's GRUB (the same core.img and BOOTX64.EFI, whose embedded
// config reads /boot/grub/grub.cfg) reads ostree's syslinux.cfg with GRUB's
// own syslinux parser (module syslinuxcfg).

// OSTreeMenuPath is where ostree's syslinux backend keeps the menu, relative
// to the sysroot: a link into boot/loader, which ostree flips at every
// bootconfig swap.
const OSTreeMenuPath = "boot/syslinux/syslinux.cfg"

// ostreeTool is what a deployment ships when it can deploy its own updates
// (and so regenerate the menu): ostree's command line tool.
const ostreeTool = "usr/bin/ostree"

// PrepareOSTreeMenu sets sysroot/boot up, before the first deploy, for
// ostree's syslinux backend: an empty boot/loader.0/syslinux.cfg, boot/loader
// linked to loader.0, and boot/syslinux/syslinux.cfg linked to
// ../loader/syslinux.cfg (ostree rewrites the file it points at, keeping
// the lines that are not its own entries). It returns the value for the
// repo's sysroot.bootloader ("syslinux").
func PrepareOSTreeMenu(sysroot string) (string, error) {
	boot := filepath.Join(sysroot, "boot")
	for _, d := range []string{filepath.Join(boot, "loader.0"), filepath.Join(boot, "syslinux")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(boot, "loader.0", "syslinux.cfg"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Symlink("loader.0", filepath.Join(boot, "loader")); err != nil {
		return "", err
	}
	if err := os.Symlink("../loader/syslinux.cfg", filepath.Join(boot, "syslinux", "syslinux.cfg")); err != nil {
		return "", err
	}
	return "syslinux", nil
}

// MenuEntry is one LABEL of ostree's syslinux.cfg.
type MenuEntry struct {
	Label  string
	Kernel string // path on the root filesystem (/boot/ostree/...)
	Initrd string
	Append string
}

// ReadOSTreeMenu parses sysroot's boot/syslinux/syslinux.cfg as ostree's
// syslinux backend writes it (LABEL lines, each followed by
// tab-indented KERNEL, INITRD, DEVICETREE and APPEND lines). A LABEL without
// KERNEL is an error (ostree refuses such a file too).
func ReadOSTreeMenu(sysroot string) ([]MenuEntry, error) {
	p := filepath.Join(sysroot, OSTreeMenuPath)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var entries []MenuEntry
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if label, ok := strings.CutPrefix(line, "LABEL "); ok {
			entries = append(entries, MenuEntry{Label: label})
			continue
		}
		if !strings.HasPrefix(line, "\t") || len(entries) == 0 {
			continue
		}
		key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		e := &entries[len(entries)-1]
		switch key {
		case "KERNEL":
			e.Kernel = value
		case "INITRD":
			e.Initrd = value
		case "APPEND":
			e.Append = value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	for _, e := range entries {
		if e.Kernel == "" {
			return nil, fmt.Errorf("%s: LABEL %q has no KERNEL line", p, e.Label)
		}
	}
	return entries, nil
}

// ostreeMenu reports whether the image gets the menu that follows the
// deployments: the deployment ships ostree (so the installed system can
// deploy updates) and the sysroot holds ostree's syslinux.cfg. It then
// checks that file against the boot loader entries: one LABEL per entry,
// in the same order, each kernel and initramfs present in the sysroot. The
// reason is for the warning when it does not apply.
func ostreeMenu(o Options, entries []Entry) (ok bool, reason string, err error) {
	if _, err := os.Stat(filepath.Join(o.Deployment, ostreeTool)); err != nil {
		return false, "the deployment has no /" + ostreeTool, nil
	}
	if _, err := os.Stat(filepath.Join(o.Sysroot, OSTreeMenuPath)); err != nil {
		return false, "the sysroot has no " + OSTreeMenuPath + " (sysroot.bootloader is not syslinux)", nil
	}
	menu, err := ReadOSTreeMenu(o.Sysroot)
	if err != nil {
		return false, "", fmt.Errorf("ostree's boot menu: %w", err)
	}
	p := filepath.Join(o.Sysroot, OSTreeMenuPath)
	if len(menu) != len(entries) {
		return false, "", fmt.Errorf("ostree's boot menu %s lists %d entries, boot/loader/entries has %d: ostree did not regenerate it (is the sysroot's sysroot.bootloader syslinux?)", p, len(menu), len(entries))
	}
	var errs []error
	for i, m := range menu {
		if want := bootPath(entries[i].Linux); m.Kernel != want {
			errs = append(errs, fmt.Errorf("%s: LABEL %q boots %s, the boot loader entry %s says %s", p, m.Label, m.Kernel, entries[i].File, want))
		}
		for _, f := range []string{m.Kernel, m.Initrd} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(o.Sysroot, f)); err != nil {
				errs = append(errs, fmt.Errorf("%s: LABEL %q: %s is not in the sysroot", p, m.Label, f))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return false, "", err
	}
	return true, "", nil
}

// SetMenuTimeout sets the TIMEOUT line of ostree's syslinux.cfg in sysroot
// (tenths of a second; ostree keeps that line when it rewrites the file).
// GRUB's syslinux parser needs one: without a timeout it turns the file
// into the default entry's commands, run outside any menu entry, so
// nothing boots. A timeout under a second becomes one tenth.
func SetMenuTimeout(sysroot string, seconds int) error {
	p := filepath.Join(sysroot, OSTreeMenuPath)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	tenths := max(seconds*10, 1)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], "TIMEOUT") {
			continue
		}
		out = append(out, line)
	}
	text := fmt.Sprintf("TIMEOUT %d\n", tenths) + strings.Join(out, "\n")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// FollowingGrubConfig returns the grub.cfg that shows ostree's current menu:
// the serial console (from kargs or the first entry's options, as
// GrubConfig), the timeout, and GRUB's syslinux parser reading
// /boot/syslinux/syslinux.cfg in the same context. The file never changes
// when the deployments do.
func FollowingGrubConfig(entries []Entry, kargs string, timeout int) string {
	var b strings.Builder
	b.WriteString("# Generated by eib. The menu is ostree's: libostree rewrites\n")
	b.WriteString("# /boot/syslinux/syslinux.cfg at every deploy, upgrade and rollback.\n")
	writeGrubHead(&b, entries, kargs, timeout)
	b.WriteString("syslinux_source /" + OSTreeMenuPath + "\n")
	return b.String()
}
