package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"

	"github.com/eib-builder/eib/lib/stage"
)

// resultStage hands results to the later stages, as the image and check
// stages do (an image, a boot, a variable for the hooks, a file in tmpdir).
type resultStage struct{}

func (resultStage) Name() string { return "t-result" }
func (resultStage) Run(ctx context.Context, b *build.Build) error {
	ran = append(ran, "t-result")
	b.OSTree.Commit = "abc123"
	b.Images = append(b.Images, build.Image{Path: "/img/disk.img", Arch: "amd64", Firmware: []string{"bios"}})
	b.SetEnv("OSTREE_DEPLOYMENT", "/sysroot/deploy/x.0")
	tmp, err := b.Dir("tmpdir")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(tmp, "image.raw"), []byte("the image"), 0o644)
}

// seenStage records what a later stage finds of the earlier results.
type seenStage struct{}

var seen []string

func (seenStage) Name() string { return "t-seen" }
func (seenStage) Run(ctx context.Context, b *build.Build) error {
	ran = append(ran, "t-seen")
	env, _ := b.Environ()
	dep := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "OSTREE_DEPLOYMENT="); ok {
			dep = v
		}
	}
	tmp, _ := b.Dir("tmpdir")
	img, _ := os.ReadFile(filepath.Join(tmp, "image.raw"))
	imgOK := "no image"
	if len(b.Images) == 1 && b.Images[0].Path == "/img/disk.img" && b.Images[0].Firmware[0] == "bios" {
		imgOK = "image"
	}
	seen = []string{b.OSTree.Commit, imgOK, dep, string(img)}
	return nil
}

// TestUntilThenFromContinuesTheBuildWithItsResults: --until STAGE stops
// after STAGE (with the cleanup, without the error stage) and records the
// results; --from the next stage keeps tmpdir (the image), restores the
// results (b.OSTree, b.Images, the hooks' variables) and appends to the log.
func TestUntilThenFromContinuesTheBuildWithItsResults(t *testing.T) {
	e := newEnv(t, "t-result\nt-one\nt-seen\n")
	o := e.opts(t)
	o.Until = "t-one"
	ran, seen = nil, nil
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ran, " ") != "t-result t-one cleanup-t-one" {
		t.Fatalf("--until t-one ran %v", ran)
	}
	p, _ := stage.NewPlan(o)
	st, err := ReadState(p.TmpDir)
	if err != nil || st == nil || len(st.Completed) != 2 || st.Completed[1].Stage != "t-one" {
		t.Fatalf("state after --until t-one: %+v, %v", st, err)
	}
	o.Until, o.From = "", "t-seen"
	ran = nil
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if strings.Join(ran, " ") != "t-seen" {
		t.Errorf("--from t-seen ran %v", ran)
	}
	if want := "abc123|image|/sysroot/deploy/x.0|the image"; strings.Join(seen, "|") != want {
		t.Errorf("--from t-seen found %q, want %q", strings.Join(seen, "|"), want)
	}
	log, _ := os.ReadFile(p.LogFile)
	if !strings.Contains(string(log), "stage t-result: done") || !strings.Contains(string(log), "stage t-seen: done") {
		t.Errorf("the log does not hold both halves:\n%s", log)
	}
	// A stage may run again (iterate on its hooks) once those before it
	// completed.
	ran = nil
	if err := execute(context.Background(), o); err != nil || strings.Join(ran, " ") != "t-seen" {
		t.Errorf("--from t-seen again: %v, ran %v", err, ran)
	}
}

// TestFromRefusesWithoutStateAChangedPlanOrAnIncompleteBuild: --from
// continues only the build of the same plan whose stages before STAGE all
// completed, and names what is missing or what changed.
func TestFromRefusesWithoutStateAChangedPlanOrAnIncompleteBuild(t *testing.T) {
	e := newEnv(t, "t-result\nt-one\nt-seen\n")
	o := e.opts(t)
	o.From = "t-seen"
	p, err := stage.NewPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckResume(p); err == nil || !strings.Contains(err.Error(), "no build to continue: "+p.StateFile+" does not exist") {
		t.Errorf("no state: %v", err)
	}

	o.From, o.Until = "", "t-result"
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.From, o.Until = "t-seen", ""
	p, _ = stage.NewPlan(o)
	if err := CheckResume(p); err == nil || !strings.Contains(err.Error(), "stage t-one of the build in "+p.StateFile+" has not completed (last completed stage: t-result)") {
		t.Errorf("incomplete build: %v", err)
	}
	o.From = "t-one"
	p, _ = stage.NewPlan(o)
	if err := CheckResume(p); err != nil {
		t.Errorf("--from t-one after --until t-result: %v", err)
	}
	o.From = "t-result"
	p, _ = stage.NewPlan(o)
	if err := CheckResume(p); err == nil || !strings.Contains(err.Error(), "t-result is the first stage") {
		t.Errorf("--from the first stage: %v", err)
	}

	e.loaded.Full.Set("build", "outversion", "p-b-a-pl.2.base")
	o.From = "t-one"
	p, _ = stage.NewPlan(o)
	err = CheckResume(p)
	if err == nil || !strings.Contains(err.Error(), `outversion: "p-b-a-pl.1.base", now "p-b-a-pl.2.base"`) {
		t.Errorf("changed plan: %v", err)
	}
	// Execute checks again under the lock, and the state is left alone.
	ran = nil
	if err := execute(context.Background(), o); err == nil || len(ran) != 0 {
		t.Errorf("Execute of a changed plan: %v, ran %v", err, ran)
	}
	if st, _ := ReadState(p.TmpDir); st == nil || len(st.Completed) != 1 {
		t.Errorf("the state was not kept: %+v", st)
	}
}

func TestFromAndUntilMustBeStagesInOrder(t *testing.T) {
	e := newEnv(t, "t-result\nt-one\nt-seen\n")
	for _, tc := range []struct{ from, until, want string }{
		{"", "t-two", "--until t-two: not a stage of"},
		{"imgae", "", "--from imgae: not a stage of"},
		{"t-seen", "t-one", "--until t-one: comes before --from t-seen"},
	} {
		o := e.opts(t)
		o.From, o.Until = tc.from, tc.until
		if _, err := stage.NewPlan(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--from %q --until %q: %v, want %q", tc.from, tc.until, err, tc.want)
		}
	}
}

// TestPlanJSONMasksPrivateValues: no private value is printed by
// --show-plan or stored in the state's plan.
func TestPlanJSONMasksPrivateValues(t *testing.T) {
	e := newEnv(t, "t-one\n")
	e.loaded.Full.Set("build", "outversion", "p-very-secret-token-x")
	p, err := stage.NewPlan(e.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := p.JSON()
	st, _ := newState(p)
	if strings.Contains(string(data), "very-secret-token") || !strings.Contains(string(data), `"outversion": "p-***-x"`) {
		t.Errorf("plan JSON:\n%s", data)
	}
	if st.Plan["outversion"] != "p-***-x" {
		t.Errorf("state plan outversion = %v", st.Plan["outversion"])
	}
}

// TestFromAcceptsChangesOnlyLaterStagesRead: what only STAGE and the
// stages after it read (their hooks, the error hooks) may change between
// --until and --from STAGE (add a publish hook and iterate on it); what
// an earlier stage used may not.
func TestFromAcceptsChangesOnlyLaterStagesRead(t *testing.T) {
	e := newEnv(t, "t-result\nt-one\nt-seen\npublish\n")
	o := e.opts(t)
	o.Until = "t-one"
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "published")
	os.MkdirAll(filepath.Join(e.local, "hooks", "publish"), 0o755)
	os.WriteFile(filepath.Join(e.local, "hooks", "publish", "10-mark"), []byte("touch "+marker+"\n"), 0o644)
	e.loaded.Full.Set("publish", "hooks", "10-mark")
	o.Until, o.From = "", "t-seen"
	if err := execute(context.Background(), o); err != nil {
		t.Fatalf("--from t-seen with a new publish hook: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("the new publish hook did not run")
	}
	// From t-one, the publish hooks do not matter either; but from
	// publish, the stages before it ran with these hooks: a change of
	// the outversion (read by all) is refused, naming it.
	e.loaded.Full.Set("publish", "hooks", "")
	o.From = "t-one"
	p, err := stage.NewPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckResume(p); err != nil {
		t.Errorf("--from t-one without the publish hook: %v", err)
	}
	e.loaded.Full.Set("build", "outversion", "p-b-a-pl.3.base")
	e.loaded.Public.Set("build", "outversion", "p-b-a-pl.3.base")
	if p, err = stage.NewPlan(o); err != nil {
		t.Fatal(err)
	}
	if err := CheckResume(p); err == nil || !strings.Contains(err.Error(), "outversion") || strings.Contains(err.Error(), "hooks.publish") {
		t.Errorf("--from t-one with another outversion: %v", err)
	}
}

// TestFromIgnoresAChangeOfOnlyAPrivateValue: the recorded plan holds
// private values masked, so a build whose only change is a private value
// (a rotated token inside the pull URL, the outversion here) continues
// with --from.
func TestFromIgnoresAChangeOfOnlyAPrivateValue(t *testing.T) {
	e := newEnv(t, "t-result\nt-one\nt-seen\n")
	e.loaded.Full.Set("build", "outversion", "p-very-secret-token-x")
	o := e.opts(t)
	o.Until = "t-one"
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	e.loaded.Full.Set("publish", "token", "rotated-secret-token")
	e.loaded.Full.Set("build", "outversion", "p-rotated-secret-token-x")
	e.loaded.Secrets = []string{"rotated-secret-token"}
	o.Until, o.From = "", "t-seen"
	p, err := stage.NewPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckResume(p); err != nil {
		t.Errorf("--from after rotating a private value: %v", err)
	}
	// A public change is still refused.
	e.loaded.Full.Set("build", "outversion", "p-rotated-secret-token-y")
	p, _ = stage.NewPlan(o)
	if err := CheckResume(p); err == nil || !strings.Contains(err.Error(), `outversion: "p-***-x", now "p-***-y"`) {
		t.Errorf("public change: %v", err)
	}
}
