// Package artifacttest has what the tests of artifact formats share: a
// small raw disk with a real GPT, and checks of records against the
// system's sha256sum.
package artifacttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/artifact"
)

// DiskSize is the size in bytes of the disk RawDisk makes.
const DiskSize = 16 << 20

// Need fails the test when a tool is not installed.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does)", tool)
		}
	}
}

// RawDisk writes dir/disk.raw, a sparse DiskSize-byte disk with a GPT
// (sfdisk) holding an EFI system partition and a root partition whose
// first MiB is text, and returns the artifact.Disk describing it.
func RawDisk(t testing.TB, dir string) artifact.Disk {
	t.Helper()
	Need(t, "sfdisk")
	p := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, DiskSize); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", "-q", p)
	cmd.Stdin = strings.NewReader("label: gpt\n" +
		"start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n" +
		"start=10240, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", p, err, out)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	text := []byte(strings.Repeat("eib artifact test: /usr/lib/os-release\n", 1<<20/39))
	if _, err := f.WriteAt(text, 10240*512); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return artifact.Disk{Path: p, Arch: "amd64", Platform: "pc", Firmwares: []string{"uefi"}}
}

// SHA256Sum returns the hex SHA-256 of path as sha256sum computes it.
func SHA256Sum(t testing.TB, path string) string {
	t.Helper()
	Need(t, "sha256sum")
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Fatalf("sha256sum %s: %v", path, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatalf("sha256sum %s: no output", path)
	}
	return f[0]
}

// CheckSums checks, with sha256sum -c run in dir, every checksum file
// the records name, and that each record's SHA256 is that of its file
// (BootPath for a record not in dir, as the uncompressed raw image).
func CheckSums(t testing.TB, dir string, recs []artifact.Record) {
	t.Helper()
	for _, r := range recs {
		file := r.Path
		if file == "" {
			file = r.BootPath
		}
		if file != "" {
			if got := SHA256Sum(t, file); got != r.SHA256 {
				t.Errorf("%s: record says sha256 %s, sha256sum says %s", r.File, r.SHA256, got)
			}
		}
		if r.ChecksumFile == "" || r.Path == "" {
			continue
		}
		cmd := exec.Command("sha256sum", "--strict", "-c", r.ChecksumFile)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c %s: %v\n%s", r.ChecksumFile, err, out)
		}
	}
}
