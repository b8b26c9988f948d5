package disk

import (
	"slices"
	"testing"
)

// Each layout says which firmware interfaces its boot loader answers to;
// the boot check boots those and no other.
func TestLayoutFirmwareFollowsTheBootLoader(t *testing.T) {
	for _, tc := range []struct {
		p    Params
		want []string
	}{
		{Params{Arch: "amd64"}, []string{"bios", "uefi"}},
		{Params{Arch: "amd64", PartitionTable: DOS}, []string{"bios", "uefi"}},
		{Params{Arch: "amd64", SDBoot: true}, []string{"uefi"}},
		{Params{Arch: "i386"}, []string{"bios", "uefi"}},
		{Params{Arch: "arm64"}, []string{"uefi"}},
		{Params{Arch: "arm64", Platform: "pinebookpro", PartitionTable: DOS}, nil},
		{Params{Arch: "arm64", Platform: "rpi"}, nil},
	} {
		l, err := ForPlatform(tc.p)
		if err != nil {
			t.Fatalf("%+v: %v", tc.p, err)
		}
		if !slices.Equal(l.Firmware, tc.want) {
			t.Errorf("%+v: firmware %v (boot loader %s), want %v", tc.p, l.Firmware, l.Bootloader, tc.want)
		}
	}
}
