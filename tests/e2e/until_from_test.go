package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// release reads a published release: its files (base name -> sha256) and
// its manifest.
func release(t *testing.T, dir string) (map[string]string, map[string]any) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	var manifest map[string]any
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		sums[e.Name()] = hex.EncodeToString(sum[:])
		if strings.HasSuffix(e.Name(), ".manifest.json") {
			if err := json.Unmarshal(data, &manifest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if manifest == nil {
		t.Fatalf("no manifest in %s: %v", dir, sums)
	}
	return sums, manifest
}

// volatile reports whether a published file may differ between two builds
// of the same release: the signatures carry their time, the build log and
// the manifest the build's times (compared without them), SHA256SUMS
// lists those.
func volatile(name string) bool {
	return strings.HasSuffix(name, ".asc") || strings.HasSuffix(name, ".build.txt") ||
		strings.HasSuffix(name, ".manifest.json") || name == "SHA256SUMS"
}

// stable is a manifest without what differs between two builds of one
// release: the timings, the boot times (and how the boot was accelerated),
// and the eib commit (a tree others commit to may move on between them).
func stable(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	delete(out, "timings")
	delete(out, "builder")
	delete(out, "builder_commit")
	if boots, ok := out["boot_check"].([]any); ok {
		var kept []any
		for _, b := range boots {
			bm := map[string]any{}
			for k, v := range b.(map[string]any) {
				bm[k] = v
			}
			for _, k := range []string{"seconds_to_marker", "accel", "accel_reason", "fallback", "console_log"} {
				delete(bm, k)
			}
			kept = append(kept, bm)
		}
		out["boot_check"] = kept
	}
	return out
}

// TestUntilImageThenFromCheckPublishesTheSameRelease: `eib --until image`
// then `eib --from check` publish the release one build publishes (the
// same images, outputs and manifest but for signatures, build log and
// times), the second half without pulling or building the image again;
// and --from check runs again on the same image.
func TestUntilImageThenFromCheckPublishesTheSameRelease(t *testing.T) {
	needDemo(t)
	p := newDemoProject(t, "[check]\nfirmware = bios\n")
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := p.buildCommand(ctx, args...)
		cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH=1700000000")
		out, code := p.combined(cmd)
		if code != 0 {
			t.Fatalf("eib %s exited %d:\n%s", strings.Join(args, " "), code, tail(out, 40))
		}
		return out
	}

	run()
	one := p.published()
	if len(one) == 0 {
		t.Fatal("the build published nothing")
	}
	oneDir := filepath.Join(p.pubs, filepath.Dir(one[0]))
	oneSums, oneManifest := release(t, oneDir)
	if err := os.RemoveAll(p.pubs); err != nil {
		t.Fatal(err)
	}

	out := run("--until", "image")
	if strings.Contains(out, "stage check: start") || len(p.published()) != 0 {
		t.Fatalf("--until image went on past the image stage:\n%s", tail(out, 30))
	}
	out = run("--from", "check")
	for _, stage := range []string{"ostree", "image"} {
		if strings.Contains(out, "stage "+stage+": start") {
			t.Errorf("--from check ran stage %s again:\n%s", stage, tail(out, 40))
		}
	}
	if !strings.Contains(out, "booted with bios firmware") {
		t.Errorf("--from check did not boot the image:\n%s", tail(out, 40))
	}
	twoSums, twoManifest := release(t, oneDir)
	if !reflect.DeepEqual(sortedKeys((oneSums)), sortedKeys((twoSums))) {
		t.Fatalf("the releases differ in their files:\none build: %v\n--until/--from: %v", sortedKeys((oneSums)), sortedKeys((twoSums)))
	}
	for name, sum := range oneSums {
		if !volatile(name) && twoSums[name] != sum {
			t.Errorf("%s differs between one build and --until image + --from check", name)
		}
	}
	if a, b := stable(oneManifest), stable(twoManifest); !reflect.DeepEqual(a, b) {
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		t.Errorf("the manifests differ (timings aside):\none build:\n%s\n--until/--from:\n%s", ja, jb)
	}
	// The timings of the first half are in the second's manifest.
	if tm, _ := json.Marshal(twoManifest["timings"]); !strings.Contains(string(tm), `"image"`) {
		t.Errorf("the manifest of --from check has no timing of the image stage: %s", tm)
	}
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
