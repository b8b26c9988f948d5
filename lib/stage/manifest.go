package stage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/manifest"
	"github.com/eib-builder/eib/lib/ostree"
)

// manifestStage makes eib's own manifest fragments from the results of the
// earlier stages, runs the manifest hook group (hooks add fragments to
// manifestdir), and merges eib's fragments, then every file of manifestdir,
// as EIB's stages/eib_manifest and helpers/assemble-manifest do (see
// package manifest), into outdir/<outversion>.manifest.json. eib writes
// into manifestdir only flatpak.json (the image stage, as EIB's
// 70-flatpak-manifest hook): a hook's fragment (EIB's 70-ostree-manifest
// writes ostree.json) is never replaced by one of eib's, and wherever a
// later fragment replaces a value, the build log says so.
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
	ov, err := outVersion(b)
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
	own := map[string]any{
		manifest.BasicInfoFile: info,
		manifest.ImagesFile:    manifest.Images(manifestRecords(b.Artifacts), fullImage(b.Artifacts, ov)),
		manifest.BootCheckFile: manifest.BootCheck(b.Boots),
	}
	// A buildscript without the ostree stage built no commit to describe.
	if b.OSTree.Commit != "" {
		own[manifest.OSTreeFile] = manifest.OSTreeFragment(b.OSTree, ostreeExtra(ctx, b))
	}
	// The plan hash of what was built: `eib matrix --changed` finds it in
	// the published manifests.
	if b.OSTree.Commit != "" {
		in, err := HashInputs(ctx, b, b.OSTree.Commit)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		own[manifest.PlanHashFile] = manifest.PlanHash(in)
	}
	if err := runHooks(ctx, b, "manifest", ""); err != nil {
		return err
	}
	// After the hooks, so that the manifest hooks' own timings are in it.
	own[manifest.TimingsFile] = manifest.Timings(b.Timings)
	names := make([]string, 0, len(own))
	for name := range own {
		names = append(names, name)
	}
	sort.Strings(names)
	frags := make([]manifest.Fragment, 0, len(own))
	for _, name := range names {
		f, err := manifest.Own(name, own[name])
		if err != nil {
			return err
		}
		frags = append(frags, f)
	}
	m, err := manifest.MergeDir(frags, dir)
	if err != nil {
		return err
	}
	for _, c := range m.Conflicts() {
		b.Log.Printf("%s", c)
	}
	out := filepath.Join(outdir, ov+manifest.Suffix)
	if err := manifest.Write(m, out, privateValues(b)); err != nil {
		return fmt.Errorf("%w (fragments in %s)", err, dir)
	}
	b.Log.Printf("wrote %s", out)
	return recordFile(b, out, formatManifest)
}

// manifestRecords are the records the images fragment lists: those of the
// artifact formats and the plain files of the image stage
// (<outversion>.config.ini, .ostree.txt), as EIB's images fragment; not
// the files of hooks, the manifest itself or the build log.
func manifestRecords(recs []artifact.Record) []artifact.Record {
	var out []artifact.Record
	for _, r := range recs {
		switch r.Format {
		case formatHook, formatManifest, formatBuildLog:
			continue
		}
		out = append(out, r)
	}
	return out
}

// fullImage is the file name of the compressed main disk image
// (<outversion>.img.<compression>), EIB's images.full; "" when the image
// stage made none.
func fullImage(outputs []artifact.Record, ov string) string {
	for _, o := range outputs {
		if o.Path != "" && o.Compression != "" && o.File == ov+".img."+o.Compression {
			return o.File
		}
	}
	return ""
}

// ostreeExtra reads what EIB's 70-ostree-manifest hook reads for the ostree
// fragment: VERSION of the deployment's /etc/os-release, the commit's date
// and the deployed remote's collection-id. Each is left out (the commit's
// version metadata, no date, null) when it cannot be read, with a log line:
// the sysroot is there only when the image stage ran in this build.
func ostreeExtra(ctx context.Context, b *build.Build) manifest.OSTreeExtra {
	var x manifest.OSTreeExtra
	if b.OSTree.RepoDir != "" {
		show, err := ostree.Open(b.OSTree.RepoDir).Show(ctx, b.OSTree.Commit)
		if sec := showDate(show); err != nil || sec == 0 {
			b.Log.Printf("no ostree.date: cannot read the date of commit %s in %s (%v)", b.OSTree.Commit, b.OSTree.RepoDir, err)
		} else {
			x.Date = time.Unix(sec, 0)
		}
	}
	if b.Deployment.Path == "" {
		return x
	}
	if p, err := inRoot(b.Deployment.Path, "/etc/os-release"); err != nil {
		b.Log.Printf("/etc/os-release of %s: %v; ostree.version is the commit's version metadata", b.Deployment.Path, err)
	} else if data, err := os.ReadFile(p); err != nil {
		b.Log.Printf("/etc/os-release of the deployment: %v; ostree.version is the commit's version metadata", err)
	} else {
		x.OSVersion = osReleaseVersion(string(data))
	}
	repo := ostree.Open(filepath.Join(b.Deployment.Sysroot, "ostree", "repo"))
	if id, err := repo.ConfigGet(ctx, "remote \""+b.OSTree.Remote+"\".collection-id"); err == nil {
		x.CollectionID = id
	}
	return x
}

// osReleaseVersion returns VERSION of an os-release file, without the
// quotes around it, as EIB's 70-ostree-manifest reads it.
func osReleaseVersion(text string) string {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || k != "VERSION" {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		return v
	}
	return ""
}

// basicInfo reads the public configuration only: the manifest is published,
// so no value of a private file may reach it.
func basicInfo(ctx context.Context, b *build.Build) (manifest.BasicInfo, error) {
	cfg := b.Public
	if cfg == nil {
		cfg = b.Config
	}
	r := cfg.Read()
	get := func(section, key string) (string, error) {
		v := optional(r, section, key, r.String)
		if err := r.Err(); err != nil {
			return "", fmt.Errorf("manifest: %w", err)
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
	info.Builder = Builder(ctx, b.SrcDir)
	info.BuilderCommit = info.Builder.Commit
	return info, nil
}

// Builder identifies this eib (the manifest's builder, eib --version): the module version it was built as and the
// git commit of its source tree, when the tree is a git checkout.
func Builder(ctx context.Context, srcDir string) manifest.Builder {
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
// changed (config.PrivateValues: the one definition the build log masks).
func privateValues(b *build.Build) []string {
	if b.Config == nil || b.Public == nil {
		return nil
	}
	return config.PrivateStrings(config.PrivateValues(b.Config, b.Public))
}
