package qcow2_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/artifact/artifacttest"
	"github.com/eib-builder/eib/lib/artifact/qcow2"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
)

func TestRegisteredUnderImageQcow2(t *testing.T) {
	f, ok := artifact.Lookup("qcow2")
	if !ok {
		t.Fatal(`"qcow2" is not registered`)
	}
	if s, k := f.Key(); s != "image" || k != "qcow2" {
		t.Errorf("key [%s] %s, want [image] qcow2", s, k)
	}
	if m, reason := f.Boot(); m != artifact.MediumNone || reason == "" {
		t.Errorf("boot %q %q: want none with a reason", m, reason)
	}
	on := func(section, key string) (bool, error) { return section == "image" && key == "qcow2", nil }
	off := func(section, key string) (bool, error) { return false, nil }
	for _, c := range []struct {
		get  func(string, string) (bool, error)
		want bool
	}{{on, true}, {off, false}} {
		fs, err := artifact.Selected(c.get)
		if err != nil {
			t.Fatal(err)
		}
		has := false
		for _, f := range fs {
			has = has || f.Name() == "qcow2"
		}
		if has != c.want {
			t.Errorf("selected %v with the key %v", names(fs), c.want)
		}
	}
}

func names(fs []artifact.Format) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name())
	}
	return out
}

type qemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

func TestBuild(t *testing.T) {
	artifacttest.Need(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	disk := artifacttest.RawDisk(t, dir)
	key := signtest.NewKey(t, dir, "")
	signer, err := sign.LoadKey(key.Secret, "", "")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := qcow2.Format{}.Build(context.Background(), artifact.Job{Disk: disk, OutDir: out, Base: "os-1.0", Signer: signer, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("records %+v, want 1", recs)
	}
	r := recs[0]
	if r.Format != "qcow2" || r.File != "os-1.0.qcow2" || r.Path != filepath.Join(out, "os-1.0.qcow2") || r.ExtractedSize != artifacttest.DiskSize || r.Boot != artifact.MediumNone || r.BootPath != "" || r.Arch != "amd64" {
		t.Errorf("record %+v", r)
	}
	if st, err := os.Stat(r.Path); err != nil || st.Size() != r.Size {
		t.Errorf("%s: %v; record size %d", r.Path, err, r.Size)
	}
	artifacttest.CheckSums(t, out, recs)
	if err := signtest.Verify(t, key.Public, r.Path, filepath.Join(out, r.SignatureFile)); err != nil {
		t.Errorf("signature of %s: %v", r.File, err)
	}
	if err := signtest.Verify(t, key.Public, disk.Path, filepath.Join(out, r.SignatureFile)); err == nil {
		t.Error("the qcow2 signature verifies another file")
	}
	b, err := exec.Command("qemu-img", "info", "--output=json", r.Path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var info qemuInfo
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.VirtualSize != artifacttest.DiskSize+output.QCOW2Extra {
		t.Errorf("qemu-img info: format %q, virtual size %d; want qcow2, %d", info.Format, info.VirtualSize, artifacttest.DiskSize+output.QCOW2Extra)
	}
	// Same bytes as the disk (the grown tail reads as zeros).
	if o, err := exec.Command("qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", disk.Path, r.Path).CombinedOutput(); err != nil {
		t.Errorf("qemu-img compare: %v\n%s", err, o)
	}
	if got := artifact.ToBoot(recs); len(got) != 0 {
		t.Errorf("qcow2 records to boot: %+v", got)
	}
}

// failingSigner fails when the signature is started.
type failingSigner struct{}

func (failingSigner) Begin(context.Context) (sign.Stream, error) { return nil, errors.New("no agent") }
func (failingSigner) String() string                             { return "failing test signer" }

func TestFailedSignatureLeavesNothing(t *testing.T) {
	artifacttest.Need(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := qcow2.Format{}.Build(context.Background(), artifact.Job{Disk: artifacttest.RawDisk(t, dir), OutDir: out, Base: "os", Signer: failingSigner{}})
	if err == nil || !strings.Contains(err.Error(), "no agent") || !strings.Contains(err.Error(), "os.qcow2") {
		t.Fatalf("error %v: want the signer's, naming os.qcow2", err)
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		t.Errorf("%s left in outdir after the error", e.Name())
	}
}
