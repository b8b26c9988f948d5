package check

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/eib-builder/eib/lib/platform"
)

// Firmware is what a boot check boots an image with.
type Firmware string

// The names are those of the platform table's QEMU firmwares.
const (
	BIOS        Firmware = "bios"         // SeaBIOS, x86_64
	UEFI        Firmware = "uefi"         // OVMF, x86_64
	AArch64UEFI Firmware = "aarch64-uefi" // AAVMF, aarch64
)

// Firmwares turns the [check] firmware setting (bios, uefi or both) into
// the list of boots to run for an image of the given Debian architecture
// ("" = amd64), from the QEMU firmwares of the arch's entry of the platform
// table: arm64 has only UEFI ("both" and "uefi" mean AArch64UEFI there),
// i386 only BIOS.
func Firmwares(arch, setting string) ([]Firmware, error) {
	setting = strings.TrimSpace(setting)
	if arch == "" {
		arch = "amd64"
	}
	pl, ok := platform.ForArch(arch)
	if !ok {
		return nil, fmt.Errorf("architecture %q: no QEMU boot check for it (%s are supported)", arch, strings.Join(platform.Arches(), ", "))
	}
	switch setting {
	case "both":
		var out []Firmware
		for _, q := range pl.QEMU {
			out = append(out, Firmware(q.Name))
		}
		return out, nil
	case platform.BIOS, platform.UEFI:
		for _, q := range pl.QEMU {
			if q.Interface == setting {
				return []Firmware{Firmware(q.Name)}, nil
			}
		}
		return nil, fmt.Errorf("firmware %q: %s", setting, pl.QEMUNote)
	}
	return nil, fmt.Errorf("firmware %q: not one of bios, uefi, both", setting)
}

// FirmwaresFor is Firmwares for an image that boots only with the firmware
// interfaces in bootable ("bios", "uefi": what its layout installed, see
// disk.Layout.Firmware): "both" means every one of those that QEMU has for
// arch (none, for an image only a board's own firmware boots: the caller
// reports the boot check as skipped), and an explicit firmware the image
// cannot boot with is an error.
func FirmwaresFor(arch, setting string, bootable []string) ([]Firmware, error) {
	all, err := Firmwares(arch, setting)
	if err != nil {
		return nil, err
	}
	if arch == "" {
		arch = "amd64"
	}
	pl, _ := platform.ForArch(arch) // Firmwares found it
	can := func(fw Firmware) bool {
		for _, q := range pl.QEMU {
			if Firmware(q.Name) == fw {
				return slices.Contains(bootable, q.Interface)
			}
		}
		return false
	}
	var out []Firmware
	for _, fw := range all {
		if can(fw) {
			out = append(out, fw)
		} else if strings.TrimSpace(setting) != "both" {
			if len(bootable) == 0 {
				return nil, fmt.Errorf("firmware %q: the image boots only with its board's own firmware, which QEMU does not have (set [check] boot = false)", setting)
			}
			return nil, fmt.Errorf("firmware %q: the image boots only with %s", setting, strings.Join(bootable, " and "))
		}
	}
	return out, nil
}

// flashPair is a UEFI firmware: read-only code and a template of the
// variable store (copied for each boot, since the firmware writes to it).
type flashPair struct{ code, vars string }

// Firmware images, in order of preference, as Debian (ovmf,
// qemu-efi-aarch64) and Fedora (edk2-ovmf, edk2-aarch64) install them.
var (
	ovmfPairs = []flashPair{
		{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
		{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
		{"/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"},
	}
	aavmfPairs = []flashPair{
		{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
		{"/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw"},
	}
)

func findFlash(pairs []flashPair, pkg string) (flashPair, error) {
	var tried []string
	for _, p := range pairs {
		if fileExists(p.code) && fileExists(p.vars) {
			return p, nil
		}
		tried = append(tried, p.code)
	}
	return flashPair{}, fmt.Errorf("no UEFI firmware found (tried %s; install the %s package)",
		strings.Join(tried, ", "), pkg)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// errUnavailable marks a boot that cannot run on this host (missing
// emulator or firmware for a foreign architecture): it is reported as
// skipped, never as passed.
var errUnavailable = errors.New("unavailable on this host")

// machine is the emulator command line of one boot, minus the disk.
type machine struct {
	binary string
	args   []string
	accel  string
	vars   string // template of the UEFI variable store to copy, "" for BIOS
}

// kvmCPU is the guest CPU model under KVM: the host's own, as the
// probe checks it (some hosts reject it at once, some run it).
const kvmCPU = "host"

// DefaultCPUs is the guest's vCPUs (QEMU -smp) unless Boot.CPUs says
// otherwise.
const DefaultCPUs = 2

// smp is the index of the value of commonArgs' -smp in m.args.
func (m *machine) smp() int {
	for i, a := range m.args {
		if a == "-smp" && i+1 < len(m.args) {
			return i + 1
		}
	}
	panic("check: a machine without -smp") // commonArgs always has it
}

// setCPUs sets the guest's vCPUs (QEMU -smp).
func (m *machine) setCPUs(n int) { m.args[m.smp()] = strconv.Itoa(n) }

// cpus says the guest's vCPUs, for a log line: "2 vCPUs".
func (m *machine) cpus() string {
	if n := m.args[m.smp()]; n != "1" {
		return n + " vCPUs"
	}
	return "1 vCPU"
}

// commonArgs are the emulator options every boot shares: no display, the
// serial console on standard output, no reboot (a guest that reboots
// ends the boot), and an entropy source for the guest.
func commonArgs(memoryMiB int) []string {
	return []string{
		"-smp", strconv.Itoa(DefaultCPUs), "-m", strconv.Itoa(memoryMiB),
		"-nodefaults", "-display", "none", "-monitor", "none",
		"-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
		"-no-reboot",
		"-device", "virtio-rng-pci",
	}
}

// x86Args is the q35 PC of the boot check (and of the KVM probe) under
// accel, with memoryMiB of guest memory.
func x86Args(accel Accel, memoryMiB int) []string {
	cpu := "max"
	if accel == KVM {
		cpu = kvmCPU
	}
	return append([]string{"-machine", "q35,accel=" + string(accel), "-cpu", cpu}, commonArgs(memoryMiB)...)
}

// newMachine describes the QEMU machine for a firmware under accel (the
// host is x86_64: aarch64 guests always run under TCG).
func newMachine(fw Firmware, memoryMiB int, accel Accel) (machine, error) {
	switch fw {
	case BIOS, UEFI:
		m := machine{binary: "qemu-system-x86_64", accel: string(accel)}
		if _, err := exec.LookPath(m.binary); err != nil {
			return machine{}, fmt.Errorf("%s not found (install the qemu-system-x86 package): %w", m.binary, err)
		}
		m.args = x86Args(accel, memoryMiB)
		if fw == UEFI {
			fl, err := findFlash(ovmfPairs, "ovmf")
			if err != nil {
				return machine{}, err
			}
			m.vars = fl.vars
			m.args = append(m.args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuPath(fl.code))
		}
		return m, nil
	case AArch64UEFI:
		m := machine{binary: "qemu-system-aarch64", accel: string(TCG)}
		if _, err := exec.LookPath(m.binary); err != nil {
			return machine{}, fmt.Errorf("%s not found (install the qemu-system-arm package): %w", m.binary, errUnavailable)
		}
		fl, err := findFlash(aavmfPairs, "qemu-efi-aarch64")
		if err != nil {
			return machine{}, fmt.Errorf("%v: %w", err, errUnavailable)
		}
		m.vars = fl.vars
		m.args = append([]string{"-machine", "virt,accel=tcg", "-cpu", "max"}, commonArgs(memoryMiB)...)
		m.args = append(m.args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuPath(fl.code))
		return m, nil
	}
	return machine{}, fmt.Errorf("unknown firmware %q", fw)
}

// command returns the full argument list: the machine, the copy of the
// UEFI variables (if any) and the disk overlay.
func (m machine) command(varsCopy, disk, format string) []string {
	args := append([]string{}, m.args...)
	if varsCopy != "" {
		args = append(args, "-drive", "if=pflash,format=raw,unit=1,file="+qemuPath(varsCopy))
	}
	return append(args, "-drive", "file="+qemuPath(disk)+",format="+format+",if=virtio")
}

// qemuPath escapes a path for a QEMU option list (a comma is doubled).
func qemuPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }
