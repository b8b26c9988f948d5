package disk

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/platform"
)

var update = flag.Bool("update", false, "rewrite the golden layouts of lib/disk/testdata/layouts")

// goldenDir holds, for every variant of every platform table entry, the
// layout as JSON (<variant>.json) and the sfdisk script and plan of a disk
// with a 64 MiB root and identifiers seeded by the variant's name
// (<variant>.sfdisk).
const goldenDir = "testdata/layouts"

// variants lists every layout the table allows: each entry with each
// partition table it boots from, with and without systemd-boot where it has
// it, with and without rootfs_resize. Names are
// <arch>-<platform>-<label>[-sdboot][-resize].
func variants() map[string]Params {
	out := map[string]Params{}
	for _, p := range platform.All() {
		for _, label := range p.Labels {
			for _, sdboot := range []bool{false, true} {
				if sdboot && p.SDBoot == nil {
					continue
				}
				for _, resize := range []bool{false, true} {
					name := p.Arch + "-" + p.Name + "-" + string(label)
					if sdboot {
						name += "-sdboot"
					}
					if resize {
						name += "-resize"
					}
					out[name] = Params{Arch: p.Arch, Platform: p.Name, PartitionTable: label, SDBoot: sdboot, RootfsResize: resize}
				}
			}
		}
	}
	return out
}

// TestLayoutsMatchTheirGoldenFiles shows any change of what a platform's
// disk looks like in review: every variant of the table has its golden
// layout and sfdisk script, and no golden file is left without a variant.
// A new board is an entry of the table plus the files
// `go test ./lib/disk -run TestLayoutsMatchTheirGoldenFiles -update` writes.
func TestLayoutsMatchTheirGoldenFiles(t *testing.T) {
	vs := variants()
	if *update {
		must(t, os.RemoveAll(goldenDir))
		must(t, os.MkdirAll(goldenDir, 0o755))
	}
	var names []string
	for name, p := range vs {
		names = append(names, name)
		l, err := ForPlatform(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		js, err := json.MarshalIndent(l, "", "  ")
		must(t, err)
		plan, err := NewPlan(l, 64*MiB, 0)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		plan.AssignIDs(SeededIDs(name))
		files := map[string]string{
			name + ".json":   string(js) + "\n",
			name + ".sfdisk": plan.SfdiskScript() + "\n# " + strings.ReplaceAll(plan.String(), "\n", "\n# ") + "\n",
		}
		for file, got := range files {
			path := filepath.Join(goldenDir, file)
			if *update {
				must(t, os.WriteFile(path, []byte(got), 0o644))
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: no golden file (run go test ./lib/disk -run TestLayoutsMatchTheirGoldenFiles -update): %v", name, err)
				continue
			}
			if got != string(want) {
				t.Errorf("%s differs from the layout (-update rewrites it after review):\n--- golden\n%s\n--- now\n%s", path, want, got)
			}
		}
	}
	entries, err := os.ReadDir(goldenDir)
	must(t, err)
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".json"), ".sfdisk")
		if !slices.Contains(names, name) {
			t.Errorf("%s: no variant of the platform table has this layout (remove it, or run -update)", filepath.Join(goldenDir, e.Name()))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
