package check

import (
	"slices"
	"testing"

	"github.com/eib-builder/eib/lib/platform"
)

// Every QEMU firmware of the platform table is one the boot check knows
// how to run, with the emulator it runs it in.
func TestPlatformTableFirmwaresAreTheBootChecks(t *testing.T) {
	emulator := map[Firmware]string{BIOS: "qemu-system-x86_64", UEFI: "qemu-system-x86_64", AArch64UEFI: "qemu-system-aarch64"}
	for _, p := range platform.All() {
		for _, q := range p.QEMU {
			bin, ok := emulator[Firmware(q.Name)]
			if !ok {
				t.Errorf("%s: QEMU firmware %q is not one the boot check runs", p.Name, q.Name)
			} else if q.Emulator != bin {
				t.Errorf("%s: QEMU firmware %q runs in %s, the table says %s", p.Name, q.Name, bin, q.Emulator)
			}
			if !slices.Contains([]string{platform.BIOS, platform.UEFI}, q.Interface) {
				t.Errorf("%s: QEMU firmware %q answers to %q, not bios or uefi", p.Name, q.Name, q.Interface)
			}
		}
		if p.Generic() {
			got, err := Firmwares(p.Arch, "both")
			if err != nil || len(got) != len(p.QEMU) {
				t.Errorf("Firmwares(%s, both) = %v, %v; the table has %v", p.Arch, got, err, p.QEMU)
			}
		}
	}
}
