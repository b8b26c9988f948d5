package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/lock"
	"github.com/eib-builder/eib/lib/stage"
)

// Test-only stages.
type recordStage struct {
	name string
	err  error
}

var ran []string

func (s recordStage) Name() string { return s.name }
func (s recordStage) Run(ctx context.Context, b *build.Build) error {
	ran = append(ran, s.name)
	// A resource registered by the stage is released by the one cleanup.
	b.Defer("test resource of "+s.name, func() error { ran = append(ran, "cleanup-"+s.name); return nil })
	return s.err
}

// testStages are the test-only stages the buildscripts of these tests
// may list (besides the real ones), run with the plan's own stages.
var testStages = []build.Stage{
	recordStage{name: "t-one"},
	recordStage{name: "t-two"},
	panicStage{},
	recordStage{name: "t-fail", err: &build.HookError{Group: "t-fail", Hook: "50-bad", Err: errors.New("exit status 7")}},
	resultStage{},
	seenStage{},
}

func testKnown(name string) bool {
	for _, s := range testStages {
		if s.Name() == name {
			return true
		}
	}
	return stage.Known(name)
}

// execute plans the build (an error there is a configuration error) and
// runs it with the plan's stages and the test stages, as cmd/eib does.
func execute(ctx context.Context, o stage.Options) error {
	p, err := stage.NewPlan(o)
	if err != nil {
		return err
	}
	runners := p.StageRunners()
	for _, s := range testStages {
		runners[s.Name()] = s
	}
	return Run(ctx, p, o.Loaded, runners)
}

type env struct {
	src, local, cache string
	loaded            *config.Loaded
}

func newEnv(t *testing.T, buildscript string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{src: filepath.Join(dir, "src"), local: filepath.Join(dir, "local"), cache: filepath.Join(dir, "cache")}
	os.MkdirAll(filepath.Join(e.src, "lib"), 0o755)
	_, file, _, _ := runtime.Caller(0)
	eibsh, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "eib.sh"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.src, "lib", "eib.sh"), eibsh, 0o644)
	os.MkdirAll(e.local, 0o755)
	os.WriteFile(filepath.Join(e.src, "buildscript"), []byte("t-one\n"), 0o644)
	if buildscript != "" {
		os.WriteFile(filepath.Join(e.local, "buildscript"), []byte(buildscript), 0o644)
	}
	full, public := config.New(), config.New()
	for _, c := range []*config.Config{full, public} {
		c.Set("build", "cachedir", e.cache)
		c.Set("build", "builddir", "${cachedir}/build")
		c.Set("build", "tmpdir", "${builddir}/tmp")
		c.Set("build", "outdir", "${builddir}/out")
		c.Set("build", "manifestdir", "${tmpdir}/manifest")
		c.Set("build", "contentdir", "${cachedir}/content")
		c.Set("build", "outversion", "p-b-a-pl.1.base")
		c.Set("publish", "hooks", "")
		c.Set("error", "hooks", "")
	}
	full.Set("publish", "token", "very-secret-token")
	e.loaded = &config.Loaded{Full: full, Public: public, Secrets: []string{"very-secret-token"}}
	return e
}

func (e *env) opts(t *testing.T) stage.Options {
	return stage.Options{Loaded: e.loaded, SrcDir: e.src, LocalDir: e.local,
		LockFile: filepath.Join(t.TempDir(), "eib.lock"), Terminal: &bytes.Buffer{}, Known: testKnown}
}

func TestPlanResolvesDirsStagesAndLocalBuildscript(t *testing.T) {
	e := newEnv(t, "t-two\npublish\nt-one\n")
	o := e.opts(t)
	o.DryRun = true
	p, err := stage.NewPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(e.cache, "build")
	if p.Buildscript != filepath.Join(e.local, "buildscript") || fmt.Sprint(p.Stages) != "[t-two publish t-one]" {
		t.Errorf("stages %v from %s", p.Stages, p.Buildscript)
	}
	if p.Skipped["publish"] != "--dry-run" {
		t.Errorf("publish not skipped by --dry-run: %v", p.Skipped)
	}
	want := fmt.Sprint([]string{b + "/tmp", b + "/out", b + "/tmp/manifest"})
	if fmt.Sprint(p.Recreate) != want || fmt.Sprint(p.Keep) != fmt.Sprint([]string{e.cache + "/content"}) {
		t.Errorf("recreate %v keep %v", p.Recreate, p.Keep)
	}
	if p.LogFile != b+"/tmp/build.txt" || p.FullConfigFile != b+"/tmp/fullconfig.ini" {
		t.Errorf("files %s %s", p.LogFile, p.FullConfigFile)
	}
}

func TestPlanRejectsUnknownStageBeforeTouchingAnything(t *testing.T) {
	e := newEnv(t, "t-one\nno-such-stage\n")
	err := execute(context.Background(), e.opts(t))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(e.local, "buildscript")+":2: unknown stage \"no-such-stage\"") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(e.cache); !os.IsNotExist(err) {
		t.Errorf("cachedir created before the plan was valid: %v", err)
	}
}

func TestPlanRefusesToRecreateACache(t *testing.T) {
	e := newEnv(t, "")
	e.loaded.Full.Set("build", "outdir", "${cachedir}")
	_, err := stage.NewPlan(e.opts(t))
	if err == nil || !strings.Contains(err.Error(), "refusing to recreate "+e.cache) {
		t.Fatalf("err = %v", err)
	}
	e.loaded.Full.Set("build", "outdir", "relative/out")
	if _, err := stage.NewPlan(e.opts(t)); err == nil || !strings.Contains(err.Error(), `[build] outdir: "relative/out" is a relative path`) {
		t.Fatalf("err = %v", err)
	}
}

func TestExecuteRunsStagesThenCleanupAndWritesConfigs(t *testing.T) {
	e := newEnv(t, "t-one\nt-two\n")
	o := e.opts(t)
	// A leftover of an earlier build is removed; the content cache is kept.
	os.MkdirAll(filepath.Join(e.cache, "build", "out"), 0o755)
	os.WriteFile(filepath.Join(e.cache, "build", "out", "old.img"), nil, 0o644)
	os.MkdirAll(filepath.Join(e.cache, "content"), 0o755)
	os.WriteFile(filepath.Join(e.cache, "content", "cached"), nil, 0o644)
	ran = nil
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(ran); got != "[t-one t-two cleanup-t-two cleanup-t-one]" {
		t.Errorf("ran %s", got)
	}
	if _, err := os.Stat(filepath.Join(e.cache, "build", "out", "old.img")); !os.IsNotExist(err) {
		t.Error("outdir not recreated")
	}
	if _, err := os.Stat(filepath.Join(e.cache, "content", "cached")); err != nil {
		t.Error("contentdir not kept")
	}
	tmp := filepath.Join(e.cache, "build", "tmp")
	cfg, _ := os.ReadFile(filepath.Join(tmp, "config.ini"))
	full, _ := os.ReadFile(filepath.Join(tmp, "fullconfig.ini"))
	if !strings.HasPrefix(string(cfg), "# Configuration for p-b-a-pl.1.base\n[build]") || strings.Contains(string(cfg), "very-secret") {
		t.Errorf("config.ini:\n%s", cfg)
	}
	if !strings.HasPrefix(string(full), "# Full configuration for p-b-a-pl.1.base\n") || !strings.Contains(string(full), "very-secret-token") {
		t.Errorf("fullconfig.ini:\n%s", full)
	}
	if st, _ := os.Stat(filepath.Join(tmp, "fullconfig.ini")); st.Mode().Perm() != 0o600 {
		t.Errorf("fullconfig.ini mode %v", st.Mode().Perm())
	}
	log, _ := os.ReadFile(filepath.Join(tmp, "build.txt"))
	for _, want := range []string{"t-one: stage t-one: start", "t-two: stage t-two: done in", "eib: build finished"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("build.txt lacks %q:\n%s", want, log)
		}
	}
	l, err := lock.Acquire(context.Background(), o.LockFile, 0)
	if err != nil {
		t.Fatalf("lock still held after the build: %v", err)
	}
	l.Release()
}

func TestFailedStageRunsErrorStageAndNamesStageAndHook(t *testing.T) {
	e := newEnv(t, "t-one\nt-fail\nt-two\n")
	// The error hook records what it sees.
	out := filepath.Join(t.TempDir(), "error-env")
	e.loaded.Full.Set("error", "hooks", "10-record")
	os.MkdirAll(filepath.Join(e.local, "hooks", "error"), 0o755)
	os.WriteFile(filepath.Join(e.local, "hooks", "error", "10-record"),
		[]byte("#!/bin/sh\nenv | grep -E '^EIB_(ERROR_(STAGE|HOOK|LOG)|HOOK_GROUP)=' | sort > "+out+"\n"), 0o755)
	ran = nil
	err := execute(context.Background(), e.opts(t))
	want := "build failed in stage t-fail, hook t-fail/50-bad: exit status 7 (log: " + filepath.Join(e.cache, "build", "tmp", "build.txt") + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	if got := fmt.Sprint(ran); got != "[t-one t-fail cleanup-t-fail cleanup-t-one]" {
		t.Errorf("ran %s", got)
	}
	got, _ := os.ReadFile(out)
	wantEnv := "EIB_ERROR_HOOK=t-fail/50-bad\nEIB_ERROR_LOG=" + filepath.Join(e.cache, "build", "tmp", "build.txt") +
		"\nEIB_ERROR_STAGE=t-fail\nEIB_HOOK_GROUP=error\n"
	if string(got) != wantEnv {
		t.Errorf("error hook saw\n%s\nwant\n%s", got, wantEnv)
	}
}

type panicStage struct{}

func (panicStage) Name() string { return "t-panic" }
func (panicStage) Run(ctx context.Context, b *build.Build) error {
	ran = append(ran, "t-panic")
	var m map[string]int
	m["x"] = 1 // a bug in a stage
	return nil
}

func TestPanickingStageStillCleansUp(t *testing.T) {
	e := newEnv(t, "t-one\nt-panic\nt-two\n")
	o := e.opts(t)
	ran = nil
	err := execute(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "build failed in stage t-panic: stage t-panic panicked: assignment to entry in nil map") {
		t.Fatalf("err = %v", err)
	}
	if got := fmt.Sprint(ran); got != "[t-one t-panic cleanup-t-one]" {
		t.Errorf("ran %s", got)
	}
	l, lerr := lock.Acquire(context.Background(), o.LockFile, 0)
	if lerr != nil {
		t.Fatalf("lock held after a panic: %v", lerr)
	}
	l.Release()
}

func TestPublishSkippedByDryRun(t *testing.T) {
	e := newEnv(t, "publish\n")
	marker := filepath.Join(t.TempDir(), "published")
	e.loaded.Full.Set("publish", "hooks", "10-mark")
	os.MkdirAll(filepath.Join(e.local, "hooks", "publish"), 0o755)
	os.WriteFile(filepath.Join(e.local, "hooks", "publish", "10-mark"), []byte("touch "+marker+"\n"), 0o644)
	o := e.opts(t)
	o.DryRun = true
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("publish hook ran in a dry run")
	}
	if !strings.Contains(o.Terminal.(*bytes.Buffer).String(), "stage publish skipped (--dry-run)") {
		t.Errorf("terminal:\n%s", o.Terminal)
	}
	o.DryRun = false
	if err := execute(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("publish hook did not run without --dry-run")
	}
}

// TestStageWithoutARunnerFailsTheBuild: a stage the plan runs but that
// was given no runner fails like any stage (error stage, cleanup), not
// with a panic of the engine.
func TestStageWithoutARunnerFailsTheBuild(t *testing.T) {
	e := newEnv(t, "t-one\nt-two\n")
	o := e.opts(t)
	p, err := stage.NewPlan(o)
	if err != nil {
		t.Fatal(err)
	}
	ran = nil
	runners := p.StageRunners()
	runners["t-one"] = testStages[0]
	err = Run(context.Background(), p, o.Loaded, runners)
	if err == nil || !strings.Contains(err.Error(), "build failed in stage t-two: stage t-two: no runner for it") {
		t.Fatalf("err = %v", err)
	}
	if got := fmt.Sprint(ran); got != "[t-one cleanup-t-one]" {
		t.Errorf("ran %s", got)
	}
}
