package check

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/eib-builder/eib/lib/proc"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	KVM Accel = "kvm" // hardware virtualization through /dev/kvm
	TCG Accel = "tcg" // QEMU's own code translator: slower, works everywhere
)

// AccelAuto is the [check] accel setting that uses KVM only where the
// probe proved that it works on this host.
const AccelAuto = "auto"

// AccelEnv is the environment variable that overrides [check] accel and
// check-image's --accel default, for CI hosts whose KVM is known bad
// (or known good).
const AccelEnv = "EIB_CHECK_ACCEL"

// AccelSetting returns the accelerator setting in force: $EIB_CHECK_ACCEL
// when set and not empty, else configured; from says which ("EIB_CHECK_ACCEL"
// or what the caller calls configured).
func AccelSetting(configured, configuredFrom string) (setting, from string) {
	if v := strings.TrimSpace(os.Getenv(AccelEnv)); v != "" {
		return v, AccelEnv
	}
	return configured, configuredFrom
}

// ParseAccelSetting checks a [check] accel / --accel / EIB_CHECK_ACCEL
// value: auto, kvm or tcg (surrounding blanks ignored, empty = auto).
func ParseAccelSetting(s string) (string, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return AccelAuto, nil
	case AccelAuto, string(KVM), string(TCG):
		return s, nil
	}
	return "", fmt.Errorf("accelerator %q: not one of auto, kvm, tcg", s)
}

// AccelChoice is the accelerator a boot starts with, and why.
type AccelChoice struct {
	Accel  Accel
	Reason string // one line: the setting, or the probe's verdict
	// Fallback allows one retry under TCG of a KVM boot whose console
	// makes no progress for Boot.StallTimeout (only for auto: a
	// configured kvm is kept).
	Fallback bool
}

// ProbeTimeout bounds the KVM probe. On a host with working KVM the probe
// guest reaches its marker in well under a second, under TCG here in
// 0.26 s; on these build machines, whose KVM is present but broken, it
// takes 8 s with a CPU model KVM accepts, and with -cpu host QEMU aborts
// at once.
const ProbeTimeout = 3 * time.Second

// probeMarker is what the probe guest prints once it ran 64-bit code,
// touched its memory and took a timer interrupt (see kvmprobe/guest.S).
const probeMarker = "LM64-OK"

// probeGuest is the probe's boot sector, assembled from kvmprobe/guest.S.
//
//go:embed kvmprobe/guest.bin
var probeGuest []byte

// Prober decides whether KVM runs guests on this host, by booting the
// probe guest under KVM with the CPU model the boot check uses, and caches
// the verdict for the running kernel (its boot id).
type Prober struct {
	// Binary is the emulator (default qemu-system-x86_64, found on PATH).
	Binary string
	// Cache is the verdict's file ("" = DefaultProbeCache(); "-" = none).
	Cache string
	// Timeout bounds the probe run (default ProbeTimeout).
	Timeout time.Duration
	// KVMDevice is the device to open first (default /dev/kvm).
	KVMDevice string
	// BootID is the file naming this boot of the host kernel (default
	// /proc/sys/kernel/random/boot_id): a new boot probes again.
	BootID string
}

// DefaultProbeCache is where the probe's verdict is kept between builds:
// /run/eib/kvm-probe.json for root (/run starts empty at each boot),
// the user's cache directory otherwise.
func DefaultProbeCache() string {
	if os.Geteuid() == 0 {
		return "/run/eib/kvm-probe.json"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "eib", "kvm-probe.json")
	}
	return ""
}

// probeVerdict is the cache file's content. Key: the host's boot id, the
// emulator (path, size, modification time), the CPU model and the probe
// guest; any change probes again.
type probeVerdict struct {
	Key     string  `json:"key"`
	Accel   Accel   `json:"accel"`
	Reason  string  `json:"reason"`
	Seconds float64 `json:"probe_seconds"`
	When    string  `json:"probed_at"`
}

// ChooseAccel turns a setting (auto, kvm, tcg) into the accelerator for
// booting with fw. aarch64 guests always run under TCG on this x86_64
// host (kvm is an error for them). kvm and tcg are taken as they are (kvm
// fails when /dev/kvm cannot be opened); auto runs p's probe (or reads its
// cached verdict) and allows a TCG retry of a stalled KVM boot.
func ChooseAccel(ctx context.Context, setting string, fw Firmware, p Prober) (AccelChoice, error) {
	setting, err := ParseAccelSetting(setting)
	if err != nil {
		return AccelChoice{}, err
	}
	if fw == AArch64UEFI {
		if setting == string(KVM) {
			return AccelChoice{}, errors.New("accelerator kvm: arm64 guests run under TCG on this host (set auto or tcg)")
		}
		return AccelChoice{Accel: TCG, Reason: "arm64 guest on an x86_64 host"}, nil
	}
	p = p.withDefaults()
	switch setting {
	case string(TCG):
		return AccelChoice{Accel: TCG, Reason: "set to tcg"}, nil
	case string(KVM):
		if err := openKVM(p.KVMDevice); err != nil {
			return AccelChoice{}, fmt.Errorf("accelerator kvm: %w (set auto or tcg)", err)
		}
		return AccelChoice{Accel: KVM, Reason: "set to kvm (not probed)"}, nil
	}
	v, cached, err := p.verdict(ctx)
	if err != nil {
		return AccelChoice{}, err
	}
	reason := v.Reason
	if cached {
		reason += fmt.Sprintf(" (probed at %s, cached in %s)", v.When, p.Cache)
	}
	return AccelChoice{Accel: v.Accel, Reason: reason, Fallback: v.Accel == KVM}, nil
}

func (p Prober) withDefaults() Prober {
	if p.Binary == "" {
		p.Binary = "qemu-system-x86_64"
	}
	if p.Cache == "" {
		p.Cache = DefaultProbeCache()
	}
	if p.Timeout <= 0 {
		p.Timeout = ProbeTimeout
	}
	if p.KVMDevice == "" {
		p.KVMDevice = "/dev/kvm"
	}
	if p.BootID == "" {
		p.BootID = "/proc/sys/kernel/random/boot_id"
	}
	return p
}

// openKVM checks that the KVM device exists and opens read-write. That is
// necessary for KVM, never sufficient: only a guest that runs proves it.
func openKVM(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// verdict returns the cached verdict for this host boot, or probes (one
// probe at a time per cache file: concurrent builds wait for the first).
func (p Prober) verdict(ctx context.Context) (v probeVerdict, cached bool, err error) {
	if err := openKVM(p.KVMDevice); err != nil {
		// Not worth caching: opening the device is instant.
		return probeVerdict{Accel: TCG, Reason: "no usable KVM: " + err.Error()}, false, nil
	}
	bin, err := exec.LookPath(p.Binary)
	if err != nil {
		return v, false, fmt.Errorf("%s not found (install the qemu-system-x86 package): %w", p.Binary, err)
	}
	key, err := p.key(bin)
	if err != nil {
		return v, false, err
	}
	if p.Cache == "-" || p.Cache == "" {
		v = p.probe(ctx, bin)
		return v, false, ctx.Err()
	}
	if err := os.MkdirAll(filepath.Dir(p.Cache), 0o755); err != nil {
		return v, false, fmt.Errorf("KVM probe cache: %w", err)
	}
	lock, err := os.OpenFile(p.Cache+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return v, false, fmt.Errorf("KVM probe cache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return v, false, fmt.Errorf("KVM probe cache: locking %s: %w", lock.Name(), err)
	}
	if data, err := os.ReadFile(p.Cache); err == nil {
		if json.Unmarshal(data, &v) == nil && v.Key == key && (v.Accel == KVM || v.Accel == TCG) {
			return v, true, nil
		}
	}
	v = p.probe(ctx, bin)
	if err := ctx.Err(); err != nil {
		return v, false, fmt.Errorf("KVM probe interrupted: %w", err)
	}
	v.Key = key
	data, _ := json.MarshalIndent(v, "", "  ")
	tmp := p.Cache + ".new"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return v, false, fmt.Errorf("KVM probe cache: %w", err)
	}
	if err := os.Rename(tmp, p.Cache); err != nil {
		return v, false, fmt.Errorf("KVM probe cache: %w", err)
	}
	return v, false, nil
}

// key identifies what a verdict depends on.
func (p Prober) key(bin string) (string, error) {
	boot, err := os.ReadFile(p.BootID)
	if err != nil {
		return "", fmt.Errorf("KVM probe: reading the host's boot id: %w", err)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("KVM probe: %w", err)
	}
	guest := sha256.Sum256(probeGuest)
	return fmt.Sprintf("boot=%s qemu=%s:%d:%d cpu=%s guest=%s",
		strings.TrimSpace(string(boot)), bin, st.Size(), st.ModTime().UnixNano(), kvmCPU,
		hex.EncodeToString(guest[:8])), nil
}

// probe boots the probe guest under KVM and returns the verdict: KVM when
// its marker arrived within the timeout, TCG with the reason otherwise.
func (p Prober) probe(ctx context.Context, bin string) probeVerdict {
	v := probeVerdict{Accel: TCG, When: time.Now().UTC().Format(time.RFC3339)}
	dir, err := os.MkdirTemp("", "eib-kvm-probe-")
	if err != nil {
		v.Reason = "KVM probe could not run: " + err.Error()
		return v
	}
	defer os.RemoveAll(dir)
	disk := filepath.Join(dir, "probe.img")
	// SeaBIOS wants a disk of more than one sector.
	img := make([]byte, 1<<20)
	copy(img, probeGuest)
	if err := os.WriteFile(disk, img, 0o644); err != nil {
		v.Reason = "KVM probe could not run: " + err.Error()
		return v
	}
	args := append(x86Args(KVM, 128),
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-drive", "file="+qemuPath(disk)+",format=raw,if=virtio,readonly=on")
	start := time.Now()
	out, stderr, seen, waitErr := runUntil(ctx, bin, args, probeMarker, p.Timeout)
	v.Seconds = time.Since(start).Seconds()
	switch {
	case seen:
		v.Accel = KVM
		v.Reason = fmt.Sprintf("KVM probe: a 64-bit guest ran and reached the serial port in %.2f s", v.Seconds)
	case waitErr == errProbeTimeout:
		v.Reason = fmt.Sprintf("KVM probe: the guest did not finish within %s (KVM present but broken or too slow); console: %q",
			p.Timeout, oneLine(out))
	default:
		v.Reason = fmt.Sprintf("KVM probe: %s failed at once (%s)", filepath.Base(bin), exitText(waitErr, firstLine(stderr)))
	}
	return v
}

var errProbeTimeout = errors.New("timed out")

// runUntil runs bin in its own process group until marker appears on its
// standard output, it exits, or timeout; it always kills and reaps it.
func runUntil(ctx context.Context, bin string, args []string, marker string, timeout time.Duration) (out, stderr string, seen bool, err error) {
	cmd := exec.Command(bin, args...)
	var so, se bytes.Buffer
	r, w, err := os.Pipe()
	if err != nil {
		return "", "", false, err
	}
	defer r.Close()
	cmd.Stdout, cmd.Stderr = w, &se
	p, err := proc.Start(cmd)
	if err != nil {
		w.Close()
		return "", "", false, err
	}
	w.Close()
	found := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			so.Write(buf[:n])
			if !seen && bytes.Contains(so.Bytes(), []byte(marker)) {
				seen = true
				close(found)
			}
			if err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	alive := true
	select {
	case <-found:
	case <-p.Done():
		err, alive = p.Wait(), false
	case <-timer.C:
		err = errProbeTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	if alive {
		p.Stop(0)
	}
	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
		r.Close()
		<-readDone
	}
	return so.String(), se.String(), seen, err
}

// firstLine is the first non-empty line of s (QEMU's own error; an
// assertion that follows it adds nothing for a reader).
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// oneLine joins the non-empty lines of s with "; ", keeping at most its
// first 300 bytes.
func oneLine(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	j := strings.Join(lines, "; ")
	if len(j) > 300 {
		j = j[:300] + "..."
	}
	return j
}
