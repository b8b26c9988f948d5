package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/lib/sign"
)

// publishStage copies the masked build log into outdir as
// <outversion>.build.txt, writes SHA256SUMS of the files the build
// recorded (b.Artifacts: what its stages and hooks wrote into outdir) and
// signs it with the images' key; any other file in outdir fails it
// (releaseFiles). It then publishes the release to every configured
// destination (package publish), then runs the publish hook group
// (site-specific destinations). A dry run skips it entirely.
type publishStage struct {
	// out are the image stage's output settings the plan resolved
	// (nil when the image stage does not run: read [build] now).
	out *outputSettings
}

func (publishStage) Name() string { return "publish" }

func (st publishStage) Run(ctx context.Context, b *build.Build) error {
	if b.DryRun {
		b.Log.Printf("dry run: not publishing")
		return nil
	}
	out, err := releaseSettings(b, st.out)
	if err != nil {
		return err
	}
	dests, err := destinations(b)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out.outdir, 0o755); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	buildLog := filepath.Join(out.outdir, out.outversion+".build.txt")
	if err := output.CopyFile(filepath.Join(out.tmpdir, "build.txt"), buildLog); err != nil {
		return fmt.Errorf("publish: copying the build log: %w", err)
	}
	if err := recordFile(b, buildLog, formatBuildLog); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	signer, err := sign.New(out.signing, b.Log.Printf)
	if err != nil {
		return signingErr(b, err)
	}
	// Only what the build recorded is listed, signed and published; any
	// other file in outdir fails the build before anything is signed.
	files, err := releaseFiles(b.Artifacts, out.outdir)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	known := map[string]string{}
	for _, r := range b.Artifacts {
		if r.Path != "" && r.SHA256 != "" && filepath.Dir(r.Path) == filepath.Clean(out.outdir) {
			known[r.File] = r.SHA256
		}
	}
	n, err := publish.WriteSumsOf(ctx, out.outdir, files, known, signer)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	b.Log.Printf("%s lists %d files", filepath.Join(out.outdir, publish.SumsFile), n)
	for _, d := range dests {
		b.Log.Printf("publishing %s to %s", out.outversion, d)
		if err := d.Publish(ctx, out.outdir, out.outversion); err != nil {
			return fmt.Errorf("publishing to %s: %w", d, err)
		}
	}
	return b.Hooks.RunGroup(ctx, b, "publish", "")
}

// releaseSettings are the settings of the release in outdir: the [build]
// directories and the images' signing key: planned, the image stage's
// settings the plan resolved, else read now (no signing key without an
// [image] section).
func releaseSettings(b *build.Build, planned *outputSettings) (outputSettings, error) {
	if s := planned; s != nil {
		return *s, nil
	}
	var s outputSettings
	r := keyReader{b: b}
	s.outdir = r.str("build", "outdir")
	s.outversion = r.str("build", "outversion")
	s.tmpdir = r.str("build", "tmpdir")
	if b.Config != nil && b.Config.HasSection("image") {
		s.signing = sign.ConfigOptions(r.str)
	}
	if r.err == nil && (s.outdir == "" || s.outversion == "") {
		return s, errors.New("[build] outdir and outversion must be set")
	}
	return s, r.err
}

// publishSettings reads the [publish] keys of the destinations.
func publishSettings(b *build.Build) (publish.Settings, error) {
	r := keyReader{b: b}
	s := publish.Settings{
		Dir:            r.opt("publish", "dir"),
		RsyncDest:      r.opt("publish", "rsync_dest"),
		RsyncOptions:   strings.Fields(r.opt("publish", "rsync_options")),
		SSHKey:         r.opt("publish", "ssh_key"),
		SSHKnownHosts:  r.opt("publish", "ssh_known_hosts"),
		SSHPort:        r.opt("publish", "ssh_port"),
		S3Bucket:       r.opt("publish", "s3_bucket"),
		S3Endpoint:     r.opt("publish", "s3_endpoint"),
		S3Prefix:       r.opt("publish", "s3_prefix"),
		S3Region:       r.opt("publish", "s3_region"),
		AWSCredentials: r.opt("publish", "aws_credentials"),
	}
	if b.Log != nil {
		s.Logf = b.Log.Printf
	}
	return s, r.err
}

// opt is str of a key that may be missing altogether ("" then), as in a
// configuration without eib's defaults.
func (r *keyReader) opt(section, key string) string {
	if r.b.Config == nil || !r.b.Config.Has(section, key) {
		return ""
	}
	return r.str(section, key)
}

// destinations are the configured destinations; a wrong one fails before
// anything is published.
func destinations(b *build.Build) ([]publish.Destination, error) {
	s, err := publishSettings(b)
	if err != nil {
		return nil, err
	}
	ds, errs := publish.Destinations(s)
	return ds, errors.Join(errs...)
}
