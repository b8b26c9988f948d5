package stage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/manifest"
)

func init() { Register(manifestStage{}) }

// manifestStage writes eib's manifest fragments from the results of the
// earlier stages, runs the manifest hook group (hooks add fragments to
// manifestdir), and merges every fragment into outdir/<outversion>.manifest.json.
type manifestStage struct{}

func (manifestStage) Name() string { return "manifest" }

func (manifestStage) Run(ctx context.Context, b *build.Build) error {
	dir, err := b.Dir("manifestdir")
	if err != nil {
		return err
	}
	outdir, err := b.Dir("outdir")
	if err != nil {
		return err
	}
	ov, err := b.Get("build", "outversion")
	if err != nil {
		return err
	}
	for _, d := range []string{dir, outdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	info, err := basicInfo(ctx, b)
	if err != nil {
		return err
	}
	fragments := map[string]any{
		manifest.BasicInfoFile: info,
		manifest.ImagesFile:    manifest.Images(b.Outputs),
		manifest.BootCheckFile: manifest.BootCheck(b.Boots),
	}
	// A buildscript without the ostree stage built no commit to describe.
	if b.OSTree.Commit != "" {
		fragments[manifest.OSTreeFile] = manifest.OSTreeFragment(b.OSTree)
	}
	for name, v := range fragments {
		if err := manifest.WriteFragment(dir, name, v); err != nil {
			return err
		}
	}
	if b.Hooks != nil {
		if err := b.Hooks.RunGroup(ctx, b, "manifest", ""); err != nil {
			return err
		}
	}
	// After the hooks, so that the manifest hooks' own timings are in it.
	if err := manifest.WriteFragment(dir, manifest.TimingsFile, manifest.Timings(b.Timings)); err != nil {
		return err
	}
	out := filepath.Join(outdir, ov+manifest.Suffix)
	if err := manifest.WriteDir(dir, out, privateValues(b)); err != nil {
		return err
	}
	if b.Log != nil {
		b.Log.Printf("manifest: wrote %s", out)
	}
	return nil
}

// basicInfo reads the public configuration only: the manifest is published,
// so no value of a private file may reach it.
func basicInfo(ctx context.Context, b *build.Build) (manifest.BasicInfo, error) {
	cfg := b.Public
	if cfg == nil {
		cfg = b.Config
	}
	get := func(section, key string) (string, error) {
		if !cfg.Has(section, key) {
			return "", nil
		}
		v, err := cfg.Get(section, key)
		if err != nil {
			return "", fmt.Errorf("manifest: [%s] %s: %w", section, key, err)
		}
		return v, nil
	}
	var info manifest.BasicInfo
	for _, f := range []struct {
		section, key string
		dst          *string
	}{
		{"build", "product", &info.Product},
		{"image", "product_name", &info.ProductName},
		{"build", "branch", &info.Branch},
		{"build", "arch", &info.Arch},
		{"build", "platform", &info.Platform},
		{"build", "personality", &info.Personality},
		{"build", "build_version", &info.BuildVersion},
	} {
		v, err := get(f.section, f.key)
		if err != nil {
			return info, err
		}
		*f.dst = v
	}
	info.Builder = builder(ctx, b.SrcDir)
	return info, nil
}

// builder identifies this eib: the module version it was built as and the
// git commit of its source tree, when the tree is a git checkout.
func builder(ctx context.Context, srcDir string) manifest.Builder {
	bi := manifest.Builder{Name: "eib", Version: "(devel)"}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		bi.Version = info.Main.Version
	}
	if srcDir != "" {
		out, err := exec.CommandContext(ctx, "git", "-C", srcDir, "rev-parse", "HEAD").Output()
		if err == nil {
			bi.Commit = strings.TrimSpace(string(out))
		}
	}
	return bi
}

// privateValues are the values that the private configuration files set or
// changed: every key of the full configuration that the public one lacks or
// has with another value. Values shorter than 4 characters (yes, 1, ...)
// are left out: they would match everywhere.
func privateValues(b *build.Build) []string {
	if b.Config == nil || b.Public == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, section := range b.Config.Sections() {
		for _, key := range b.Config.Options(section) {
			v, err := b.Config.Get(section, key)
			if err != nil || len(v) < 4 || seen[v] {
				continue
			}
			if b.Public.Has(section, key) {
				if pv, err := b.Public.Get(section, key); err == nil && pv == v {
					continue
				}
			}
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
