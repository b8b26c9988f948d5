package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sfdiskImage makes a 4 MiB disk file with the given sfdisk script.
func sfdiskImage(t *testing.T, dir, name, script string) string {
	t.Helper()
	img := filepath.Join(dir, name)
	if err := os.WriteFile(img, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return img
}

func TestDetectFirmwaresFromThePartitionTable(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Fatalf("sfdisk is needed (make deps installs fdisk): %v", err)
	}
	dir := t.TempDir()
	gptBoth := sfdiskImage(t, dir, "both.img", "label: gpt\nsize=1MiB, type="+gptESP+"\nsize=512KiB, type="+gptBIOSBoot+"\ntype=linux\n")
	gptUEFI := sfdiskImage(t, dir, "uefi.img", "label: gpt\nsize=1MiB, type="+gptESP+"\ntype=linux\n")
	dosBare := sfdiskImage(t, dir, "dos.img", "label: dos\nsize=1MiB, type=ef\ntype=83\n")
	dosCode := sfdiskImage(t, dir, "doscode.img", "label: dos\ntype=83\n")
	f, err := os.OpenFile(dosCode, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xeb, 0x63, 0x90}, 0) // GRUB's boot.img starts with a jump
	f.Close()
	for _, tc := range []struct {
		img  string
		want []string
	}{
		{gptBoth, []string{"bios", "uefi"}},
		{gptUEFI, []string{"uefi"}},
		{dosBare, []string{"uefi"}},
		{dosCode, []string{"bios"}},
	} {
		got, err := DetectFirmwares(context.Background(), tc.img)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", filepath.Base(tc.img), got, err, tc.want)
		}
	}
	junk := filepath.Join(dir, "junk.img")
	os.WriteFile(junk, make([]byte, 1<<20), 0o644)
	if _, err := DetectFirmwares(context.Background(), junk); err == nil || !strings.Contains(err.Error(), "no partition table") {
		t.Errorf("a disk of zeros: %v, want no partition table", err)
	}
	// A FAT file system on the whole disk boots under OVMF, but sfdisk
	// reads it as an empty dos label: not something to decide from.
	fat := filepath.Join(dir, "fat.img")
	if out, err := exec.Command("mkfs.vfat", "-C", fat, "4096").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	if got, err := DetectFirmwares(context.Background(), fat); err == nil {
		t.Errorf("a whole-disk FAT file system: %v, want an error (no partitions)", got)
	}
}
