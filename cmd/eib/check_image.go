package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/check"
)

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:      "check-image",
		Usage:     "boot a disk image in QEMU and wait for its serial console to print the marker",
		ArgsUsage: "IMAGE (.img, .img.gz, .img.xz or .img.zst)",
		Description: "The same boot check as the check stage of a build, for images built elsewhere.\n" +
			"The image is never modified (the boot runs on a throw-away overlay). Exit\n" +
			"status: 0 every boot saw the marker (or was skipped, as printed), 1 usage\n" +
			"error, 2 a boot failed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "firmware", Value: "both", Usage: "bios, uefi or both"},
			&cli.StringFlag{Name: "marker", Value: check.DefaultMarker, Usage: "regular expression the serial console must print"},
			&cli.IntFlag{Name: "timeout", Value: 300, Usage: "seconds to wait for the marker, per boot"},
			&cli.IntFlag{Name: "memory", Value: check.DefaultMemoryMiB, Usage: "guest memory in MiB"},
			&cli.StringFlag{Name: "arch", Value: "amd64", Usage: "architecture of the image: " + strings.Join(SupportedArches, ", ")},
			&cli.StringFlag{Name: "accel", Value: check.AccelAuto, Sources: cli.EnvVars(check.AccelEnv),
				Usage: "QEMU accelerator: auto (KVM only where a probe proves it works on this host), kvm or tcg"},
			&cli.StringFlag{Name: "log-dir", Usage: "directory for the console logs boot-<firmware>.log (default: a new temporary directory)"},
		},
		Action: checkImage,
	})
}

// checkImage is the check-image command: exit 1 on a usage error, 2 on a
// failed boot.
func checkImage(ctx context.Context, cmd *cli.Command) error {
	usage := func(format string, args ...any) error {
		return cli.Exit("eib check-image: "+fmt.Sprintf(format, args...), 1) // usage error
	}
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
	if cmd.Int("timeout") <= 0 || cmd.Int("memory") < 64 {
		return usage("--timeout must be positive and --memory at least 64 (MiB)")
	}
	logDir := cmd.String("log-dir")
	if logDir == "" {
		if logDir, err = os.MkdirTemp("", "eib-check-"); err != nil {
			return usage("%v", err)
		}
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return usage("--log-dir: %v", err)
	}
	if check.IsCompressed(image) {
		fmt.Fprintf(cmd.Root().Writer, "expanding %s into %s\n", image, logDir)
	}
	raw, remove, err := check.PrepareImage(ctx, image, logDir)
	if err != nil {
		return cli.Exit("eib check-image: "+err.Error(), 2) // boot failed
	}
	defer remove()
	// Boot with what the image's partition table says it boots with:
	// "both" means those, an explicit firmware it lacks is refused.
	if bootable, err := check.DetectFirmwares(ctx, raw); err == nil {
		if fws, err = check.FirmwaresFor(cmd.String("arch"), cmd.String("firmware"), bootable); err != nil {
			return usage("--firmware: %v", err)
		}
		if len(fws) == 0 {
			return usage("%s has no EFI system partition and no BIOS boot code: QEMU cannot boot it", image)
		}
	}

	out := cmd.Root().Writer
	for _, fw := range fws {
		choice, err := check.ChooseAccel(ctx, accel, fw, check.Prober{})
		if err != nil {
			return usage("--accel %s: %v", accel, err)
		}
		fmt.Fprintf(out, "%s: accelerator %s: %s\n", fw, choice.Accel, choice.Reason)
		res, err := check.Run(ctx, check.Boot{
			Accel:     choice,
			Image:     raw,
			Name:      image,
			Firmware:  fw,
			Marker:    marker,
			Timeout:   time.Duration(cmd.Int("timeout")) * time.Second,
			MemoryMiB: int(cmd.Int("memory")),
			LogPath:   filepath.Join(logDir, "boot-"+string(fw)+".log"),
			WorkDir:   logDir,
			Logf: func(format string, args ...any) {
				fmt.Fprintf(out, format+"\n", args...)
			},
		})
		var be *check.Error
		switch {
		case errors.As(err, &be):
			fmt.Fprintf(out, "%s: FAILED (console log %s)\n", fw, res.LogPath)
			return cli.Exit("eib check-image: "+err.Error(), 2) // boot failed
		case err != nil:
			return cli.Exit("eib check-image: "+err.Error(), 2) // boot failed
		case res.Status == check.StatusSkipped:
			fmt.Fprintf(out, "%s: SKIPPED: %s\n", fw, res.Reason)
		default:
			fmt.Fprintf(out, "%s: ok, marker after %.1f s (%s, console log %s)\n", fw, res.Elapsed.Seconds(), res.Accel, res.LogPath)
			if res.Fallback != "" {
				fmt.Fprintf(out, "%s: retried under TCG: %s\n", fw, res.Fallback)
			}
		}
	}
	return nil
}
