package stage

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// The stages as the plan constructs them (StageRunners), with their
// settings read now by the readers validate uses: what a stage's tests
// run on a build made without a plan.

func runCheckStage(ctx context.Context, b *build.Build) error {
	s, err := readCheckSettings(b)
	if err != nil {
		return err
	}
	return checkStage{s: s}.Run(ctx, b)
}

func makeDiskImagesNow(ctx context.Context, b *build.Build) error {
	ds, err := readDiskSettings(b)
	if err != nil {
		return err
	}
	out, err := readOutputSettings(b)
	if err != nil {
		return err
	}
	return makeDiskImages(ctx, b, ds, out)
}

func writeImageOutputsNow(ctx context.Context, b *build.Build, img build.Image) error {
	s, err := readOutputSettings(b)
	if err != nil {
		return err
	}
	return writeImageOutputs(ctx, b, img, s)
}

// TestStageRunnersCarryThePlansSettings: the plan constructs each stage
// that runs with the settings it validated (declare, then execute), the
// error stage always, and no stage that does not run.
func TestStageRunnersCarryThePlansSettings(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "buildscript"), []byte("check\nmanifest\npublish\n"), 0o644)
	c := config.New()
	for k, v := range map[string]string{"cachedir": dir + "/cache", "tmpdir": dir + "/tmp", "outdir": dir + "/out",
		"manifestdir": dir + "/tmp/manifest", "contentdir": dir + "/cache/content", "outversion": "os-1"} {
		c.Set("build", k, v)
	}
	for k, v := range map[string]string{"boot": "false", "firmware": "bios", "boot_timeout": "30",
		"boot_marker": "from-the-config", "qemu_memory": "256", "accel": "tcg", "kvm_stall_timeout": "10", "serial_console": "off"} {
		c.Set("check", k, v)
	}
	for k, v := range map[string]string{"guest_commands": "", "guest_user": "root", "guest_password_file": "", "guest_command_timeout": "120"} {
		c.Set("check", k, v)
	}
	for _, g := range []string{"check", "manifest", "publish", "error"} {
		c.Set(g, "hooks", "")
	}
	loaded := &config.Loaded{Full: c, Public: c}
	p, err := NewPlan(Options{Loaded: loaded, SrcDir: src, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	r := p.StageRunners()
	if _, ok := r["publish"]; ok {
		t.Error("a runner for publish, skipped by --dry-run")
	}
	for _, name := range []string{"check", "manifest", ErrorStageName} {
		if s, ok := r[name]; !ok || s.Name() != name {
			t.Errorf("runner %q = %v", name, s)
		}
	}
	cs, ok := r["check"].(checkStage)
	if !ok || cs.s.marker.String() != "from-the-config" || cs.s.timeout.Seconds() != 30 || cs.s.serial != "off" {
		t.Fatalf("check runner %#v", r["check"])
	}
	// What the stage runs with is what the plan holds, not the config.
	planned := *p.settings.check
	planned.marker = regexp.MustCompile("from-the-plan")
	p.settings.check = &planned
	if cs := p.StageRunners()["check"].(checkStage); cs.s.marker.String() != "from-the-plan" {
		t.Errorf("check runner marker %s, want the plan's", cs.s.marker)
	}
}
