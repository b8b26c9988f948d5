package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/eib-builder/eib/lib/artifact"
	// The formats eib builds register themselves.
	_ "github.com/eib-builder/eib/lib/artifact/qcow2"
	_ "github.com/eib-builder/eib/lib/artifact/raw"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
)

// outputSettings are the [build] and [image] keys of the image outputs.
type outputSettings struct {
	outdir, outversion, tmpdir string
	compression                output.Compression
	qcow2                      bool
	signing                    sign.Options
	// formats are the artifact formats to build, in build order
	// (artifact.Selected: raw, and those whose [section] key is true).
	formats []artifact.Format
}

func readOutputSettings(b *build.Build) (outputSettings, error) {
	var s outputSettings
	r := b.Config.Read()
	s.outdir = r.Path("build", "outdir")
	s.outversion = r.String("build", "outversion")
	s.tmpdir = r.Path("build", "tmpdir")
	comp := r.Enum("image", "compression")
	s.signing = sign.ConfigOptions(r)
	s.qcow2 = r.Bool("image", "qcow2")
	if r.Err() == nil {
		var err error
		if s.compression, err = output.ParseCompression(comp); err != nil {
			r.Reject("image", "compression", "%v", err)
		}
	}
	if err := r.Err(); err != nil {
		return s, err
	}
	var err error
	if s.formats, err = artifact.Selected(func(section, key string) (bool, error) {
		r := b.Config.Read()
		on := r.Bool(section, key)
		return on, r.Err()
	}); err != nil {
		return s, err
	}
	if s.outdir == "" || s.outversion == "" {
		return s, errors.New("[build] outdir and outversion must be set")
	}
	return s, nil
}

// signingErr names the [image] key a signing error is about (the
// sign.Setting of a *sign.SettingError; signing_key otherwise), located
// where it was set.
func signingErr(b *build.Build, err error) error {
	key := "signing_key"
	var se *sign.SettingError
	if errors.As(err, &se) {
		key = se.Setting.ConfigKey()
	}
	return keyErrorf(b, "image", key, "[image] %s: %w", key, err)
}

// writeImageOutputs builds the selected artifact formats (s.formats,
// artifact.BuildAll) of one raw disk image into outdir (the raw format:
// compressed image, .size, .sha256, .asc of it and of the raw image; the
// qcow2 format with [image] qcow2 ...), and once per build
// <outversion>.ostree.txt and <outversion>.config.ini, and records them
// all in b.Artifacts. s are the settings the plan resolved
// (readOutputSettings).
func writeImageOutputs(ctx context.Context, b *build.Build, img build.Image, s outputSettings) error {
	signer, err := sign.New(s.signing, b.Log.Printf)
	if err != nil {
		return signingErr(b, err)
	}
	if err := os.MkdirAll(s.outdir, 0o755); err != nil {
		return fmt.Errorf("image outputs: %w", err)
	}
	base := s.outversion
	if img.Name != "" {
		base = s.outversion + "." + img.Name
	}
	recs, err := artifact.BuildAll(ctx, s.formats, artifact.Job{
		Disk: artifact.Disk{Name: img.Name, Path: img.Path, Arch: img.Arch, Platform: img.Platform,
			Firmwares: slices.Clone(img.Firmware)},
		Sysroot:     b.Deployment.Sysroot,
		OutDir:      s.outdir,
		Base:        base,
		Compression: s.compression,
		Signer:      signer,
		Logf:        b.Log.Printf,
		Progress:    buildTerminal(b),
	})
	// What was built before an error is in outdir: record it.
	record(b, recs...)
	if err != nil {
		return err
	}
	return writeBuildFiles(b, s)
}

// writeBuildFiles writes <outversion>.ostree.txt (a copy of
// ${tmpdir}/ostree.txt, when there is one) and <outversion>.config.ini
// (the public configuration) once per build.
func writeBuildFiles(b *build.Build, s outputSettings) error {
	for _, r := range b.Artifacts {
		if r.File == s.outversion+".config.ini" && r.Path != "" {
			return nil
		}
	}
	src := filepath.Join(s.tmpdir, "ostree.txt")
	if _, err := os.Stat(src); err == nil {
		dst := filepath.Join(s.outdir, s.outversion+".ostree.txt")
		if err := output.CopyFile(src, dst); err != nil {
			return fmt.Errorf("image outputs: %w", err)
		}
		if err := recordFile(b, dst, ""); err != nil {
			return fmt.Errorf("image outputs: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image outputs: %w", err)
	}
	if b.Public == nil {
		return errors.New("image outputs: no public configuration to write")
	}
	dst := filepath.Join(s.outdir, s.outversion+".config.ini")
	if err := output.WriteFile(dst, b.Public.Write); err != nil {
		return fmt.Errorf("image outputs: %w", err)
	}
	if err := recordFile(b, dst, ""); err != nil {
		return fmt.Errorf("image outputs: %w", err)
	}
	return nil
}
