package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
)

// outputSettings are the [build] and [image] keys of the image outputs.
type outputSettings struct {
	outdir, outversion, tmpdir string
	compression                output.Compression
	qcow2                      bool
	signing                    sign.Options
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

// writeImageOutputs writes the outputs of one raw disk image into outdir
// (compressed image, .size, .sha256, .asc of it and of the raw image,
// optional qcow2), and once per build <outversion>.ostree.txt and
// <outversion>.config.ini, and appends them all to b.Outputs.
// s are the settings the plan resolved (readOutputSettings).
func writeImageOutputs(ctx context.Context, b *build.Build, img build.Image, s outputSettings) error {
	signer, err := sign.New(s.signing, b.Log.Printf)
	if err != nil {
		return signingErr(b, err)
	}
	if err := os.MkdirAll(s.outdir, 0o755); err != nil {
		return fmt.Errorf("image outputs: %w", err)
	}
	name := s.outversion + ".img"
	if img.Name != "" {
		name = s.outversion + "." + img.Name + ".img"
	}
	var term io.Writer
	if ostree.IsTerminal(os.Stdout) {
		term = os.Stdout
	}
	res, err := output.Image{
		Raw:         img.Path,
		OutDir:      s.outdir,
		Name:        name,
		Compression: s.compression,
		Signer:      signer,
		Logf:        b.Log.Printf,
		Terminal:    term,
	}.Write(ctx)
	if err != nil {
		return err
	}
	b.Outputs = append(b.Outputs,
		build.Output{
			File:           res.Compressed.Name,
			Path:           res.Compressed.Path,
			Compression:    string(s.compression),
			CompressedSize: res.Compressed.Size,
			ExtractedSize:  res.Raw.Size,
			SHA256:         res.Compressed.SHA256,
			ChecksumFile:   res.Compressed.ChecksumFile,
			SignatureFile:  res.Compressed.SignatureFile,
		},
		// The raw image is not in outdir; its checksum and signature
		// are (Path "" says so).
		build.Output{
			File:          res.Raw.Name,
			ExtractedSize: res.Raw.Size,
			SHA256:        res.Raw.SHA256,
			ChecksumFile:  res.Raw.ChecksumFile,
			SignatureFile: res.Raw.SignatureFile,
		})
	if s.qcow2 {
		q := strings.TrimSuffix(name, ".img") + ".qcow2"
		b.Log.Printf("converting %s to %s (qemu-img convert -c, +10 GiB virtual size)", img.Path, q)
		f, err := output.WriteQCOW2(ctx, img.Path, filepath.Join(s.outdir, q))
		if err != nil {
			return err
		}
		b.Outputs = append(b.Outputs, build.Output{File: f.Name, Path: f.Path, CompressedSize: f.Size, ExtractedSize: res.Raw.Size, SHA256: f.SHA256})
	}
	return writeBuildFiles(b, s)
}

// writeBuildFiles writes <outversion>.ostree.txt (a copy of
// ${tmpdir}/ostree.txt, when there is one) and <outversion>.config.ini
// (the public configuration) once per build.
func writeBuildFiles(b *build.Build, s outputSettings) error {
	for _, o := range b.Outputs {
		if o.File == s.outversion+".config.ini" {
			return nil
		}
	}
	src := filepath.Join(s.tmpdir, "ostree.txt")
	if _, err := os.Stat(src); err == nil {
		dst := filepath.Join(s.outdir, s.outversion+".ostree.txt")
		if err := output.CopyFile(src, dst); err != nil {
			return fmt.Errorf("image outputs: %w", err)
		}
		if err := addPlainOutput(b, dst); err != nil {
			return err
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
	return addPlainOutput(b, dst)
}

func addPlainOutput(b *build.Build, path string) error {
	sum, size, err := output.SHA256File(path)
	if err != nil {
		return fmt.Errorf("image outputs: %w", err)
	}
	b.Outputs = append(b.Outputs, build.Output{File: filepath.Base(path), Path: path, CompressedSize: size, ExtractedSize: size, SHA256: sum})
	return nil
}
