package stage

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/check"
	"github.com/eib-builder/eib/lib/check/checktest"
	"github.com/eib-builder/eib/lib/config"
)

// envRecorder is a hook runner that records the groups run and the
// variables set for them.
type envRecorder struct {
	groups []string
	env    []string
}

func (r *envRecorder) RunGroup(ctx context.Context, b *build.Build, group, root string) error {
	r.groups = append(r.groups, group)
	r.env = b.ExtraEnv()
	return nil
}

func checkBuild(t *testing.T, settings map[string]string) (*build.Build, *envRecorder, string) {
	t.Helper()
	dir := t.TempDir()
	c := config.New()
	c.Set("build", "tmpdir", filepath.Join(dir, "tmp"))
	c.Set("build", "outdir", filepath.Join(dir, "out"))
	for k, v := range map[string]string{
		"boot": "true", "firmware": "bios", "boot_timeout": "60",
		"boot_marker": "EIB-TEST-BOOT-OK", "qemu_memory": "256",
		"accel": "auto", "kvm_stall_timeout": "60", "serial_console": "auto",
		"guest_commands": "", "guest_user": "root", "guest_password_file": "", "guest_command_timeout": "120",
	} {
		if s, ok := settings[k]; ok {
			v = s
		}
		c.Set("check", k, v)
	}
	hooks := &envRecorder{}
	return &build.Build{Config: c, Public: c, Hooks: hooks}, hooks, dir
}

// bootRecords are the records the raw format makes of disk images: the
// compressed image, booted through the raw disk.
func bootRecords(imgs []build.Image) []artifact.Record {
	var recs []artifact.Record
	for _, img := range imgs {
		recs = append(recs, artifact.Record{Format: "raw", Disk: img.Name, File: filepath.Base(img.Path) + ".zst",
			Boot: artifact.MediumDisk, BootPath: img.Path, Arch: img.Arch, Platform: img.Platform, Firmwares: img.Firmware})
	}
	return recs
}

func TestCheckStageBootsImageAndHandsLogToHooks(t *testing.T) {
	b, hooks, dir := checkBuild(t, nil)
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{"EIB-TEST-BOOT-OK"}, "halt"))
	b.Artifacts = bootRecords([]build.Image{{Path: img, Arch: "amd64", Firmware: []string{"bios", "uefi"}}})
	if err := runCheckStage(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if len(b.Boots) != 1 || b.Boots[0].Result != "ok" || b.Boots[0].Firmware != "bios" || b.Boots[0].Seconds <= 0 {
		t.Fatalf("boots = %+v, want one ok bios boot with a time", b.Boots)
	}
	logPath := filepath.Join(dir, "tmp", "boot-bios.log")
	for _, want := range []string{"EIB_CHECK_IMAGE=" + img, "EIB_CHECK_SERIAL_LOG=" + logPath, "EIB_CHECK_SERIAL_LOG_BIOS=" + logPath} {
		if !slices.Contains(hooks.env, want) {
			t.Errorf("hook environment lacks %s: %v", want, hooks.env)
		}
	}
	if !slices.Equal(hooks.groups, []string{"check"}) {
		t.Fatalf("hook groups run = %v, want [check]", hooks.groups)
	}
}

func TestCheckStageFailedBootFailsBeforeHooks(t *testing.T) {
	b, hooks, dir := checkBuild(t, nil)
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{"Kernel panic - not syncing: VFS"}, "halt"))
	b.Artifacts = bootRecords([]build.Image{{Path: img, Arch: "amd64", Firmware: []string{"bios", "uefi"}}})
	err := runCheckStage(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "  | Kernel panic - not syncing: VFS") || !strings.Contains(err.Error(), "bios firmware") {
		t.Fatalf("err = %v, want the failure naming the firmware with the console tail", err)
	}
	if len(b.Boots) != 1 || b.Boots[0].Result != "failed" || b.Boots[0].Reason == "" {
		t.Fatalf("boots = %+v, want one failed boot with its reason", b.Boots)
	}
	if len(hooks.groups) != 0 {
		t.Fatalf("hooks ran after a failed boot: %v", hooks.groups)
	}
}

func TestCheckStageWithBootFalseRunsOnlyHooks(t *testing.T) {
	b, hooks, _ := checkBuild(t, map[string]string{"boot": "false"})
	b.Artifacts = bootRecords([]build.Image{{Path: "/nonexistent.img", Arch: "amd64", Firmware: []string{"bios", "uefi"}}})
	if err := runCheckStage(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if len(b.Boots) != 0 || !slices.Equal(hooks.groups, []string{"check"}) || !slices.Contains(hooks.env, "EIB_CHECK_IMAGE=/nonexistent.img") {
		t.Fatalf("boots %+v, hooks %v %v: want no boot and the check hooks with the image", b.Boots, hooks.groups, hooks.env)
	}
}

// EIB_CHECK_ACCEL wins over [check] accel, and a bad value names it.
func TestCheckAccelEnvironmentOverridesTheKey(t *testing.T) {
	t.Setenv(check.AccelEnv, "kvm-please")
	b, _, _ := checkBuild(t, map[string]string{"accel": "tcg"})
	b.Artifacts = bootRecords([]build.Image{{Path: "/x.img", Arch: "amd64", Firmware: []string{"bios", "uefi"}}})
	err := runCheckStage(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "EIB_CHECK_ACCEL: accelerator \"kvm-please\"") {
		t.Fatalf("err = %v, want it to name EIB_CHECK_ACCEL", err)
	}
}

func TestCheckSettingsErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"boot_timeout", "0", "[check] boot_timeout: 0: must be a positive number of seconds"},
		{"boot_timeout", "-5", "[check] boot_timeout: -5 seconds: must be 0 or more"},
		{"boot_timeout", "soon", "[check] boot_timeout: \"soon\" is not an integer"},
		{"boot_marker", "(", "[check] boot_marker: \"(\" is not a regular expression"},
		{"boot_marker", "", "[check] boot_marker: empty, but it must be a regular expression"},
		{"qemu_memory", "16", "[check] qemu_memory: 16: must be at least 64 (MiB)"},
		{"qemu_memory", "lots", "[check] qemu_memory: \"lots\" is not an integer"},
		{"boot", "maybe", "[check] boot: \"maybe\" is not a boolean"},
		{"firmware", "efi", "[check] firmware: \"efi\" is not one of bios, uefi, both"},
		{"accel", "hvf", "[check] accel: \"hvf\" is not one of auto, kvm, tcg"},
		{"kvm_stall_timeout", "0", "[check] kvm_stall_timeout: 0: must be a positive number of seconds"},
		{"serial_console", "on", "[check] serial_console: \"on\" is not one of auto, off"},
		{"guest_command_timeout", "0", "[check] guest_command_timeout: 0: must be a positive number of seconds"},
		{"guest_command_timeout", "2m", "[check] guest_command_timeout: \"2m\" is not an integer"},
		{"guest_user", "", "[check] guest_user: \"\": must be one login name"},
		{"guest_user", "root admin", "[check] guest_user: \"root admin\": must be one login name"},
		{"guest_password_file", "secret.txt", "[check] guest_password_file: \"secret.txt\" is a relative path"},
		{"guest_password_file", "/nonexistent/eib-guest-password", "[check] guest_password_file: open /nonexistent/eib-guest-password: no such file or directory"},
	} {
		t.Setenv(check.AccelEnv, "")
		b, hooks, _ := checkBuild(t, map[string]string{tc.key: tc.value})
		b.Artifacts = bootRecords([]build.Image{{Path: "/x.img", Arch: "amd64", Firmware: []string{"bios", "uefi"}}})
		err := runCheckStage(context.Background(), b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %q: err = %v, want it to contain %q", tc.key, tc.value, err, tc.want)
		}
		if len(hooks.groups) != 0 {
			t.Errorf("%s = %q: hooks ran despite the error", tc.key, tc.value)
		}
	}
}

// The image's boot loader decides what "both" boots: a board-only image is
// reported skipped (never passed) and an explicit firmware it cannot boot
// with is a configuration error naming the key.
func TestCheckStageFirmwareFollowsTheImage(t *testing.T) {
	b, hooks, _ := checkBuild(t, map[string]string{"firmware": "both"})
	b.Artifacts = bootRecords([]build.Image{{Path: "/x.img", Arch: "arm64", Platform: "pinebookpro"}})
	if err := runCheckStage(context.Background(), b); err != nil {
		t.Fatalf("board-only image: %v", err)
	}
	if len(b.Boots) != 1 || b.Boots[0].Result != string(check.StatusSkipped) || !strings.Contains(b.Boots[0].Reason, "pinebookpro") {
		t.Fatalf("boots %+v: want one skipped entry naming the platform", b.Boots)
	}
	if len(hooks.groups) != 1 {
		t.Errorf("check hooks ran %d times, want once", len(hooks.groups))
	}

	b, _, _ = checkBuild(t, map[string]string{"firmware": "bios"})
	b.Artifacts = bootRecords([]build.Image{{Path: "/x.img", Arch: "amd64", Firmware: []string{"uefi"}}})
	err := runCheckStage(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), `[check] firmware: image /x.img: firmware "bios": the image boots only with uefi`) {
		t.Fatalf("bios for a systemd-boot image: %v", err)
	}
}
