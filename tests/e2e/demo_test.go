package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check"
	"github.com/eib-builder/eib/lib/check/checktest"
)

// tail returns the last lines of a command's output for a failure message.
func tail(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestDemoBuildBootsWithBIOSAndUEFIAndIsPublished(t *testing.T) {
	needDemo(t)
	// A check hook sees the console log and the image it came from.
	p := newDemoProject(t, "[check]\nhooks_add = 50-console-says-ok\n")
	seen := filepath.Join(p.Dir, "hook-saw")
	p.Write("hooks/check/50-console-says-ok", "#!/bin/bash\n"+
		`grep -q EIB-DEMO-BOOT-OK "$EIB_CHECK_SERIAL_LOG_UEFI"`+"\n"+
		`grep -a -o "EIB-DEMO-BOOT-OK eib-demo" "$EIB_CHECK_SERIAL_LOG" > `+seen+"\n"+
		`[ -f "$EIB_CHECK_IMAGE" ] && basename "$EIB_CHECK_IMAGE" >> `+seen+"\n", 0o755)
	out, code := p.build()
	if code != 0 {
		t.Fatalf("demo build exited %d:\n%s", code, tail(out, 60))
	}
	for _, fw := range []string{"bios", "uefi"} {
		if !regexp.MustCompile(`check: \S+ booted with ` + fw + ` firmware in [0-9.]+ s \((tcg|kvm)\)`).MatchString(out) {
			t.Errorf("the build output does not report the %s boot:\n%s", fw, tail(out, 40))
		}
		log, err := os.ReadFile(filepath.Join(p.Tmpdir(), "boot-"+fw+".log"))
		if err != nil || !strings.Contains(string(log), "EIB-DEMO-BOOT-OK eib-demo") {
			t.Errorf("console log boot-%s.log lacks the demo marker (%v)", fw, err)
		}
	}

	if got, err := os.ReadFile(seen); err != nil || !regexp.MustCompile(`^EIB-DEMO-BOOT-OK eib-demo\n\S+\.img\n$`).Match(got) {
		t.Errorf("the check hook saw %q (%v), want the marker line of the console log and the image name", got, err)
	}

	// The manifest records both boots with their times.
	boots, _ := p.Manifest()["boot_check"].([]any)
	var fws []string
	for _, b := range boots {
		m, _ := b.(map[string]any)
		secs, _ := m["seconds_to_marker"].(float64)
		if m["result"] != "ok" || secs <= 0 {
			t.Errorf("manifest boot_check entry %v: want result ok with seconds_to_marker", m)
		}
		// Each boot names its accelerator and why (the probe's verdict or
		// the setting), and the build log said the same.
		accel, _ := m["accel"].(string)
		why, _ := m["accel_reason"].(string)
		if (accel != "kvm" && accel != "tcg") || why == "" {
			t.Errorf("manifest boot_check entry %v: want accel kvm or tcg with accel_reason", m)
		} else if !strings.Contains(out, "firmware: "+accel+" ([check] accel = auto: ") && !strings.Contains(out, "EIB_CHECK_ACCEL") {
			t.Errorf("the build output does not say which accelerator was chosen and why:\n%s", tail(out, 40))
		}
		// And how it booted: its vCPUs, and whether with the other
		// firmware at the same time, as the build log said.
		vcpus, _ := m["vcpus"].(float64)
		atOnce, _ := m["at_once"].(bool)
		said := "at the same time, " + strconv.Itoa(int(vcpus)) + " vCPU"
		if !atOnce {
			said = "one after the other ("
		}
		if (vcpus != 1 && vcpus != 2) || !strings.Contains(out, "booting with 2 firmwares "+said) {
			t.Errorf("manifest boot_check entry %v: want vcpus 1 or 2 and at_once as the build log says:\n%s", m, tail(out, 40))
		}
		fw, _ := m["firmware"].(string)
		fws = append(fws, fw)
	}
	if !slices.Equal(fws, []string{"bios", "uefi"}) {
		t.Errorf("manifest boot_check firmwares = %v, want [bios uefi]", fws)
	}

	// Published: the release directory holds the manifest and the image.
	pub := p.published()
	hasSuffix := func(suffix string) bool {
		return slices.ContainsFunc(pub, func(f string) bool { return strings.HasSuffix(f, suffix) })
	}
	if !hasSuffix(".manifest.json") || !slices.ContainsFunc(pub, check.IsCompressed) {
		t.Errorf("published files %v: want the manifest and a compressed image", pub)
	}

	// eib check-image boots the compressed output the same way.
	images, _ := filepath.Glob(filepath.Join(p.Outdir(), "*.img.*"))
	images = slices.DeleteFunc(images, func(f string) bool { return !check.IsCompressed(f) })
	if len(images) == 0 {
		t.Fatalf("no compressed image in %s", p.Outdir())
	}
	logs := filepath.Join(p.Dir, "check-image")
	out, code = p.eib("check-image", "--firmware", "bios", "--marker", "EIB-DEMO-BOOT-OK", "--log-dir", logs, images[0])
	if code != 0 || !regexp.MustCompile(`bios: ok, marker after [0-9.]+ s`).MatchString(out) || !strings.Contains(out, "booting "+images[0]+" with bios") {
		t.Errorf("eib check-image %s exited %d:\n%s", images[0], code, out)
	}
	if left, _ := filepath.Glob(filepath.Join(logs, "*.raw")); len(left) != 0 {
		t.Errorf("check-image left its expanded copy: %v", left)
	}
}

func TestBrokenKernelCommandLineFailsTheBuildWithConsoleTail(t *testing.T) {
	needDemo(t)
	// No root= for the demo initramfs: it reports the failure and powers off.
	p := newDemoProject(t, "[ostree]\nkargs = rw console=ttyS0,115200 panic=-1\n\n[check]\nfirmware = bios\n")
	out, code := p.build()
	if code != 2 {
		t.Fatalf("build with a broken kernel command line exited %d, want 2:\n%s", code, tail(out, 60))
	}
	for _, want := range []string{
		"boot check failed",
		"with bios firmware",
		"ended before the marker",
		"  | EIB-DEMO-BOOT-FAILED: no root= on the kernel command line",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, tail(out, 60))
		}
	}
	// Only the error stage's failed-build log may be published.
	for _, f := range p.published() {
		if !strings.HasSuffix(f, ".failed.build.txt") {
			t.Errorf("a build that failed its boot check published %s", f)
		}
	}
}

func TestMarkerThatNeverAppearsTimesOutAndLeavesNoQEMU(t *testing.T) {
	p := newProject(t)
	dir := p.Dir
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{"booting, but never saying so"}, "sleep 3600"))
	out, code := p.eib("check-image", "--firmware", "bios", "--timeout", "3", "--marker", "EIB-DEMO-BOOT-OK", "--log-dir", dir, img)
	if code != 2 {
		t.Fatalf("check-image exited %d, want 2:\n%s", code, out)
	}
	for _, want := range []string{`marker "EIB-DEMO-BOOT-OK" not seen within 3s`, "  | booting, but never saying so", filepath.Join(dir, "boot-bios.log")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if left := checktest.QEMUProcesses(t, dir); len(left) != 0 {
		t.Fatalf("qemu left running after the timeout: %v", left)
	}
}

func TestCheckImageUsageErrorsExitOne(t *testing.T) {
	p := newProject(t)
	for _, args := range [][]string{
		{"check-image"},
		{"check-image", "--firmware", "efi", "x.img"},
		{"check-image", "--marker", "(", "x.img"},
	} {
		if out, code := p.eib(args...); code != 1 || !strings.Contains(out, "eib check-image:") {
			t.Errorf("eib %v exited %d, want 1 with a message:\n%s", args, code, out)
		}
	}
}

func TestInterruptedBootCheckLeavesNoQEMU(t *testing.T) {
	needDemo(t)
	p := newDemoProject(t, "[check]\nfirmware = bios\n")
	cmd := p.buildCommand(context.Background())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	signalled := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if !signalled && strings.Contains(sc.Text(), "check: booting ") {
			// Let QEMU start, then stop the build as a service manager would.
			for i := 0; i < 100 && len(checktest.QEMUProcesses(t, p.Dir)) == 0; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	if !signalled {
		t.Fatalf("the build never reached the boot check (%v):\n%s", err, tail(out.String(), 40))
	}
	if err == nil || !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("build after SIGTERM: %v, want a failure saying it was interrupted:\n%s", err, tail(out.String(), 20))
	}
	if left := checktest.QEMUProcesses(t, p.Dir); len(left) != 0 {
		t.Fatalf("qemu left running after SIGTERM: %v", left)
	}
	t.Logf("end of the interrupted build:\n%s", tail(out.String(), 4))
}

// A systemd-boot image is UEFI-only: with [check] firmware = both it is
// booted with UEFI alone (it used to be booted with BIOS as well, and to
// fail after the whole timeout), and asking for BIOS is refused naming the
// key.
func TestSystemdBootImageIsCheckedWithUEFIOnly(t *testing.T) {
	needDemo(t)
	p := newDemoProject(t, "[image]\nsdboot = true\n\n[check]\nfirmware = both\nboot_timeout = 120\n")
	out, code := p.build()
	if code != 0 {
		t.Fatalf("sdboot demo build exited %d:\n%s", code, tail(out, 60))
	}
	var fws []string
	for _, b := range p.Manifest()["boot_check"].([]any) {
		m := b.(map[string]any)
		if m["result"] != "ok" {
			t.Errorf("boot %v: want ok", m)
		}
		fws = append(fws, m["firmware"].(string))
	}
	if !slices.Equal(fws, []string{"uefi"}) {
		t.Fatalf("booted with %v, want [uefi] only:\n%s", fws, tail(out, 40))
	}

	p = newDemoProject(t, "[image]\nsdboot = true\n\n[check]\nfirmware = bios\n")
	out, code = p.build()
	if code != 1 || !strings.Contains(out, `[check] firmware`) || !strings.Contains(out, `firmware "bios": the image boots only with uefi`) {
		t.Fatalf("sdboot with firmware = bios exited %d, want 1 (a configuration error) naming [check] firmware:\n%s", code, tail(out, 30))
	}
}
