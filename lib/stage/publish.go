package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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
	r := b.Config.Read()
	s.outdir = r.Path("build", "outdir")
	s.outversion = r.String("build", "outversion")
	s.tmpdir = r.Path("build", "tmpdir")
	if b.Config != nil && b.Config.HasSection("image") {
		s.signing = sign.ConfigOptions(r)
	}
	if r.Err() == nil && (s.outdir == "" || s.outversion == "") {
		return s, errors.New("[build] outdir and outversion must be set")
	}
	return s, r.Err()
}

// publishSettings reads the [publish] keys of the destinations; a key the
// configuration lacks (one made without eib's defaults) is empty.
func publishSettings(b *build.Build) (publish.Settings, error) {
	r := b.Config.Read()
	s := publish.Settings{
		Dir:            optional(r, "publish", "dir", r.Path),
		RsyncDest:      optional(r, "publish", "rsync_dest", r.String),
		RsyncOptions:   optional(r, "publish", "rsync_options", r.List),
		SSHKey:         optional(r, "publish", "ssh_key", r.Path),
		SSHKnownHosts:  optional(r, "publish", "ssh_known_hosts", r.Path),
		S3Bucket:       optional(r, "publish", "s3_bucket", r.String),
		S3Endpoint:     optional(r, "publish", "s3_endpoint", r.URL),
		S3Prefix:       optional(r, "publish", "s3_prefix", r.String),
		S3Region:       optional(r, "publish", "s3_region", r.String),
		AWSCredentials: optional(r, "publish", "aws_credentials", r.Path),
	}
	if port := optional(r, "publish", "ssh_port", r.Int); port < 0 || port > 65535 {
		r.Reject("publish", "ssh_port", "%d: not a TCP port (1 to 65535)", port)
	} else if port != 0 {
		s.SSHPort = strconv.FormatInt(port, 10)
	}
	if b.Log != nil {
		s.Logf = b.Log.Printf
	}
	return s, r.Err()
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
