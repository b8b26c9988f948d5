package check

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// stubQEMU writes an executable shell script named name into dir that
// appends its arguments to dir/calls and then runs body.
func stubQEMU(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := "#!/bin/sh\necho \"$*\" >> " + filepath.Join(dir, "calls") + "\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func calls(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "calls"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// testProber is a Prober whose KVM device, boot id and cache are files of
// dir, so the decision depends on the stub emulator alone.
func testProber(t *testing.T, dir, binary string) Prober {
	t.Helper()
	dev := filepath.Join(dir, "kvm")
	boot := filepath.Join(dir, "boot_id")
	for _, f := range []string{dev, boot} {
		if err := os.WriteFile(f, []byte("boot-1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Prober{Binary: binary, Cache: filepath.Join(dir, "cache", "kvm-probe.json"),
		Timeout: 2 * time.Second, KVMDevice: dev, BootID: boot}
}

func TestProbeDecision(t *testing.T) {
	for _, row := range []struct {
		name   string
		body   string
		want   Accel
		reason string
	}{
		{"kvm works", `printf 'EIB-KVM-PROBE RPMI LM64-OK\n'; exit 33`, KVM, "a 64-bit guest ran"},
		{"qemu hangs under kvm", `printf 'EIB-KVM-PROBE RP'; exec sleep 30.4242`, TCG, "did not finish within 2s"},
		{"qemu fails at once", `echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; echo 'kvm.c:3183: Assertion failed.' >&2; exit 134`, TCG, "exit status 134: qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69)"},
		{"64-bit marker never printed", `printf 'EIB-KVM-PROBE RP'; exit 33`, TCG, "failed at once"},
	} {
		t.Run(row.name, func(t *testing.T) {
			dir := t.TempDir()
			p := testProber(t, dir, stubQEMU(t, dir, "qemu-system-x86_64", row.body))
			began := time.Now()
			c, err := ChooseAccel(context.Background(), AccelAuto, BIOS, p)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(began)
			if c.Accel != row.want || !strings.Contains(c.Reason, row.reason) {
				t.Fatalf("choice %+v: want %s with a reason containing %q", c, row.want, row.reason)
			}
			if c.Fallback != (row.want == KVM) {
				t.Errorf("Fallback = %v: auto allows a TCG retry exactly when it chose KVM", c.Fallback)
			}
			if took > 6*time.Second {
				t.Errorf("the probe took %s: it must be bounded by its 2 s timeout", took)
			}
			args := calls(t, dir)
			if len(args) != 1 || !strings.Contains(args[0], "accel=kvm") || !strings.Contains(args[0], "-cpu "+kvmCPU) ||
				!strings.Contains(args[0], "isa-debug-exit") {
				t.Fatalf("emulator calls %q: want one probe under KVM with the boot check's CPU model", args)
			}
			// The stub's sleep (a duration no other test uses) was in the
			// emulator's process group: gone.
			if out, _ := exec.Command("pgrep", "-f", "^sleep 30.4242$").Output(); len(bytes.TrimSpace(out)) != 0 {
				t.Errorf("probe left processes behind: %s", out)
			}
		})
	}
}

func TestProbeVerdictIsCachedPerHostBoot(t *testing.T) {
	dir := t.TempDir()
	p := testProber(t, dir, stubQEMU(t, dir, "qemu-system-x86_64", `printf 'LM64-OK\n'; exit 33`))
	for i := 0; i < 2; i++ {
		c, err := ChooseAccel(context.Background(), AccelAuto, UEFI, p)
		if err != nil || c.Accel != KVM {
			t.Fatalf("run %d: %+v, %v", i, c, err)
		}
		if i == 1 && !strings.Contains(c.Reason, "cached in "+p.Cache) {
			t.Errorf("second choice %q does not say it came from the cache", c.Reason)
		}
	}
	if n := len(calls(t, dir)); n != 1 {
		t.Fatalf("the emulator ran %d times for two choices in one host boot, want 1", n)
	}
	// A new boot of the host probes again.
	if err := os.WriteFile(p.BootID, []byte("boot-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ChooseAccel(context.Background(), AccelAuto, UEFI, p); err != nil {
		t.Fatal(err)
	}
	if n := len(calls(t, dir)); n != 2 {
		t.Fatalf("after a new boot id the emulator ran %d times in all, want 2", n)
	}
}

func TestSettingsOtherThanAutoDoNotProbe(t *testing.T) {
	dir := t.TempDir()
	p := testProber(t, dir, stubQEMU(t, dir, "qemu-system-x86_64", `exit 1`))
	for _, row := range []struct {
		setting string
		fw      Firmware
		want    Accel
		errText string
	}{
		{"tcg", BIOS, TCG, ""},
		{" kvm ", UEFI, KVM, ""},
		{"auto", AArch64UEFI, TCG, ""},
		{"kvm", AArch64UEFI, "", "arm64 guests run under TCG"},
		{"hvf", BIOS, "", `"hvf": not one of auto, kvm, tcg`},
	} {
		c, err := ChooseAccel(context.Background(), row.setting, row.fw, p)
		if row.errText != "" {
			if err == nil || !strings.Contains(err.Error(), row.errText) {
				t.Errorf("%s/%s: error %v, want one containing %q", row.setting, row.fw, err, row.errText)
			}
			continue
		}
		if err != nil || c.Accel != row.want || c.Fallback {
			t.Errorf("%s/%s: %+v, %v: want %s without a fallback", row.setting, row.fw, c, err, row.want)
		}
	}
	if n := len(calls(t, dir)); n != 0 {
		t.Fatalf("the emulator ran %d times: only auto probes", n)
	}
	// kvm with no usable device is an error, not a silent TCG.
	p.KVMDevice = filepath.Join(dir, "missing")
	if _, err := ChooseAccel(context.Background(), "kvm", BIOS, p); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("kvm without a device: %v", err)
	}
	// auto with no usable device: TCG without a probe.
	c, err := ChooseAccel(context.Background(), "auto", BIOS, p)
	if err != nil || c.Accel != TCG || !strings.Contains(c.Reason, "no usable KVM") {
		t.Fatalf("auto without a device: %+v, %v", c, err)
	}
}

func TestAccelSettingEnvironmentOverride(t *testing.T) {
	t.Setenv(AccelEnv, "")
	if s, from := AccelSetting("auto", "[check] accel"); s != "auto" || from != "[check] accel" {
		t.Errorf("empty %s: %s from %s", AccelEnv, s, from)
	}
	t.Setenv(AccelEnv, " tcg ")
	if s, from := AccelSetting("kvm", "[check] accel"); s != "tcg" || from != AccelEnv {
		t.Errorf("%s=tcg: %s from %s", AccelEnv, s, from)
	}
}

// The probe guest itself, on the real emulator under TCG (works on every
// host): it must get to its 64-bit marker and exit through isa-debug-exit.
func TestProbeGuestReachesLongModeUnderTCG(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 is needed (make deps installs qemu-system-x86): %v", err)
	}
	dir := t.TempDir()
	disk := filepath.Join(dir, "probe.img")
	img := make([]byte, 1<<20)
	copy(img, probeGuest)
	if err := os.WriteFile(disk, img, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(x86Args(TCG, 128), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-drive", "file="+disk+",format=raw,if=virtio,readonly=on")
	out, stderr, seen, err := runUntil(context.Background(), bin, args, probeMarker, 20*time.Second)
	if !seen {
		t.Fatalf("no %q from the probe guest under TCG (%v): console %q, stderr %q", probeMarker, err, out, stderr)
	}
	if want := regexp.MustCompile(`^EIB-KVM-PROBE RPMI LM64-OK`); !want.MatchString(out) {
		t.Fatalf("console %q: want the banner, the four stages (real, protected, memory, interrupt) and the marker", out)
	}
}

// guest.bin is what guest.S assembles to: the committed bytes have a
// readable source.
func TestProbeGuestMatchesSource(t *testing.T) {
	for _, tool := range []string{"as", "objcopy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check kvmprobe/guest.bin against its source (make deps installs binutils): %v", tool, err)
		}
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "guest.o"), filepath.Join(dir, "guest.bin")
	for _, c := range [][]string{{"as", "--64", "-o", obj, "kvmprobe/guest.S"}, {"objcopy", "-O", "binary", obj, bin}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	got, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, probeGuest) || len(got) != 512 || got[510] != 0x55 || got[511] != 0xaa {
		t.Fatalf("kvmprobe/guest.S assembles to %d bytes that differ from the embedded guest.bin: rebuild it (see guest.S)", len(got))
	}
}

// A KVM boot whose console stops making progress is retried once under
// TCG when the choice allows it, and fails as a plain timeout when KVM was
// configured.
func TestStalledKVMBootIsRetriedUnderTCG(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("qemu-img is needed (make deps installs qemu-utils): %v", err)
	}
	dir := t.TempDir()
	stubQEMU(t, dir, "qemu-system-x86_64", `case "$*" in
*accel=kvm*) printf 'Booting a command list\n'; exec sleep 30 ;;
*) printf 'Linux version 6.1\n`+testMarker+`\n' ;;
esac`)
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	bt := boot(dir, img, BIOS, 20*time.Second)
	bt.StallTimeout = time.Second
	bt.Accel = AccelChoice{Accel: KVM, Reason: "probe said so", Fallback: true}
	res, err := Run(context.Background(), bt)
	if err != nil || res.Status != StatusOK {
		t.Fatalf("retried boot: %+v, %v", res, err)
	}
	if res.Accel != string(TCG) || !strings.Contains(res.Fallback, "no console progress for 1s") ||
		!strings.Contains(res.Fallback, "Booting a command list") {
		t.Fatalf("result %+v: want the TCG boot, with the stalled KVM boot and its last line recorded", res)
	}
	if c := calls(t, dir); len(c) != 2 || !strings.Contains(c[0], "accel=kvm") || !strings.Contains(c[1], "accel=tcg") {
		t.Fatalf("emulator calls %q: want KVM, then TCG", c)
	}

	// Configured kvm: no retry; the boot fails at its own timeout.
	os.Remove(filepath.Join(dir, "calls"))
	bt.Timeout = 3 * time.Second
	bt.Accel = AccelChoice{Accel: KVM, Reason: "set to kvm"}
	res, err = Run(context.Background(), bt)
	if err == nil || res.Status != StatusFailed || res.Fallback != "" || !strings.Contains(res.Reason, "not seen within 3s") {
		t.Fatalf("configured kvm: %+v, %v: want a plain timeout", res, err)
	}
	if c := calls(t, dir); len(c) != 1 {
		t.Fatalf("configured kvm ran the emulator %d times, want 1", len(c))
	}
}
