package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/check"
)

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:      "check-image",
		Usage:     "boot a disk image in QEMU and wait for its serial console to print the marker",
		ArgsUsage: "IMAGE (a raw disk with an MBR or GPT partition table, gzip, xz or zstd of one, or qcow2; told by content)",
		Description: "The same boot check as the check stage of a build, for images built elsewhere.\n" +
			"The image is never modified (the boot runs on a throw-away overlay; with\n" +
			"--serial-console auto, the default, of a sparse copy whose kernel command\n" +
			"lines get console=ttyS0,115200 where they have none). Exit\n" +
			"status: 0 every boot saw the marker (or was skipped, as printed), 1 usage\n" +
			"error or an IMAGE that is not a disk image (refused before booting), 2 a\n" +
			"boot failed. The temporary directory (under $TMPDIR) is always removed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "firmware", Value: "both", Usage: "bios, uefi or both"},
			&cli.StringFlag{Name: "marker", Value: check.DefaultMarker, Usage: "regular expression the serial console must print"},
			&cli.IntFlag{Name: "timeout", Value: 300, Usage: "seconds to wait for the marker, per boot"},
			&cli.IntFlag{Name: "memory", Value: check.DefaultMemoryMiB, Usage: "guest memory in MiB"},
			&cli.StringFlag{Name: "arch", Value: "amd64", Usage: "architecture of the image: " + strings.Join(SupportedArches, ", ")},
			&cli.StringFlag{Name: "accel", Value: check.AccelAuto, Sources: cli.EnvVars(check.AccelEnv),
				Usage: "QEMU accelerator: auto (KVM only where a probe proves it works on this host), kvm or tcg"},
			&cli.StringFlag{Name: "serial-console", Value: check.SerialAuto,
				Usage: "auto: boot a throw-away copy whose kernel command lines get " + check.SerialConsoleArg + " where they have no console=ttyS0 (for an OS booted with quiet arguments); off: boot the image as it is"},
			&cli.StringFlag{Name: "log-dir", Usage: "directory for the console logs boot-<firmware>.log (default: a new temporary directory)"},
		},
		Action: checkImage,
	})
}

// bootImage runs one boot; tests replace it to see what would be booted
// without starting QEMU.
var bootImage check.Runner = check.Run

// bootsAtOnce decides whether the boots run at the same time; tests
// replace it to see both ways.
var bootsAtOnce = check.AtOnce

// checkImage is the check-image command. Exit status (main.go's rules):
// exitUsage (1) for a usage error or an IMAGE that is not a disk image,
// refused before anything is started or written; exitBuildError (2) when a
// boot fails. The temporary directory it makes (under $TMPDIR) is removed
// on every path, a SIGINT or SIGTERM included.
func checkImage(ctx context.Context, cmd *cli.Command) error {
	usage := func(format string, args ...any) error {
		return cli.Exit("eib check-image: "+fmt.Sprintf(format, args...), exitUsage)
	}
	failed := func(err error) error {
		if ctx.Err() != nil && context.Cause(ctx) != ctx.Err() {
			// A signal: say which ("interrupt signal received").
			return cli.Exit("eib check-image: "+context.Cause(ctx).Error()+": "+err.Error(), exitBuildError)
		}
		return cli.Exit("eib check-image: "+err.Error(), exitBuildError)
	}
	// The signal ends the boot or the expansion through ctx; the deferred
	// cleanup then runs before the command returns.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd.NArg() != 1 {
		return usage("give exactly one IMAGE, got %d arguments", cmd.NArg())
	}
	image := cmd.Args().First()
	fws, err := check.Firmwares(cmd.String("arch"), cmd.String("firmware"))
	if err != nil {
		return usage("%v", err)
	}
	marker, err := regexp.Compile(cmd.String("marker"))
	if err != nil {
		return usage("--marker %s: %v", cmd.String("marker"), err)
	}
	accel, err := check.ParseAccelSetting(cmd.String("accel"))
	if err != nil {
		return usage("--accel: %v", err)
	}
	serial := cmd.String("serial-console")
	if serial != check.SerialAuto && serial != check.SerialOff {
		return usage("--serial-console %s: must be %s or %s", serial, check.SerialAuto, check.SerialOff)
	}
	if cmd.Int("timeout") <= 0 || cmd.Int("memory") < 64 {
		return usage("--timeout must be positive and --memory at least 64 (MiB)")
	}
	// What IMAGE holds, by content: anything else is refused here, before
	// a directory is made or QEMU started.
	format, err := check.DetectImage(ctx, image)
	var inputErr *check.InputError
	if errors.As(err, &inputErr) {
		return usage("%v", err)
	}
	if err != nil {
		return failed(err)
	}

	logDir := cmd.String("log-dir")
	if logDir == "" {
		// os.MkdirTemp("") is under $TMPDIR (default /tmp).
		if logDir, err = os.MkdirTemp("", "eib-check-"); err != nil {
			return failed(err)
		}
		defer os.RemoveAll(logDir)
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return usage("--log-dir: %v", err)
	}
	keptLogs := cmd.String("log-dir") != ""
	out := cmd.Root().Writer
	// Two boots may log at the same time: one line at a time.
	var outMu sync.Mutex
	logf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	if format.Compressed() {
		fmt.Fprintf(out, "expanding %s (%s) into %s\n", image, format, logDir)
	}
	raw, remove, err := check.PrepareImage(ctx, image, logDir)
	if errors.As(err, &inputErr) {
		return usage("%v", err)
	}
	if err != nil {
		return failed(err)
	}
	defer remove()
	// Boot with what the image's partition table says it boots with:
	// "both" means those, an explicit firmware it lacks is refused. (A
	// qcow2 image is not read here: it boots with what was asked.)
	if format != check.FormatQCOW2 {
		if bootable, err := check.DetectFirmwares(ctx, raw); err == nil {
			if fws, err = check.FirmwaresFor(cmd.String("arch"), cmd.String("firmware"), bootable); err != nil {
				return usage("--firmware: %v", err)
			}
			if len(fws) == 0 {
				return usage("%s has no EFI system partition and no BIOS boot code: QEMU cannot boot it", image)
			}
		}
	}

	// The OS's console on the serial port QEMU logs, in a throw-away copy.
	boot := raw
	if serial == check.SerialAuto {
		cc, err := check.WithSerialConsole(ctx, raw, logDir)
		if err != nil {
			return failed(fmt.Errorf("%w (--serial-console off boots the image as it is)", err))
		}
		defer cc.Remove()
		fmt.Fprintln(out, cc.Summary())
		boot = cc.Image
	}

	// Accelerators are chosen one firmware after the other (a KVM probe
	// runs at most once), then the boots run: at the same time on a host
	// with an idle CPU for each (check.AtOnce), with the results, their
	// order and the stop at the first failure of a one-after-the-other run
	// (check.RunAll).
	var boots []check.Boot
	for _, fw := range fws {
		choice, err := check.ChooseAccel(ctx, accel, fw, check.Prober{})
		if err != nil {
			return usage("--accel %s: %v", accel, err)
		}
		fmt.Fprintf(out, "%s: accelerator %s: %s\n", fw, choice.Accel, choice.Reason)
		boots = append(boots, check.Boot{
			Accel:     choice,
			Image:     boot,
			Name:      image,
			Firmware:  fw,
			Marker:    marker,
			Timeout:   time.Duration(cmd.Int("timeout")) * time.Second,
			MemoryMiB: int(cmd.Int("memory")),
			LogPath:   filepath.Join(logDir, "boot-"+string(fw)+".log"),
			WorkDir:   logDir,
			Logf:      logf,
		})
	}
	parallel, cpus, why := bootsAtOnce(ctx, len(boots))
	for i := range boots {
		boots[i].CPUs = cpus
	}
	if len(boots) > 1 {
		fmt.Fprintf(out, "booting with %d firmwares %s\n", len(boots), why)
	}
	// Each outcome is printed when it is known, in the firmwares' order.
	report := func(i int, res check.Result, err error) {
		fw := boots[i].Firmware
		var be *check.Error
		switch {
		case errors.As(err, &be):
			if keptLogs {
				logf("%s: FAILED (console log %s)", fw, res.LogPath)
			} else {
				// The log goes with the temporary directory: do not
				// name a file that will not be there.
				be.Result.LogPath = ""
				logf("%s: FAILED (give --log-dir to keep the console log)", fw)
			}
		case err != nil:
		case res.Status == check.StatusSkipped:
			logf("%s: SKIPPED: %s", fw, res.Reason)
		default:
			logNote := "console log " + res.LogPath
			if !keptLogs {
				logNote = "console log removed; give --log-dir to keep it"
			}
			logf("%s: ok, marker after %.1f s (%s, %s)", fw, res.Elapsed.Seconds(), res.Accel, logNote)
			if res.Fallback != "" {
				logf("%s: retried under TCG: %s", fw, res.Fallback)
			}
		}
	}
	_, errs := bootImage.All(ctx, boots, parallel, report)
	for _, err := range errs {
		if err != nil {
			return failed(err)
		}
	}
	return nil
}
