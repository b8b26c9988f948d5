// Package qcow2 is the "qcow2" artifact, selected by [image] qcow2 = true:
// the raw disk image converted by lib/output (qemu-img convert -c, with
// output.QCOW2Extra more virtual size) to <base>.qcow2, with its .sha256
// and, when a key is configured, its .asc.
//
// Import it for its side effect: init registers it with lib/artifact.
package qcow2

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/output"
)

// Name is the format's name.
const Name = "qcow2"

func init() { artifact.Register(Format{}) }

// Format is the qcow2 artifact.
type Format struct{}

func (Format) Name() string { return Name }

// Key is [image] qcow2, a boolean (default false).
func (Format) Key() (section, key string) { return "image", "qcow2" }

func (Format) Needs() artifact.Input { return artifact.InputRawDisk }

// Boot: not booted, it holds the bytes of the raw disk that the raw
// artifact boots.
func (Format) Boot() (artifact.Medium, string) {
	return artifact.MediumNone, "a qcow2 copy of the raw disk, which is booted"
}

// Build converts job.Disk to <base>.qcow2 in outdir and writes its
// checksum and, with a signer, signature files; one record, whose
// ExtractedSize is the raw disk's size. On an error none of these files
// is left in outdir.
func (f Format) Build(ctx context.Context, job artifact.Job) (recs []artifact.Record, err error) {
	st, err := os.Stat(job.Disk.Path)
	if err != nil {
		return nil, err
	}
	name := job.Base + ".qcow2"
	out := filepath.Join(job.OutDir, name)
	job.Log("converting %s to %s (qemu-img convert -c, +%d GiB virtual size)", job.Disk.Path, name, output.QCOW2Extra>>30)
	file, err := output.WriteQCOW2(ctx, job.Disk.Path, out)
	if err != nil {
		return nil, err
	}
	written := []string{out}
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	r := artifact.NewRecord(f, job, file.Name)
	r.Path = file.Path
	r.Size = file.Size
	r.SHA256 = file.SHA256
	r.ExtractedSize = st.Size()
	r.ChecksumFile = name + ".sha256"
	sumPath := filepath.Join(job.OutDir, r.ChecksumFile)
	if err := output.WriteFile(sumPath, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s  %s\n", r.SHA256, name)
		return err
	}); err != nil {
		return nil, err
	}
	written = append(written, sumPath)
	if job.Signer != nil {
		r.SignatureFile = name + ".asc"
		sigPath := filepath.Join(job.OutDir, r.SignatureFile)
		if err := output.SignFile(ctx, job.Signer, out, sigPath); err != nil {
			return nil, fmt.Errorf("signing %s: %w", out, err)
		}
		written = append(written, sigPath)
	}
	job.Log("wrote %s: %d MiB (%d MiB raw disk)%s", name, r.Size>>20, r.ExtractedSize>>20, signed(job))
	return []artifact.Record{r}, nil
}

func signed(job artifact.Job) string {
	if job.Signer == nil {
		return ", not signed"
	}
	return ", signed with " + job.Signer.String()
}
