package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/config"
)

func TestCleanupRunsInReverseOrderToTheMarkAndGoesOnAfterErrors(t *testing.T) {
	b := &Build{}
	var ran []string
	add := func(name string, err error) {
		b.Defer(name, func() error { ran = append(ran, name); return err })
	}
	add("lock", nil)
	add("mount /a", errors.New("busy"))
	mark := b.CleanupMark()
	add("mount /a/b", nil)
	add("loop", errors.New("gone"))
	err := b.CleanupTo(mark)
	if fmt.Sprint(ran) != "[loop mount /a/b]" || err == nil || !strings.Contains(err.Error(), "cleanup loop: gone") {
		t.Fatalf("CleanupTo: ran %v, err %v", ran, err)
	}
	ran = nil
	err = b.Cleanup()
	if fmt.Sprint(ran) != "[mount /a lock]" || err == nil || !strings.Contains(err.Error(), "cleanup mount /a: busy") {
		t.Fatalf("Cleanup: ran %v, err %v", ran, err)
	}
	ran = nil
	if err := b.Cleanup(); err != nil || len(ran) != 0 {
		t.Fatalf("second Cleanup ran %v, %v", ran, err)
	}
}

func TestEnvironLayersHostConfigAndSetEnv(t *testing.T) {
	t.Setenv("EIB_OUTDIR", "/from/host")
	t.Setenv("EIB_BUILD_TEST_HOST", "kept")
	cfg := config.New()
	cfg.Set("build", "outdir", "/from/config")
	cfg.Set("image", "hostname", "pc")
	b := &Build{Config: cfg}
	b.SetEnv("OSTREE_DEPLOYMENT", "/dep")
	b.SetEnv("EIB_IMAGE_HOSTNAME", "from-setenv")
	env, err := b.Environ()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(env, "\n") + "\n"
	for _, want := range []string{"EIB_OUTDIR=/from/config\n", "EIB_BUILD_TEST_HOST=kept\n", "OSTREE_DEPLOYMENT=/dep\n", "EIB_IMAGE_HOSTNAME=from-setenv\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("environment lacks %q", want)
		}
	}
	if strings.Count(got, "EIB_OUTDIR=") != 1 {
		t.Error("EIB_OUTDIR twice")
	}
}

func TestHookErrorUnwraps(t *testing.T) {
	inner := errors.New("exit status 3")
	err := fmt.Errorf("image hooks: %w", &HookError{Group: "image", Hook: "50-x", Err: inner})
	var he *HookError
	if !errors.As(err, &he) || he.Hook != "50-x" || !errors.Is(err, inner) || err.Error() != "image hooks: hook image/50-x: exit status 3" {
		t.Fatalf("%v", err)
	}
}

// TestResultsJSONNamesTheStateFileKeys: the results persist under the
// keys state.json has always used, and the embedded fields stay reachable
// as b.OSTree, b.Images ...
func TestResultsJSONNamesTheStateFileKeys(t *testing.T) {
	b := &Build{}
	b.OSTree.Commit = "abc"
	b.Images = append(b.Images, Image{Path: "/i.raw"})
	b.AddTiming(Timing{Stage: "ostree"})
	data, err := json.Marshal(b.Results)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"ostree":{`, `"deployment":{`, `"images":[{`, `"artifacts":null`, `"boots":null`, `"timings":[{`, `"Commit":"abc"`} {
		if !strings.Contains(string(data), k) {
			t.Errorf("results JSON %s: no %s", data, k)
		}
	}
}
