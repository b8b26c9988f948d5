package stage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/check"
)

// checkStage boots every artifact record of the image stage that boots
// (artifact.ToBoot) in QEMU with the
// configured firmware(s), records each boot in b.Boots (for the manifest),
// and then runs the check hook group. A boot that fails fails the build,
// so nothing unbootable is published.
type checkStage struct {
	s checkSettings // resolved by the plan (readCheckSettings)
}

func (checkStage) Name() string { return "check" }

// checkSettings is the [check] section, typed.
type checkSettings struct {
	boot      bool
	firmware  string
	timeout   time.Duration
	marker    *regexp.Regexp
	memoryMiB int
	accel     string        // auto, kvm or tcg
	accelFrom string        // "[check] accel" or "EIB_CHECK_ACCEL"
	stall     time.Duration // [check] kvm_stall_timeout
	serial    string        // [check] serial_console: check.SerialAuto or check.SerialOff
	guest     guestSettings // [check] guest_*: the in-guest checks (check_guest.go)
}

func readCheckSettings(b *build.Build) (checkSettings, error) {
	var s checkSettings
	r := b.Config.Read()
	s.boot = r.Bool("check", "boot")
	s.firmware = r.Enum("check", "firmware")
	if s.timeout = r.Seconds("check", "boot_timeout"); s.timeout <= 0 {
		r.Reject("check", "boot_timeout", "%d: must be a positive number of seconds", s.timeout/time.Second)
	}
	s.marker = r.Regex("check", "boot_marker")
	mem := r.Int("check", "qemu_memory")
	if mem < 64 {
		r.Reject("check", "qemu_memory", "%d: must be at least 64 (MiB)", mem)
	}
	s.memoryMiB = int(mem)
	configured := r.Enum("check", "accel")
	s.serial = r.Enum("check", "serial_console")
	if s.stall = r.Seconds("check", "kvm_stall_timeout"); s.stall <= 0 {
		r.Reject("check", "kvm_stall_timeout", "%d: must be a positive number of seconds", s.stall/time.Second)
	}
	s.guest = readGuestSettings(r)
	if err := r.Err(); err != nil {
		return s, err
	}
	s.accel, s.accelFrom = check.AccelSetting(configured, "[check] accel")
	var err error
	if s.accel, err = check.ParseAccelSetting(s.accel); err != nil {
		return s, fmt.Errorf("%s: %w", s.accelFrom, err)
	}
	return s, nil
}

func (st checkStage) Run(ctx context.Context, b *build.Build) error {
	tmpdir, err := b.Dir("tmpdir")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(tmpdir, 0o755); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	s := st.s
	var images, logs []string
	toBoot := artifact.ToBoot(b.Artifacts)
	for _, r := range toBoot {
		images = append(images, r.BootPath)
	}
	logNotBooted(b)
	switch {
	case len(toBoot) == 0:
		checkPrintf(b, "no disk image to boot (the image stage did not run)")
	case !s.boot:
		checkPrintf(b, "boot check disabled ([check] boot = false)")
		if len(s.guest.commands) > 0 {
			checkPrintf(b, "[check] guest_commands not run: they need the boot check ([check] boot = false)")
		}
	default:
		var guest []guestResult
		logs, err = bootImages(ctx, b, s, tmpdir, toBoot, &guest)
		if len(s.guest.commands) > 0 {
			// Written on failure too: the error stage's hooks see it.
			if werr := writeGuestResults(b, tmpdir, guest); err == nil {
				err = werr
			}
		}
		if err != nil {
			return err
		}
	}
	// The hooks see what was booted and the console logs.
	if len(images) > 0 {
		b.SetEnv("EIB_CHECK_IMAGE", images[0])
	}
	b.SetEnv("EIB_CHECK_IMAGES", strings.Join(images, " "))
	b.SetEnv("EIB_CHECK_SERIAL_LOGS", strings.Join(logs, " "))
	if len(logs) > 0 {
		b.SetEnv("EIB_CHECK_SERIAL_LOG", logs[0])
	}
	// Files the check hooks write into outdir are recorded.
	return runHooks(ctx, b, "check", "")
}

// logNotBooted logs each artifact record (of a registered format) that
// the check does not boot, with its format's reason.
func logNotBooted(b *build.Build) {
	for _, r := range b.Artifacts {
		if _, ok := artifact.Lookup(r.Format); !ok {
			continue
		}
		if r.Boot == artifact.MediumNone || r.BootPath == "" {
			checkPrintf(b, "%s (artifact %s): not booted: %s", r.File, r.Format, r.BootReason)
		}
	}
}

// bootImages boots each record to boot (artifact.ToBoot: BootPath, with
// its arch, platform and firmwares) with each firmware and returns the
// console logs written. With [check] guest_commands, each image is then
// booted once more, with the first firmware that booted it, to run them
// (runGuestCommands; their results appended to *guest). It stops at the
// first failed boot or command.
// bootCPUs is the vCPUs a boot's guest had: none when it was skipped.
func bootCPUs(bt check.Boot, res check.Result) int {
	if res.Status == check.StatusSkipped {
		return 0
	}
	return bt.CPUs
}

func bootImages(ctx context.Context, b *build.Build, s checkSettings, tmpdir string, toBoot []artifact.Record, guest *[]guestResult) ([]string, error) {
	var logs []string
	for _, img := range toBoot {
		if img.Boot != artifact.MediumDisk {
			reason := fmt.Sprintf("the check boots disks only, and %s (artifact %s) boots as %s", img.File, img.Format, img.Boot)
			checkPrintf(b, "%s SKIPPED: %s", img.File, reason)
			b.Boots = append(b.Boots, build.BootResult{Image: img.File, Firmware: string(img.Boot),
				Result: string(check.StatusSkipped), Reason: reason})
			continue
		}
		name := filepath.Base(img.BootPath)
		fws, err := check.FirmwaresFor(img.Arch, s.firmware, img.Firmwares)
		if err != nil {
			return logs, fmt.Errorf("[check] firmware: image %s: %w", img.BootPath, err)
		}
		if len(fws) == 0 {
			reason := fmt.Sprintf("platform %s boots only with its board's own firmware, which QEMU does not have", img.Platform)
			checkPrintf(b, "%s SKIPPED: %s", name, reason)
			b.Boots = append(b.Boots, build.BootResult{Image: name, Firmware: "board",
				Result: string(check.StatusSkipped), Reason: reason})
			continue
		}
		boot, done, err := serialConsoleCopy(ctx, b, s, tmpdir, img.BootPath)
		if err != nil {
			return logs, err
		}
		defer done() // the copy lives until the last image is booted (it is sparse)
		// The accelerators are chosen one firmware after the other (a KVM
		// probe runs at most once), then the boots run: at the same time
		// when the host has an idle CPU for each (check.AtOnce; RunAll
		// keeps the results, their order and the stop at the first
		// failure of a one-after-the-other run).
		var boots []check.Boot
		var chooseErr error
		for _, fw := range fws {
			choice, err := check.ChooseAccel(ctx, s.accel, fw, check.Prober{})
			if err != nil {
				chooseErr = fmt.Errorf("%s = %s: %w", s.accelFrom, s.accel, err)
				break
			}
			checkPrintf(b, "accelerator for %s firmware: %s (%s = %s: %s)", fw, choice.Accel, s.accelFrom, s.accel, choice.Reason)
			bootLog := "boot-" + string(fw) + ".log"
			if img.Disk != "" {
				bootLog = "boot-" + img.Disk + "-" + string(fw) + ".log"
			}
			boots = append(boots, check.Boot{
				Image:     boot,
				Name:      img.BootPath,
				Firmware:  fw,
				Marker:    s.marker,
				Timeout:   s.timeout,
				MemoryMiB: s.memoryMiB,
				LogPath:   filepath.Join(tmpdir, bootLog),
				WorkDir:   tmpdir,
				Logf:      checkLogf(b),
				Accel:     choice,

				StallTimeout: s.stall,
			})
		}
		parallel, cpus, why := check.AtOnce(ctx, len(boots))
		for i := range boots {
			boots[i].CPUs = cpus
		}
		if len(boots) > 1 {
			checkPrintf(b, "%s: booting with %d firmwares %s", name, len(boots), why)
		}
		// Each boot's outcome is logged when it is known, in the
		// firmwares' order; the loop below records them.
		report := func(i int, res check.Result, err error) {
			fw := boots[i].Firmware
			switch {
			case err != nil: // the stage's error says it
			case res.Status == check.StatusSkipped:
				checkPrintf(b, "%s with %s firmware SKIPPED: %s", name, fw, res.Reason)
			default:
				if res.Fallback != "" {
					checkPrintf(b, "%s with %s firmware: KVM boot abandoned (%s), retried under TCG", name, fw, res.Fallback)
				}
				checkPrintf(b, "%s booted with %s firmware in %.1f s (%s)", name, fw, res.Elapsed.Seconds(), res.Accel)
			}
		}
		results, errs := check.RunAll(ctx, boots, parallel, report)
		var booted check.Firmware // the first firmware that booted it, for the guest commands
		var bootedAccel check.Accel
		for i, res := range results {
			fw, logPath := boots[i].Firmware, boots[i].LogPath
			b.Boots = append(b.Boots, build.BootResult{
				Image:      name,
				Firmware:   string(fw),
				Result:     string(res.Status),
				Seconds:    res.Elapsed.Seconds(),
				Reason:     res.Reason,
				ConsoleLog: logPath,

				Accel:       res.Accel,
				AccelReason: res.AccelReason,
				Fallback:    res.Fallback,
				CPUs:        bootCPUs(boots[i], res),
				AtOnce:      parallel,
			})
			if errs[i] != nil {
				return logs, errs[i]
			}
			if res.Status == check.StatusSkipped {
				continue
			}
			logs = append(logs, logPath)
			b.SetEnv("EIB_CHECK_SERIAL_LOG_"+strings.ToUpper(strings.ReplaceAll(string(fw), "-", "_")), logPath)
			if booted == "" {
				booted, bootedAccel = fw, check.Accel(res.Accel)
			}
		}
		if chooseErr != nil {
			return logs, chooseErr
		}
		if len(s.guest.commands) == 0 {
			continue
		}
		if booted == "" {
			checkPrintf(b, "%s: [check] guest_commands not run: no firmware booted it (all skipped)", name)
			continue
		}
		guestLog := "guest-" + string(booted) + ".log"
		if img.Disk != "" {
			guestLog = "guest-" + img.Disk + "-" + string(booted) + ".log"
		}
		if err := runGuestCommands(ctx, b, s, tmpdir, name, boot, booted, bootedAccel,
			filepath.Join(tmpdir, guestLog), guest); err != nil {
			return logs, err
		}
	}
	return logs, nil
}

// serialConsoleCopy returns the file to boot for the image at path: with
// [check] serial_console = auto, a throw-away copy in tmpdir whose kernel
// command lines have console=ttyS0 (check.WithSerialConsole; the log says
// what it changed), or path itself. done removes the copy.
func serialConsoleCopy(ctx context.Context, b *build.Build, s checkSettings, tmpdir, path string) (boot string, done func(), err error) {
	if s.serial == check.SerialOff {
		checkPrintf(b, "check boot: %s is booted as shipped ([check] serial_console = off)", filepath.Base(path))
		return path, func() {}, nil
	}
	cc, err := check.WithSerialConsole(ctx, path, tmpdir)
	if err != nil {
		return "", nil, fmt.Errorf("[check] serial_console = %s: %w (set it to off to boot the image as shipped)", s.serial, err)
	}
	checkPrintf(b, "%s: %s", filepath.Base(path), cc.Summary())
	return cc.Image, func() { cc.Remove() }, nil
}

func checkPrintf(b *build.Build, format string, args ...any) {
	if b.Log != nil {
		b.Log.Printf(format, args...)
	}
}

func checkLogf(b *build.Build) func(string, ...any) {
	if b.Log == nil {
		return nil
	}
	return b.Log.Printf
}
