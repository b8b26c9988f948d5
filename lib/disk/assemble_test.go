package disk

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissingBlobNamesThePlatformAndFile(t *testing.T) {
	l, err := ForPlatform(Params{Arch: "arm64", Platform: "pinebookpro", PartitionTable: DOS})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(l, GiB, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	err = Assemble(context.Background(), plan, Content{Sysroot: dir, Deployment: dir, Epoch: -1}, img)
	if err == nil || !strings.Contains(err.Error(), "pinebookpro") || !strings.Contains(err.Error(), "idbloader.img") {
		t.Fatalf("error %v does not name the platform and the missing blob", err)
	}
	if _, err := os.Stat(img); err == nil {
		t.Error("a disk image was created before the blobs were found")
	}
}

func TestRawWritesMayNotHitTheTableOrPartitions(t *testing.T) {
	l, _ := ForPlatform(Params{Arch: "amd64"})
	plan, err := NewPlan(l, GiB, 0)
	if err != nil {
		t.Fatal(err)
	}
	bios, _ := plan.Part(RoleBIOSBoot)
	esp, _ := plan.Part(RoleESP)
	for _, row := range []struct {
		raw  Raw
		want string // "" = allowed
	}{
		{Raw{What: "boot code", Offset: 0, Data: make([]byte, 440)}, ""},
		{Raw{What: "whole MBR", Offset: 0, Data: make([]byte, 512)}, "partition table"},
		{Raw{What: "into the GPT", Offset: 10 * Sector, Data: make([]byte, 100)}, "partition table"},
		{Raw{What: "core.img", Offset: bios.Offset(), Data: make([]byte, bios.Bytes())}, ""},
		{Raw{What: "too big core.img", Offset: bios.Offset(), Data: make([]byte, bios.Bytes()+1)}, "does not fit in partition 2 (bios-boot"},
		{Raw{What: "over the ESP", Offset: esp.Offset() + 4096, Data: make([]byte, 10)}, "overlaps partition 1 (esp"},
	} {
		err := checkRaw(plan, row.raw)
		switch {
		case row.want == "" && err != nil:
			t.Errorf("%s: %v", row.raw.What, err)
		case row.want != "" && (err == nil || !strings.Contains(err.Error(), row.want)):
			t.Errorf("%s: error %v, want one with %q", row.raw.What, err, row.want)
		}
	}
}
