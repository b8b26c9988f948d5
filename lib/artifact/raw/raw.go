// Package raw is the "raw" artifact: the raw disk image compressed with
// [image] compression, written by lib/output in one pass over the disk as
// <base>.img.<gz|xz|zst> with its .sha256, .asc and .size files, plus the
// .sha256 and .asc of the uncompressed <base>.img (which stays in tmpdir
// and is what the check stage boots). It has no key: it is always built.
//
// Import it for its side effect: init registers it with lib/artifact.
package raw

import (
	"context"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/output"
)

// Name is the format's name.
const Name = "raw"

func init() { artifact.Register(Format{}) }

// Format is the raw artifact.
type Format struct{}

func (Format) Name() string { return Name }

// Key is ("", ""): the raw image is always built; its compression is
// [image] compression (Job.Compression).
func (Format) Key() (section, key string) { return "", "" }

func (Format) Needs() artifact.Input { return artifact.InputRawDisk }

// Boot: the uncompressed raw disk is booted as a virtio disk.
func (Format) Boot() (artifact.Medium, string) { return artifact.MediumDisk, "" }

// Build writes the outputs of job.Disk and returns two records: the
// compressed image (booted through BootPath, the uncompressed disk), then
// the uncompressed image, not in outdir (Path ""), with its checksum and
// signature files, not booted (the first record boots the same bytes).
func (f Format) Build(ctx context.Context, job artifact.Job) ([]artifact.Record, error) {
	res, err := output.Image{
		Raw:         job.Disk.Path,
		OutDir:      job.OutDir,
		Name:        job.Base + ".img",
		Compression: job.Compression,
		Signer:      job.Signer,
		Logf:        job.Logf,
		Terminal:    job.Terminal,
		Progress:    job.Progress,
	}.Write(ctx)
	if err != nil {
		return nil, err
	}
	comp := artifact.NewRecord(f, job, res.Compressed.Name)
	comp.Path = res.Compressed.Path
	comp.Compression = string(job.Compression)
	comp.Size = res.Compressed.Size
	comp.ExtractedSize = res.Raw.Size
	comp.SHA256 = res.Compressed.SHA256
	comp.ChecksumFile = res.Compressed.ChecksumFile
	comp.SignatureFile = res.Compressed.SignatureFile
	comp.SizeFile = res.SizeFile

	raw := artifact.NewRecord(f, job, res.Raw.Name)
	raw.Path = ""
	raw.Size = res.Raw.Size
	raw.ExtractedSize = res.Raw.Size
	raw.SHA256 = res.Raw.SHA256
	raw.ChecksumFile = res.Raw.ChecksumFile
	raw.SignatureFile = res.Raw.SignatureFile
	raw.Boot, raw.BootReason, raw.BootPath = artifact.MediumNone, "booted through the compressed image's record ("+comp.File+")", ""
	return []artifact.Record{comp, raw}, nil
}
