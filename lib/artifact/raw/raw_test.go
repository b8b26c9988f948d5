package raw_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/artifact/artifacttest"
	"github.com/eib-builder/eib/lib/artifact/raw"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
)

func TestRegistered(t *testing.T) {
	f, ok := artifact.Lookup("raw")
	if !ok {
		t.Fatal(`"raw" is not registered`)
	}
	if s, k := f.Key(); s != "" || k != "" {
		t.Errorf("raw has key [%s] %s; it is always built", s, k)
	}
	if f.Needs() != artifact.InputRawDisk {
		t.Errorf("raw needs %q", f.Needs())
	}
	if m, _ := f.Boot(); m != artifact.MediumDisk {
		t.Errorf("raw boots as %q", m)
	}
}

var decompress = map[output.Compression][]string{
	output.Gzip: {"gzip", "-dc"},
	output.XZ:   {"xz", "-dc"},
	output.Zstd: {"zstd", "-dcq"},
}

func TestBuildSignedRecords(t *testing.T) {
	for _, comp := range output.Compressions {
		t.Run(string(comp), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			disk := artifacttest.RawDisk(t, dir)
			disk.Name = "disk"
			key := signtest.NewKey(t, dir, "")
			signer, err := sign.LoadKey(key.Secret, "", "")
			if err != nil {
				t.Fatal(err)
			}
			job := artifact.Job{Disk: disk, OutDir: out, Base: "os-1.0.disk", Compression: comp, Signer: signer, Logf: t.Logf}
			recs, err := raw.Format{}.Build(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2: %+v", len(recs), recs)
			}
			c, r := recs[0], recs[1]
			name := "os-1.0.disk.img." + string(comp)
			if c.File != name || c.Path != filepath.Join(out, name) || c.Format != "raw" || c.Disk != "disk" || c.Compression != string(comp) {
				t.Errorf("compressed record: %+v", c)
			}
			if c.ExtractedSize != artifacttest.DiskSize || r.Size != artifacttest.DiskSize || r.ExtractedSize != artifacttest.DiskSize {
				t.Errorf("sizes: compressed record %d/%d, raw record %d/%d, disk %d", c.Size, c.ExtractedSize, r.Size, r.ExtractedSize, artifacttest.DiskSize)
			}
			if st, err := os.Stat(c.Path); err != nil || st.Size() != c.Size {
				t.Errorf("%s: %v, size %v, record says %d", c.Path, err, st, c.Size)
			}
			if c.Arch != "amd64" || c.Platform != "pc" || strings.Join(c.Firmwares, ",") != "uefi" {
				t.Errorf("arch/platform/firmwares not carried: %+v", c)
			}
			// The compressed record boots the uncompressed disk; the
			// raw one is not booted again.
			if c.Boot != artifact.MediumDisk || c.BootPath != disk.Path {
				t.Errorf("compressed record boots %q %q, want disk %q", c.Boot, c.BootPath, disk.Path)
			}
			if r.File != "os-1.0.disk.img" || r.Path != "" || r.Boot != artifact.MediumNone || r.BootReason == "" {
				t.Errorf("raw record: %+v", r)
			}
			if got := artifact.ToBoot(recs); len(got) != 1 || got[0].File != name {
				t.Errorf("ToBoot = %+v", got)
			}
			artifacttest.CheckSums(t, out, recs[:1])
			if got := artifacttest.SHA256Sum(t, disk.Path); got != r.SHA256 {
				t.Errorf("raw record sha256 %s, sha256sum of the disk %s", r.SHA256, got)
			}
			b, err := os.ReadFile(filepath.Join(out, r.ChecksumFile))
			if err != nil || string(b) != r.SHA256+"  os-1.0.disk.img\n" {
				t.Errorf("%s: %q, %v", r.ChecksumFile, b, err)
			}
			if b, err := os.ReadFile(filepath.Join(out, c.SizeFile)); err != nil || string(b) != strconv.Itoa(artifacttest.DiskSize)+"\n" {
				t.Errorf("%s: %q, %v", c.SizeFile, b, err)
			}
			if c.SignatureFile != name+".asc" || r.SignatureFile != "os-1.0.disk.img.asc" {
				t.Fatalf("signature files %q %q", c.SignatureFile, r.SignatureFile)
			}
			if err := signtest.Verify(t, key.Public, c.Path, filepath.Join(out, c.SignatureFile)); err != nil {
				t.Errorf("signature of %s: %v", c.File, err)
			}
			if err := signtest.Verify(t, key.Public, disk.Path, filepath.Join(out, r.SignatureFile)); err != nil {
				t.Errorf("signature of the raw image: %v", err)
			}
			// A signature of the wrong file must not verify (the check
			// above can fail).
			if err := signtest.Verify(t, key.Public, disk.Path, filepath.Join(out, c.SignatureFile)); err == nil {
				t.Error("the compressed image's signature verifies the raw image")
			}
			// The compressed file holds the disk.
			artifacttest.Need(t, decompress[comp][0])
			got, err := exec.Command(decompress[comp][0], append(decompress[comp][1:], c.Path)...).Output()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(disk.Path)
			if !bytes.Equal(got, want) {
				t.Errorf("%s does not decompress to the disk (%d bytes, want %d)", c.File, len(got), len(want))
			}
			// Every file the records name is in outdir, and nothing else.
			var names []string
			for _, rec := range recs {
				names = append(names, rec.Files()...)
			}
			entries, _ := os.ReadDir(out)
			var have []string
			for _, e := range entries {
				have = append(have, e.Name())
			}
			if strings.Join(sorted(names), " ") != strings.Join(have, " ") {
				t.Errorf("outdir holds %v, records name %v", have, sorted(names))
			}
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestBuildUnsigned(t *testing.T) {
	dir := t.TempDir()
	disk := artifacttest.RawDisk(t, dir)
	recs, err := raw.Format{}.Build(context.Background(), artifact.Job{Disk: disk, OutDir: dir, Base: "os-1.0", Compression: output.Zstd})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.SignatureFile != "" {
			t.Errorf("%s: signature file %s without a signer", r.File, r.SignatureFile)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "os-1.0.img.zst.asc")); err == nil {
		t.Error("os-1.0.img.zst.asc written without a signer")
	}
	artifacttest.CheckSums(t, dir, recs[:1])
}

func TestBuildErrorNamesTheDisk(t *testing.T) {
	dir := t.TempDir()
	_, err := raw.Format{}.Build(context.Background(), artifact.Job{Disk: artifact.Disk{Path: filepath.Join(dir, "missing.raw")}, OutDir: dir, Base: "os", Compression: output.Gzip})
	if err == nil || !strings.Contains(err.Error(), "missing.raw") {
		t.Fatalf("error %v does not name the missing disk", err)
	}
	_, err = raw.Format{}.Build(context.Background(), artifact.Job{Disk: artifacttest.RawDisk(t, dir), OutDir: dir, Base: "os", Compression: "lz4"})
	if err == nil || !strings.Contains(err.Error(), "lz4") {
		t.Fatalf("error %v does not name the bad compression", err)
	}
}
