package stage

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// settingsReaders are the readers of the settings in lib/stage, each run
// on a build. Every one reads through config.Reader, which refuses a key
// config.KeysRead does not declare (or declares with another kind): a new
// read of an undeclared key fails TestReadersReadOnlyDeclaredKeys.
var settingsReaders = []struct {
	name string
	read func(*build.Build) error
}{
	{"readOSTreeSettings", func(b *build.Build) error { _, err := readOSTreeSettings(b); return err }},
	{"readDiskSettings", func(b *build.Build) error { _, err := readDiskSettings(b); return err }},
	{"readOutputSettings", func(b *build.Build) error { _, err := readOutputSettings(b); return err }},
	{"readCheckSettings", func(b *build.Build) error { _, err := readCheckSettings(b); return err }},
	{"releaseSettings", func(b *build.Build) error { _, err := releaseSettings(b, nil); return err }},
	{"publishSettings", func(b *build.Build) error { _, err := publishSettings(b); return err }},
	{"outVersion", func(b *build.Build) error { _, err := outVersion(b); return err }},
	{"configBool sdboot", func(b *build.Build) error { _, err := configBool(b, "image", "sdboot"); return err }},
	{"basicInfo", func(b *build.Build) error { _, err := basicInfo(context.Background(), b); return err }},
	{"build.Dir", func(b *build.Build) error {
		for _, d := range []string{"cachedir", "tmpdir", "outdir", "manifestdir", "contentdir"} {
			if _, err := b.Dir(d); err != nil {
				return err
			}
		}
		return nil
	}},
	{"NewPlan (its directories, and validate: every reader above)", func(b *build.Build) error {
		_, err := NewPlan(Options{Loaded: &config.Loaded{Full: b.Config, Public: b.Public}, SrcDir: b.SrcDir, LocalDir: b.LocalDir, DryRun: true})
		return err
	}},
}

// TestReadersReadOnlyDeclaredKeys runs every settings reader of lib/stage
// on the configuration of each shipped product (config/product/*.ini, as
// Load merges it with config/defaults.ini), through config.Reader: each
// must read it without an error, so none reads a key that KeysRead lacks.
// The localdir gives what a build's localdir gives: a cachedir, a trusted
// key, and a pull_url for the products that name no repository.
func TestReadersReadOnlyDeclaredKeys(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	products, err := filepath.Glob(filepath.Join(src, "config", "product", "*.ini"))
	if err != nil || len(products) == 0 {
		t.Fatalf("no shipped products in %s/config/product (%v)", src, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	for _, p := range products {
		product := strings.TrimSuffix(filepath.Base(p), ".ini")
		t.Run(product, func(t *testing.T) {
			local := t.TempDir()
			ini := "[build]\ncachedir = " + filepath.Join(local, "cache") + "\n"
			if text, _ := os.ReadFile(p); !strings.Contains(string(text), "pull_url =") {
				ini += "[ostree]\npull_url = http://127.0.0.1:1/repo\n"
			}
			files := map[string]string{"data/keys/test.asc": "", "config/product/" + product + ".ini": ini}
			for rel, text := range files {
				f := filepath.Join(local, rel)
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			l, err := config.Load(config.Options{SrcDir: src, LocalDir: local, SysConfDir: filepath.Join(local, "no-etc"),
				Product: product, Branch: "master", Arch: "amd64",
				Platform: "amd64", Personality: "base", BuildVersion: "260101-000000"})
			if err != nil {
				t.Fatal(err)
			}
			b := &build.Build{Config: l.Full, Public: l.Public, SrcDir: src, LocalDir: local}
			for _, r := range settingsReaders {
				if err := r.read(b); err != nil {
					t.Errorf("%s on product %s: %v", r.name, product, err)
				}
			}
		})
	}
}
