package disk_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/boot"
	"github.com/eib-builder/eib/lib/disk"
)

// mtype returns a file of a FAT partition of img, read with mtools.
func mtype(t *testing.T, img string, pl disk.Placed, path string) []byte {
	t.Helper()
	cmd := exec.Command("mcopy", "-n", "-i", img+"@@"+itoa(pl.Offset()), "::/"+path, "-")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcopy ::/%s from the %s: %v", path, pl.Role, err)
	}
	return out
}

// TestGrubImageBootsNewestEntryFirst checks the GRUB files of an amd64
// image: BOOTX64.EFI on the ESP, and grub.cfg with the newest deployment
// first, /boot-prefixed paths and the serial console of the kargs.
func TestGrubImageBootsNewestEntryFirst(t *testing.T) {
	needTools(t, "grub-mkimage")
	f := newSysroot(t, t.TempDir())
	plan, img := build(t, f, disk.Params{Arch: "amd64"}, rootBytes, disk.RandomIDs(), -1, nil)
	esp, _ := plan.Part(disk.RoleESP)
	if efi := mtype(t, img, esp, "EFI/BOOT/BOOTX64.EFI"); !bytes.HasPrefix(efi, []byte("MZ")) || len(efi) < 100000 {
		t.Errorf("EFI/BOOT/BOOTX64.EFI is not a PE image (%d bytes)", len(efi))
	}
	cfg := debugfs(t, img, plan.Root(), "cat /boot/grub/grub.cfg")
	newer, older := strings.Index(cfg, "Demo OS 2.0"), strings.Index(cfg, "Demo OS 1.0")
	if newer < 0 || older < 0 || newer > older {
		t.Errorf("grub.cfg does not list the newest deployment first:\n%s", cfg)
	}
	for _, want := range []string{
		"set default=0",
		"serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console",
		"linux '/boot/ostree/demo-" + bootCsum + "/vmlinuz-6.1.0-demo' " + kargs,
		"initrd '/boot/ostree/demo-" + bootCsum + "/initramfs-6.1.0-demo.img'",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	// GRUB finds the root by the UUID the plan gave mkfs.ext4 (core.img
	// is compressed; the EFI image keeps its embedded config readable).
	if efi := mtype(t, img, esp, "EFI/BOOT/BOOTX64.EFI"); !bytes.Contains(efi, []byte("--fs-uuid --set=root "+plan.Root().FSUUID)) {
		t.Errorf("BOOTX64.EFI does not search for the root filesystem UUID %s", plan.Root().FSUUID)
	}
	if got := debugfs(t, img, plan.Root(), "stats"); !strings.Contains(got, "Filesystem UUID:          "+plan.Root().FSUUID) {
		t.Errorf("root filesystem UUID is not %s", plan.Root().FSUUID)
	}
}

// TestSDBootESPHoldsEntriesAndKernels checks the ESP of an sdboot image:
// systemd-boot at the removable path, loader.conf, both entries and the
// kernel and initramfs at the paths the entries name.
func TestSDBootESPHoldsEntriesAndKernels(t *testing.T) {
	needTools(t)
	host := "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	want, err := os.ReadFile(host)
	if err != nil {
		t.Skipf("systemd-boot-efi is not installed: %v", err)
	}
	f := newSysroot(t, t.TempDir())
	plan, img := build(t, f, disk.Params{Arch: "amd64", SDBoot: true}, rootBytes, disk.RandomIDs(), -1, nil)
	esp, _ := plan.Part(disk.RoleESP)
	if got := mtype(t, img, esp, "EFI/BOOT/BOOTX64.EFI"); !bytes.Equal(got, want) {
		t.Errorf("EFI/BOOT/BOOTX64.EFI is not %s", host)
	}
	if got := string(mtype(t, img, esp, "loader/loader.conf")); got != "timeout 1\n" {
		t.Errorf("loader.conf = %q", got)
	}
	for _, e := range []string{"ostree-1-demo.conf", "ostree-2-demo.conf"} {
		if got := string(mtype(t, img, esp, "loader/entries/"+e)); !strings.Contains(got, "linux /ostree/demo-"+bootCsum) {
			t.Errorf("loader/entries/%s = %q", e, got)
		}
	}
	if got := string(mtype(t, img, esp, "ostree/demo-"+bootCsum+"/vmlinuz-6.1.0-demo")); got != "kernel" {
		t.Errorf("kernel on the ESP = %q", got)
	}
	if got := string(mtype(t, img, esp, "ostree/demo-"+bootCsum+"/initramfs-6.1.0-demo.img")); got != "initramfs" {
		t.Errorf("initramfs on the ESP = %q", got)
	}
}

// TestRPiFirmwarePartitionHoldsTheDeploymentsFirmware checks that the rpi
// layout's FAT partition gets the deployment's /usr/lib/raspi-firmware.
func TestRPiFirmwarePartitionHoldsTheDeploymentsFirmware(t *testing.T) {
	needTools(t)
	f := newSysroot(t, t.TempDir())
	sh(t, "chattr", "-i", f.deployment)
	writeFile(t, f.deployment+"/usr/lib/raspi-firmware/start4.elf", "gpu firmware", 0o644)
	writeFile(t, f.deployment+"/usr/lib/raspi-firmware/overlays/dwc2.dtbo", "overlay", 0o644)
	sh(t, "chattr", "+i", f.deployment)
	plan, img := build(t, f, disk.Params{Arch: "arm64", Platform: "rpi"}, rootBytes, disk.RandomIDs(), -1, nil)
	fw, ok := plan.Part(disk.RoleFirmware)
	if !ok {
		t.Fatal("the rpi layout has no firmware partition")
	}
	if got := string(mtype(t, img, fw, "start4.elf")); got != "gpu firmware" {
		t.Errorf("start4.elf on the firmware partition = %q", got)
	}
	if got := string(mtype(t, img, fw, "overlays/dwc2.dtbo")); got != "overlay" {
		t.Errorf("overlays/dwc2.dtbo on the firmware partition = %q", got)
	}
}

// TestBootLoaderFromTheDeploymentWhenShipped checks that GRUB's modules
// and systemd-boot come from the deployment when it ships them, and that
// the log says so.
func TestBootLoaderFromTheDeploymentWhenShipped(t *testing.T) {
	needTools(t, "grub-mkimage")
	for _, row := range []struct {
		p    disk.Params
		dirs []string
		want []string
	}{
		{disk.Params{Arch: "amd64"}, []string{"usr/lib/grub/i386-pc", "usr/lib/grub/x86_64-efi"},
			[]string{"GRUB i386-pc from the deployment", "GRUB x86_64-efi from the deployment"}},
		{disk.Params{Arch: "amd64", SDBoot: true}, []string{"usr/lib/systemd/boot/efi"},
			[]string{"systemd-boot from the deployment"}},
	} {
		f := newSysroot(t, t.TempDir())
		sh(t, "chattr", "-i", f.deployment)
		for _, d := range row.dirs {
			if _, err := os.Stat("/" + d); err != nil {
				t.Skipf("the host has no /%s to ship in the fixture", d)
			}
			must(t, os.MkdirAll(f.deployment+"/"+d, 0o755))
			sh(t, "cp", "-a", "/"+d+"/.", f.deployment+"/"+d+"/")
		}
		sh(t, "chattr", "+i", f.deployment)
		layout, err := disk.ForPlatform(row.p)
		must(t, err)
		plan, err := disk.NewPlan(layout, rootBytes, 0)
		must(t, err)
		plan.AssignIDs(disk.RandomIDs())
		var log []string
		_, err = boot.Prepare(context.Background(), plan, boot.Options{Sysroot: f.sysroot, Deployment: f.deployment,
			TmpDir: t.TempDir(), Log: func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }})
		must(t, err)
		for _, w := range row.want {
			if !strings.Contains(strings.Join(log, "\n"), w) {
				t.Errorf("%+v: the log lacks %q:\n%s", row.p, w, strings.Join(log, "\n"))
			}
		}
	}
}
