// Package check boots disk images in QEMU and waits for the operating
// system to print a marker on its serial console: the proof that an image
// eib built actually boots.
//
// Each boot runs on a throw-away qcow2 overlay of the raw image (the image
// itself is never written), with the serial console captured to a log
// file, a hard timeout, and the emulator killed and reaped on every path:
// marker seen, guest powered off, timeout, or the caller's context
// cancelled.
package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/proc"
)

// Status is the outcome of one boot.
type Status string

const (
	StatusOK      Status = "ok"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped" // cannot run on this host; never a pass
)

// DefaultMarker is the [check] boot_marker of config/defaults.ini (a test
// keeps the two equal), used by eib check-image without --marker.
const DefaultMarker = `EIB-DEMO-BOOT-OK|login: |Reached target .*(Multi-User System|Graphical Interface)`

// DefaultMemoryMiB is the guest memory when Boot.MemoryMiB is 0.
const DefaultMemoryMiB = 1024

// DefaultStallTimeout is the [check] kvm_stall_timeout of
// config/defaults.ini: how long a KVM boot may print nothing new before it
// is retried under TCG.
const DefaultStallTimeout = 60 * time.Second

// afterMarker is how long a guest may go on after the marker (to power
// off by itself, as the demo OS does, leaving its last lines in the log)
// before the emulator is killed.
const afterMarker = 3 * time.Second

// Boot describes one boot check.
type Boot struct {
	Image     string // raw disk image (see PrepareImage for compressed ones)
	Name      string // how messages and the Result name it (default: Image)
	Firmware  Firmware
	Marker    *regexp.Regexp // a console line matching it means "booted"
	Timeout   time.Duration  // hard limit from start to marker
	MemoryMiB int
	// CPUs is the guest's vCPUs (QEMU -smp; 0 = DefaultCPUs).
	CPUs    int
	LogPath string // serial console log (overwritten)
	WorkDir string // existing directory for the overlay and UEFI variables
	// Accel is the accelerator to boot with; the zero value means
	// ChooseAccel(AccelAuto) with Prober.
	Accel  AccelChoice
	Prober Prober
	// StallTimeout: a KVM boot with Accel.Fallback whose console shows no
	// new output for this long is stopped and retried once under TCG
	// (default DefaultStallTimeout).
	StallTimeout time.Duration
	// Logf, if set, receives the line that says what is booted how (the
	// caller reports the Result).
	Logf func(format string, args ...any)
}

// Result is the outcome of one boot check.
type Result struct {
	Image    string
	Firmware Firmware
	Status   Status
	Accel    string // "kvm" or "tcg": the boot that decided Status
	// AccelReason says why Accel was chosen; Fallback, when not empty,
	// why a KVM boot was abandoned for a retry under TCG.
	AccelReason string
	Fallback    string
	Elapsed     time.Duration // time from start to marker (ok only)
	Reason      string        // why it failed or was skipped
	LogPath     string
	Tail        []string // last console lines (failed only)
}

// Error is a failed boot: it names the image, the firmware and the reason,
// and carries the console log path and its last lines.
type Error struct{ Result Result }

func (e *Error) Error() string {
	r := e.Result
	var b strings.Builder
	fmt.Fprintf(&b, "boot check failed: %s with %s firmware", r.Image, r.Firmware)
	if r.Accel != "" {
		fmt.Fprintf(&b, " (%s)", r.Accel)
	}
	fmt.Fprintf(&b, ": %s", r.Reason)
	if r.LogPath != "" {
		fmt.Fprintf(&b, "\nconsole log: %s", r.LogPath)
	}
	if len(r.Tail) == 0 {
		b.WriteString("\n(the console printed nothing)")
		return b.String()
	}
	fmt.Fprintf(&b, "\nlast %d console lines (%s):", len(r.Tail), r.Firmware)
	for _, l := range r.Tail {
		b.WriteString("\n  | " + l)
	}
	return b.String()
}

func (bt Boot) logf(format string, args ...any) {
	if bt.Logf != nil {
		bt.Logf(format, args...)
	}
}

// Run boots bt.Image once with bt.Firmware. It returns a Result with
// StatusOK and a nil error when the marker was seen; StatusSkipped and a
// nil error (Reason says why) when the firmware's emulator is not
// available on this host; otherwise an error, an *Error for a boot that
// failed, with the Result also filled in.
func Run(ctx context.Context, bt Boot) (Result, error) {
	if bt.Name == "" {
		bt.Name = bt.Image
	}
	res := Result{Image: bt.Name, Firmware: bt.Firmware, LogPath: bt.LogPath, Status: StatusFailed}
	switch {
	case bt.Marker == nil:
		return res, errors.New("boot check: no marker regular expression")
	case bt.Timeout <= 0:
		return res, fmt.Errorf("boot check: timeout %s is not positive", bt.Timeout)
	case bt.LogPath == "" || bt.WorkDir == "":
		return res, errors.New("boot check: no console log path or work directory")
	}
	if bt.MemoryMiB <= 0 {
		bt.MemoryMiB = DefaultMemoryMiB
	}
	if bt.StallTimeout <= 0 {
		bt.StallTimeout = DefaultStallTimeout
	}
	if bt.Accel.Accel == "" {
		c, err := ChooseAccel(ctx, AccelAuto, bt.Firmware, bt.Prober)
		if err != nil {
			return res, fmt.Errorf("boot check %s with %s firmware: %w", bt.Name, bt.Firmware, err)
		}
		bt.Accel = c
	}
	res.AccelReason = bt.Accel.Reason
	res, err := bootOnce(ctx, bt, bt.Accel.Accel, res)
	if !errors.Is(err, errStalled) {
		return res, err
	}
	// A KVM boot that stopped making progress: once more under TCG.
	res.Fallback = res.Reason
	if n := len(res.Tail); n > 0 {
		res.Fallback += fmt.Sprintf("; last console line: %q", res.Tail[n-1])
	}
	bt.logf("%s with %s firmware: %s; booting again under TCG", bt.Name, bt.Firmware, res.Reason)
	res.Reason, res.Tail, res.Elapsed = "", nil, 0
	res.AccelReason = "retried under TCG after the KVM boot stalled"
	res.Status = StatusFailed
	return bootOnce(ctx, bt, TCG, res)
}

// RunAll boots each of bts with Run and returns their results and errors
// in the order of bts, up to and including the first boot that returned an
// error: what a loop over bts that stops at its first error returns.
//
// With parallel false the boots run one after the other. With parallel
// true they all start at once, each with its own emulator, overlay, UEFI
// variables and console log (their LogPath must differ; WorkDir may be
// shared: each boot makes its own directory in it). A boot that returns an
// error cancels the boots after it in the order of bts, whose results are
// then dropped with their console logs, so the outcome is the same as
// booting one after the other;
// the boots before it run to their end. Each boot keeps its own
// accelerator (bts[i].Accel), stall timer and single TCG retry (Run).
//
// report, when not nil, is called with each returned result, in the order
// of bts, as soon as that boot and those before it have ended (for a log
// line stamped when the boot ended, not when the last one did).
func RunAll(ctx context.Context, bts []Boot, parallel bool, report func(i int, res Result, err error)) ([]Result, []error) {
	return Runner(Run).All(ctx, bts, parallel, report)
}

// Runner runs one boot; Run is the real one (tests of a command give a
// fake that starts no emulator).
type Runner func(context.Context, Boot) (Result, error)

// All is RunAll with r running each boot.
func (r Runner) All(ctx context.Context, bts []Boot, parallel bool, report func(i int, res Result, err error)) ([]Result, []error) {
	results := make([]Result, len(bts))
	errs := make([]error, len(bts))
	if report == nil {
		report = func(int, Result, error) {}
	}
	if !parallel || len(bts) < 2 {
		for i, bt := range bts {
			results[i], errs[i] = r(ctx, bt)
			report(i, results[i], errs[i])
			if errs[i] != nil {
				return results[:i+1], errs[:i+1]
			}
		}
		return results, errs
	}
	cancels := make([]context.CancelFunc, len(bts))
	ctxs := make([]context.Context, len(bts))
	for i := range bts {
		ctxs[i], cancels[i] = context.WithCancel(ctx)
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	done := make([]chan struct{}, len(bts))
	for i := range bts {
		done[i] = make(chan struct{})
		go func(i int) {
			defer close(done[i])
			results[i], errs[i] = r(ctxs[i], bts[i])
			if errs[i] != nil {
				for _, c := range cancels[i+1:] {
					c()
				}
			}
		}(i)
	}
	for i := range bts {
		<-done[i]
		report(i, results[i], errs[i])
		if errs[i] != nil {
			for j, d := range done[i+1:] {
				<-d // cancelled: wait for its emulator to be reaped
				// Booted one after the other it would not have run:
				// no console log of it either.
				os.Remove(bts[i+1+j].LogPath)
			}
			return results[:i+1], errs[:i+1]
		}
	}
	return results, errs
}

// errStalled marks a KVM boot stopped for showing no console progress.
var errStalled = errors.New("KVM boot stalled")

// bootOnce is one run of the emulator under accel.
func bootOnce(ctx context.Context, bt Boot, accel Accel, res Result) (Result, error) {
	m, err := newMachine(bt.Firmware, bt.MemoryMiB, accel)
	if err == nil && bt.CPUs > 0 {
		m.setCPUs(bt.CPUs)
	}
	if errors.Is(err, errUnavailable) {
		res.Status, res.Reason = StatusSkipped, err.Error()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("boot check %s with %s firmware: %w", bt.Name, bt.Firmware, err)
	}
	res.Accel = m.accel

	work, err := os.MkdirTemp(bt.WorkDir, "boot-"+string(bt.Firmware)+"-")
	if err != nil {
		return res, fmt.Errorf("boot check: %w", err)
	}
	defer os.RemoveAll(work)
	overlay := filepath.Join(work, "overlay.qcow2")
	if err := createOverlay(ctx, bt.Image, overlay); err != nil {
		return res, fmt.Errorf("boot check %s: %w", bt.Name, err)
	}
	varsCopy := ""
	if m.vars != "" {
		varsCopy = filepath.Join(work, "efivars.fd")
		if err := copyFile(m.vars, varsCopy); err != nil {
			return res, fmt.Errorf("boot check: copying UEFI variables %s: %w", m.vars, err)
		}
	}
	log, err := os.Create(bt.LogPath)
	if err != nil {
		return res, fmt.Errorf("boot check: console log: %w", err)
	}
	defer log.Close()

	args := m.command(varsCopy, overlay, "qcow2")
	bt.logf("booting %s with %s firmware (%s, %s: %s; %s, %d MiB, timeout %s), console in %s",
		bt.Name, bt.Firmware, m.binary, m.accel, res.AccelReason, m.cpus(), bt.MemoryMiB, bt.Timeout, bt.LogPath)
	stall := time.Duration(0)
	if accel == KVM && bt.Accel.Fallback {
		stall = bt.StallTimeout
	}
	return runQEMU(ctx, bt, m.binary, args, log, res, stall)
}

// runQEMU starts the emulator with its serial console on a pipe, follows
// the console until the marker, the end of the emulator, the timeout or the
// context, and always leaves the emulator killed and reaped.
// With stall > 0, a console that shows no new output for that long ends
// the boot with errStalled.
func runQEMU(ctx context.Context, bt Boot, binary string, args []string, log *os.File, res Result, stall time.Duration) (Result, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("boot check: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// proc.Start: own process group (a terminal's ^C reaches eib, which
	// then kills the emulator itself) and Pdeathsig (it dies if eib dies
	// without cleaning up).
	start := time.Now()
	qemu, err := proc.Start(cmd)
	if err != nil {
		w.Close()
		return res, fmt.Errorf("boot check: starting %s: %w", binary, err)
	}
	w.Close()

	con := newConsole(bt.Marker)
	markerAt := make(chan time.Time, 1)
	progress := make(chan struct{}, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 32<<10)
		seen := false
		for {
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case progress <- struct{}{}:
				default:
				}
				log.Write(buf[:n])
				if con.write(buf[:n]) && !seen {
					seen = true
					markerAt <- time.Now()
				}
			}
			if err != nil {
				return
			}
		}
	}()

	timer := time.NewTimer(bt.Timeout)
	defer timer.Stop()
	// stalled fires when the console has shown nothing new for stall
	// (never when stall is 0).
	var stalled <-chan time.Time
	var stallTimer *time.Timer
	if stall > 0 {
		stallTimer = time.NewTimer(stall)
		defer stallTimer.Stop()
		stalled = stallTimer.C
	}
	alive := true
	var waitErr error
	var outcome error
wait:
	for {
		select {
		case <-progress:
			if stallTimer != nil {
				stallTimer.Reset(stall)
			}
			continue
		case t := <-markerAt:
			res.Status, res.Elapsed = StatusOK, t.Sub(start)
			select {
			case <-qemu.Done():
				waitErr, alive = qemu.Wait(), false
			case <-time.After(afterMarker):
			case <-ctx.Done():
			}
		case <-qemu.Done():
			waitErr, alive = qemu.Wait(), false
			<-readDone // the marker may be in the last bytes written
			select {
			case t := <-markerAt:
				res.Status, res.Elapsed = StatusOK, t.Sub(start)
			default:
				res.Reason = fmt.Sprintf("%s ended before the marker %q appeared (%s)",
					binary, bt.Marker.String(), exitText(waitErr, stderr.String()))
			}
		case <-stalled:
			res.Reason = fmt.Sprintf("the KVM boot showed no console progress for %s (after %.0f s)", stall, time.Since(start).Seconds())
			outcome = errStalled
		case <-timer.C:
			res.Reason = fmt.Sprintf("marker %q not seen within %s", bt.Marker.String(), bt.Timeout)
		case <-ctx.Done():
			res.Reason = "interrupted"
			outcome = fmt.Errorf("boot check %s with %s firmware interrupted: %w", bt.Name, bt.Firmware, ctx.Err())
		}
		break wait
	}
	if alive {
		// Kill the whole process group (no grace: the guest's disk is
		// a throw-away overlay) and reap it.
		qemu.Stop(0)
	}
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
		r.Close() // unblocks the reader if something else holds the pipe
		<-readDone
	}
	if res.Status == StatusOK {
		return res, nil
	}
	res.Status = StatusFailed
	res.Tail = con.lastLines()
	if outcome != nil {
		return res, outcome
	}
	return res, &Error{Result: res}
}

// exitText describes how the emulator ended, with its own error output.
func exitText(waitErr error, stderr string) string {
	s := "exit status 0: the guest powered off"
	if waitErr != nil {
		s = waitErr.Error()
	}
	if msg := strings.TrimSpace(stderr); msg != "" {
		s += ": " + msg
	}
	return s
}
