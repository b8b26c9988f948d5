// Package checktest makes tiny bootable disk images for tests of the boot
// check: GRUB alone (no kernel), whose embedded config prints lines on the
// serial console and then does what the test needs (power off, or wait
// forever). A BIOS image boots in well under a second under TCG, a UEFI one
// in about four to eight.
package checktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need skips the test when a tool is not installed.
func Need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does)", tool)
		}
	}
}

// Script is a GRUB config that prints lines on the serial console, then
// runs then ("halt" powers off, "sleep 3600" waits).
func Script(lines []string, then string) string {
	s := "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\n"
	for _, l := range lines {
		s += "echo \"" + l + "\"\n"
	}
	return s + then + "\n"
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// BIOSImage writes a 1 MiB raw disk: GRUB's boot.img in the MBR and a
// core.img with the script right behind it (boot.img's default blocklist).
func BIOSImage(t *testing.T, dir, script string) string {
	t.Helper()
	Need(t, "grub-mkimage", "qemu-system-x86_64", "qemu-img")
	bootImg := "/usr/lib/grub/i386-pc/boot.img"
	if _, err := os.Stat(bootImg); err != nil {
		t.Fatalf("%s missing: run make deps (grub-pc-bin)", bootImg)
	}
	cfg := filepath.Join(dir, "bios.cfg")
	if err := os.WriteFile(cfg, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	core := filepath.Join(dir, "core.img")
	run(t, "grub-mkimage", "-O", "i386-pc", "-c", cfg, "-p", "/boot/grub", "-o", core,
		"biosdisk", "serial", "echo", "halt", "sleep", "terminal")
	mbr, err := os.ReadFile(bootImg)
	if err != nil {
		t.Fatal(err)
	}
	mbr[0x66], mbr[0x67] = 0x90, 0x90 // boot from the BIOS drive, whatever it is
	coreData, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "bios.img")
	data := append(mbr, coreData...)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 1<<20); err != nil {
		t.Fatal(err)
	}
	return img
}

// UEFIImage writes a FAT file system without partition table (OVMF
// reads it as a whole-disk ESP) holding GRUB as EFI/BOOT/BOOTX64.EFI.
func UEFIImage(t *testing.T, dir, script string) string {
	t.Helper()
	Need(t, "grub-mkimage", "mkfs.vfat", "mmd", "mcopy", "qemu-system-x86_64", "qemu-img")
	if _, err := os.Stat("/usr/lib/grub/x86_64-efi"); err != nil {
		t.Fatal("/usr/lib/grub/x86_64-efi missing: run make deps (grub-efi-amd64-bin)")
	}
	if _, err := os.Stat("/usr/share/OVMF/OVMF_CODE_4M.fd"); err != nil {
		t.Fatal("OVMF missing: run make deps (ovmf)")
	}
	cfg := filepath.Join(dir, "uefi.cfg")
	if err := os.WriteFile(cfg, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	efi := filepath.Join(dir, "bootx64.efi")
	run(t, "grub-mkimage", "-O", "x86_64-efi", "-c", cfg, "-p", "/boot/grub", "-o", efi,
		"serial", "echo", "halt", "sleep", "terminal")
	img := filepath.Join(dir, "uefi.img")
	run(t, "mkfs.vfat", "-C", img, "4096")
	run(t, "mmd", "-i", img, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", img, efi, "::/EFI/BOOT/BOOTX64.EFI")
	return img
}

// QEMUProcesses lists the emulator processes whose command line mentions
// dir (each test boots from its own temporary directory).
func QEMUProcesses(t *testing.T, dir string) []string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var found []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.HasPrefix(cmdline, "qemu-system") && strings.Contains(cmdline, dir) {
			found = append(found, filepath.Base(filepath.Dir(p))+": "+cmdline)
		}
	}
	return found
}

// ShellImage writes a FAT file system without partition table holding only
// startup.nsh: with no boot loader to start, the UEFI firmware (OVMF or
// AAVMF) runs its shell, which runs the script (lines separated by CRLF;
// "reset -s" powers off).
func ShellImage(t *testing.T, dir string, lines ...string) string {
	t.Helper()
	Need(t, "mkfs.vfat", "mcopy", "qemu-img")
	script := filepath.Join(dir, "startup.nsh")
	if err := os.WriteFile(script, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "shell.img")
	run(t, "mkfs.vfat", "-C", img, "2048")
	run(t, "mcopy", "-i", img, script, "::/startup.nsh")
	return img
}
