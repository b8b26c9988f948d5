package artifact_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/artifact/artifacttest"
	_ "github.com/eib-builder/eib/lib/artifact/qcow2"
	_ "github.com/eib-builder/eib/lib/artifact/raw"
	"github.com/eib-builder/eib/lib/output"
)

// listing is a format defined here, in one file, as a new format's
// package would: built from the raw artifact's records, it writes
// <base>.files.txt listing them. Its registration below is all it takes
// to be selected and built.
type listing struct{}

func init() { artifact.Register(listing{}) }

func (listing) Name() string                    { return "listing" }
func (listing) Key() (string, string)           { return "image", "listing" }
func (listing) Needs() artifact.Input           { return artifact.Input("raw") }
func (listing) Boot() (artifact.Medium, string) { return artifact.MediumNone, "a text file" }
func (f listing) Build(ctx context.Context, job artifact.Job) ([]artifact.Record, error) {
	if len(job.From) == 0 {
		return nil, fmt.Errorf("no raw records")
	}
	var b strings.Builder
	for _, r := range job.From {
		fmt.Fprintf(&b, "%s %d\n", r.File, r.ExtractedSize)
	}
	path := filepath.Join(job.OutDir, job.Base+".files.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	rec, err := artifact.PlainRecord(path)
	if err != nil {
		return nil, err
	}
	rec.Format = f.Name()
	return []artifact.Record{rec}, nil
}

// fake is a format for the registry and ordering tests.
type fake struct {
	name  string
	needs artifact.Input
}

func (f fake) Name() string                                                 { return f.name }
func (fake) Key() (string, string)                                          { return "", "" }
func (f fake) Needs() artifact.Input                                        { return f.needs }
func (fake) Boot() (artifact.Medium, string)                                { return artifact.MediumNone, "fake" }
func (fake) Build(context.Context, artifact.Job) ([]artifact.Record, error) { return nil, nil }

func panics(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

func TestRegisterRefusesDuplicatesAndReservedNames(t *testing.T) {
	if msg := panics(func() { artifact.Register(fake{name: "raw"}) }); !strings.Contains(msg, `"raw" registered twice`) {
		t.Errorf("registering raw again: panic %q", msg)
	}
	if f, _ := artifact.Lookup("raw"); reflect.TypeOf(f) == reflect.TypeOf(fake{}) {
		t.Error("the duplicate replaced the raw format")
	}
	for _, name := range []string{"", "@sysroot", "file"} {
		if msg := panics(func() { artifact.Register(fake{name: name}) }); msg == "" {
			t.Errorf("registering %q did not panic", name)
		}
	}
}

func TestFormatsAreOrderedByNeedsThenName(t *testing.T) {
	var got []string
	for _, f := range artifact.Formats() {
		got = append(got, f.Name())
	}
	// listing needs raw, so it comes after every format built from the
	// disk.
	if want := []string{"qcow2", "raw", "listing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Formats() = %v, want %v", got, want)
	}
	if _, ok := artifact.Lookup("listing"); !ok {
		t.Error("the format defined in this test is not registered")
	}
}

func TestOrderErrors(t *testing.T) {
	listingFmt, _ := artifact.Lookup("listing")
	_, err := artifact.Order([]artifact.Format{listingFmt})
	if err == nil || !strings.Contains(err.Error(), "artifact listing needs artifact raw") {
		t.Errorf("listing without raw: %v", err)
	}
	qcow2Fmt, _ := artifact.Lookup("qcow2")
	_, err = artifact.Order([]artifact.Format{fake{name: "x", needs: "qcow2"}, fake{name: "y", needs: "raw"}, qcow2Fmt})
	if err == nil || strings.Contains(err.Error(), "needs artifact qcow2") || !strings.Contains(err.Error(), "needs artifact raw") {
		t.Errorf("error %v: want only y's missing raw", err)
	}
	_, err = artifact.Order([]artifact.Format{fake{name: "a", needs: "b"}, fake{name: "b", needs: "a"}})
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("a cycle: %v", err)
	}
}

func TestSelectedReadsOneKeyPerFormat(t *testing.T) {
	var asked []string
	fs, err := artifact.Selected(func(section, key string) (bool, error) {
		asked = append(asked, "["+section+"] "+key)
		return key == "listing", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Name())
	}
	if !reflect.DeepEqual(got, []string{"raw", "listing"}) {
		t.Errorf("selected %v, want [raw listing]", got)
	}
	if !reflect.DeepEqual(asked, []string{"[image] qcow2", "[image] listing"}) {
		t.Errorf("keys read: %v", asked)
	}
	_, err = artifact.Selected(func(section, key string) (bool, error) {
		return false, fmt.Errorf("eib.ini: [%s] %s: not a boolean", section, key)
	})
	if err == nil || !strings.Contains(err.Error(), "[image] ") {
		t.Errorf("the key's error was not returned: %v", err)
	}
}

func TestBuildAllFeedsTheNeededRecords(t *testing.T) {
	artifacttest.Need(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	disk := artifacttest.RawDisk(t, dir)
	fs, err := artifact.Selected(func(string, string) (bool, error) { return true, nil })
	if err != nil {
		t.Fatal(err)
	}
	recs, err := artifact.BuildAll(context.Background(), fs, artifact.Job{Disk: disk, OutDir: out, Base: "os-2", Compression: output.Gzip, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, r := range recs {
		files = append(files, r.Format+":"+r.File)
	}
	want := []string{"qcow2:os-2.qcow2", "raw:os-2.img.gz", "raw:os-2.img", "listing:os-2.files.txt"}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("records %v, want %v", files, want)
	}
	b, _ := os.ReadFile(filepath.Join(out, "os-2.files.txt"))
	if wantList := fmt.Sprintf("os-2.img.gz %d\nos-2.img %d\n", artifacttest.DiskSize, artifacttest.DiskSize); string(b) != wantList {
		t.Errorf("listing got %q from raw's records, want %q", b, wantList)
	}
	artifacttest.CheckSums(t, out, recs)

	// SHA256SUMS from the records equals sha256sum's lines for the
	// files in outdir that are records (not the sidecar files).
	lines := artifact.SumLines(recs)
	args := []string{"os-2.files.txt", "os-2.img.gz", "os-2.qcow2"}
	cmd := exec.Command("sha256sum", args...)
	cmd.Dir = out
	o, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "\n") + "\n"; got != string(o) {
		t.Errorf("SumLines:\n%s\nsha256sum:\n%s", got, o)
	}
	if sums := artifact.Sums(recs); len(sums) != 3 || sums["os-2.img"] != "" {
		t.Errorf("Sums = %v: want the 3 files in outdir", sums)
	}

	boot := artifact.ToBoot(recs)
	if len(boot) != 1 || boot[0].File != "os-2.img.gz" || boot[0].BootPath != disk.Path || boot[0].Boot != artifact.MediumDisk {
		t.Errorf("ToBoot = %+v", boot)
	}

	// The records survive the state file.
	j, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	var back []artifact.Record
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, recs) {
		t.Errorf("JSON round trip changed the records:\n%s", j)
	}
	if !strings.Contains(string(j), `"boot_path":"`+disk.Path+`"`) || !strings.Contains(string(j), `"extracted_size":16777216`) {
		t.Errorf("JSON lacks the boot path or the extracted size: %s", j)
	}
}

func TestBuildAllErrorsNameFormatAndDisk(t *testing.T) {
	rawFmt, _ := artifact.Lookup("raw")
	listingFmt, _ := artifact.Lookup("listing")
	_, err := artifact.BuildAll(context.Background(), []artifact.Format{rawFmt}, artifact.Job{Disk: artifact.Disk{Name: "disk"}, Base: "os.disk"})
	if err == nil || !strings.Contains(err.Error(), "artifact raw of disk disk (os.disk): needs a raw disk image") {
		t.Errorf("no disk: %v", err)
	}
	_, err = artifact.BuildAll(context.Background(), []artifact.Format{listingFmt}, artifact.Job{Base: "os"})
	if err == nil || !strings.Contains(err.Error(), "artifact listing of the main disk (os): needs artifact raw") {
		t.Errorf("listing without raw: %v", err)
	}
}
