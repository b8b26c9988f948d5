package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// quietKargs are kernel arguments in EIB's style: nothing on the serial
// port (no console=ttyS0).
const quietKargs = "root=LABEL=ostree rw splash plymouth.ignore-serial-consoles quiet loglevel=0 systemd.firstboot=no"

// quietBuild builds the demo with quietKargs and SOURCE_DATE_EPOCH fixed
// (the same raw image in every build), plus extra INI text, and returns
// its project, output and exit code.
func quietBuild(t *testing.T, extra string) (*project, string, int) {
	t.Helper()
	p := newDemoProject(t, "[ostree]\nkargs = "+quietKargs+"\n\n"+extra)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := p.buildCommand(ctx)
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
	out, code := p.combined(cmd)
	return p, out, code
}

// rawImage returns the raw image of a build (in its tmpdir), the sha256
// its record in outdir gives (<image>.img.sha256) and the sha256 of the
// file now.
func rawImage(t *testing.T, p *project) (path, recorded, now string) {
	t.Helper()
	sums, _ := filepath.Glob(filepath.Join(p.Outdir(), "*.img.sha256"))
	if len(sums) != 1 {
		t.Fatalf("want one .img.sha256 in %s, found %v", p.Outdir(), sums)
	}
	data, err := os.ReadFile(sums[0])
	if err != nil {
		t.Fatal(err)
	}
	recorded, _, _ = strings.Cut(strings.TrimSpace(string(data)), " ")
	path = filepath.Join(p.Tmpdir(), strings.TrimSuffix(filepath.Base(sums[0]), ".sha256"))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return path, recorded, fmt.Sprintf("%x", h.Sum(nil))
}

// An OS booted with EIB-style quiet kernel arguments prints nothing on the
// serial port. The check boots a throw-away copy whose boot entries get
// console=ttyS0,115200 ([check] serial_console = auto, the default) and
// sees the marker with BIOS and UEFI; the image and its checksum are the
// ones a build with serial_console = off makes, and that build's check
// fails: the edit is what makes the boot visible.
func TestQuietKernelArgumentsBootWithTheCheckConsole(t *testing.T) {
	needDemo(t)
	// The demo's own marker only: a quiet OS must not pass through an
	// unrelated line.
	p, out, code := quietBuild(t, "[check]\nboot_marker = EIB-DEMO-BOOT-OK\nboot_timeout = 180\n")
	if code != 0 {
		t.Fatalf("quiet demo build exited %d:\n%s", code, tail(out, 60))
	}
	if line := regexp.MustCompile(`check boot: added console=ttyS0,115200 to [0-9]+ boot entries of a throw-away copy \(the image is unchanged.*`).FindString(out); line == "" {
		t.Errorf("the build output does not say what the check changed:\n%s", tail(out, 40))
	} else {
		t.Log(line)
	}
	var fws []string
	for _, b := range p.Manifest()["boot_check"].([]any) {
		m := b.(map[string]any)
		if m["result"] != "ok" {
			t.Errorf("boot %v: want ok", m)
		}
		fws = append(fws, m["firmware"].(string))
	}
	if !slices.Equal(fws, []string{"bios", "uefi"}) {
		t.Errorf("booted with %v, want [bios uefi]", fws)
	}
	for _, fw := range []string{"bios", "uefi"} {
		log, err := os.ReadFile(filepath.Join(p.Tmpdir(), "boot-"+fw+".log"))
		if err != nil || !strings.Contains(string(log), "EIB-DEMO-BOOT-OK eib-demo") {
			t.Errorf("console log boot-%s.log lacks the demo marker (%v)", fw, err)
		}
	}
	raw, recorded, now := rawImage(t, p)
	if recorded != now {
		t.Errorf("%s: sha256 %s after the check, its record says %s", raw, now, recorded)
	}
	if left, _ := filepath.Glob(filepath.Join(p.Tmpdir(), "*.console.raw")); len(left) != 0 {
		t.Errorf("throw-away copies left: %v", left)
	}

	// The same build with serial_console = off: nothing on the serial
	// port. The demo OS prints its marker on tty0 and powers off (an OS
	// that stays up runs into the short timeout): the check fails.
	start := time.Now()
	off, out, code := quietBuild(t, "[check]\nboot_marker = EIB-DEMO-BOOT-OK\nboot_timeout = 20\nserial_console = off\n")
	if code != 2 || !strings.Contains(out, "(the console printed nothing)") ||
		!(strings.Contains(out, `ended before the marker "EIB-DEMO-BOOT-OK" appeared`) || strings.Contains(out, `marker "EIB-DEMO-BOOT-OK" not seen within 20s`)) {
		t.Fatalf("quiet demo build with serial_console = off exited %d, want a failed boot check:\n%s", code, tail(out, 40))
	}
	if strings.Contains(out, "check boot: added") || !strings.Contains(out, "booted as shipped ([check] serial_console = off)") {
		t.Errorf("serial_console = off: the output does not say the image is booted as shipped:\n%s", tail(out, 40))
	}
	t.Logf("the build with serial_console = off failed after %.0f s", time.Since(start).Seconds())
	_, offRecorded, offNow := rawImage(t, off)
	if offRecorded != recorded || offNow != recorded {
		t.Errorf("raw image sha256 %s (record %s) with serial_console = off, %s with auto: want one image", offNow, offRecorded, recorded)
	}
}

// With systemd-boot the entries the firmware reads are on the FAT ESP: the
// check's copy has them edited there.
func TestQuietKernelArgumentsBootWithSystemdBoot(t *testing.T) {
	needDemo(t)
	p, out, code := quietBuild(t, "[image]\nsdboot = true\n\n[check]\nboot_marker = EIB-DEMO-BOOT-OK\nboot_timeout = 180\n")
	if code != 0 {
		t.Fatalf("quiet sdboot demo build exited %d:\n%s", code, tail(out, 60))
	}
	if !regexp.MustCompile(`check boot: added console=ttyS0,115200 to [0-9]+ boot entries of a throw-away copy \(the image is unchanged[^\n]*\(fat\):/loader/entries/`).MatchString(out) {
		t.Errorf("the build output does not say the ESP's entries were changed:\n%s", tail(out, 40))
	}
	if line := regexp.MustCompile(`check boot: added .*`).FindString(out); line != "" {
		t.Log(line)
	}
	raw, recorded, now := rawImage(t, p)
	if recorded != now {
		t.Errorf("%s: sha256 %s after the check, its record says %s", raw, now, recorded)
	}
}
