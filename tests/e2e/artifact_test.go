package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/engine"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/lib/sign/signtest"
	"github.com/eib-builder/eib/lib/stage"
)

// partList is an artifact format defined here, and nowhere else: adding a
// format is registering it, and the image stage builds it, the manifest
// lists it, SHA256SUMS covers it, it is signed and published, and the
// check records that it is not booted, with no other change to eib.
//
// It writes <base>.img.list, the partition table of the raw disk as
// `sfdisk --dump` prints it, with its .sha256 and .asc.
type partList struct{}

const partListName = "partlist"

func init() { artifact.Register(partList{}) }

func (partList) Name() string               { return partListName }
func (partList) Key() (section, key string) { return "", "" }
func (partList) Needs() artifact.Input      { return artifact.InputRawDisk }
func (partList) Boot() (artifact.Medium, string) {
	return artifact.MediumNone, "a partition table listing"
}

func (f partList) Build(ctx context.Context, job artifact.Job) ([]artifact.Record, error) {
	dump, err := exec.CommandContext(ctx, "sfdisk", "--dump", job.Disk.Path).Output()
	if err != nil {
		return nil, fmt.Errorf("sfdisk --dump %s: %w", job.Disk.Path, err)
	}
	name := job.Base + ".img.list"
	path := filepath.Join(job.OutDir, name)
	if err := output.WriteFile(path, func(w io.Writer) error { _, err := w.Write(dump); return err }); err != nil {
		return nil, err
	}
	sum, size, err := output.SHA256File(path)
	if err != nil {
		return nil, err
	}
	r := artifact.NewRecord(f, job, name)
	r.Size, r.ExtractedSize, r.SHA256 = size, size, sum
	r.ChecksumFile = name + ".sha256"
	if err := os.WriteFile(filepath.Join(job.OutDir, r.ChecksumFile), []byte(sum+"  "+name+"\n"), 0o644); err != nil {
		return nil, err
	}
	if job.Signer != nil {
		r.SignatureFile = name + ".asc"
		if err := output.SignFile(ctx, job.Signer, path, filepath.Join(job.OutDir, r.SignatureFile)); err != nil {
			return nil, err
		}
	}
	return []artifact.Record{r}, nil
}

// TestAnArtifactFormatDefinedInATestIsBuiltListedSummedSignedAndPublished
// runs the demo build in this process (the engine, as cmd/eib runs it),
// so that the format registered above is one of its formats, through the
// image, check (BIOS boot), manifest and publish stages.
func TestAnArtifactFormatDefinedInATestIsBuiltListedSummedSignedAndPublished(t *testing.T) {
	needDemo(t)
	p := newDemoProject(t, "[check]\nfirmware = bios\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	t.Setenv("EIB_SRCDIR", srcRoot)
	t.Setenv("EIB_SYSCONFDIR", p.Sysconf)
	t.Setenv("EIB_LOCK_FILE", p.Lock)
	loaded, err := config.Load(config.Options{Branch: "master", Product: "demo", Arch: "amd64", Platform: "amd64", Personality: "base",
		SysConfDir: p.Sysconf, SrcDir: srcRoot, LocalDir: p.Local})
	if err != nil {
		t.Fatal(err)
	}
	var term bytes.Buffer
	plan, err := stage.NewPlan(stage.Options{Loaded: loaded, SrcDir: srcRoot, LocalDir: p.Local, LockFile: p.Lock, Terminal: &term})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Image == nil || !slices.Contains(plan.Image.Artifacts, partListName) {
		t.Fatalf("the plan does not build the %s artifact: %+v", partListName, plan.Image)
	}
	start := time.Now()
	err = engine.Run(ctx, plan, loaded, plan.StageRunners())
	t.Logf("in-process demo build: %v in %.1f s", err, time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("demo build: %v\n%s", err, tail(term.String(), 60))
	}
	out := p.Outdir()
	lists, _ := filepath.Glob(filepath.Join(out, "*.img.list"))
	if len(lists) != 1 {
		t.Fatalf("want one .img.list in %s, found %q", out, lists)
	}
	list := filepath.Base(lists[0])
	ov := strings.TrimSuffix(list, ".img.list")
	if data, _ := os.ReadFile(lists[0]); !strings.Contains(string(data), "label:") || !strings.Contains(string(data), "start=") {
		t.Errorf("%s is not an sfdisk dump:\n%s", list, data)
	}

	// The manifest lists it with its checksum and signature files.
	img, _ := p.Manifest()["images"].(map[string]any)
	e, _ := img[list].(map[string]any)
	sum := strings.Fields(runOut(t, out, "sha256sum", list))[0]
	if e == nil || e["sha256"] != sum || e["checksum"] != list+".sha256" || e["signature"] != list+".asc" {
		t.Errorf("manifest images[%s] = %v (sha256 %s)", list, e, sum)
	}

	// SHA256SUMS lists it and its sidecars, and verifies; it and
	// SHA256SUMS are signed with the demo key.
	sums, err := os.ReadFile(filepath.Join(out, publish.SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{list, list + ".sha256", list + ".asc", ov + ".manifest.json", ov + ".build.txt"} {
		if !strings.Contains(string(sums), "  "+f+"\n") {
			t.Errorf("%s does not list %s:\n%s", publish.SumsFile, f, sums)
		}
	}
	runOut(t, out, "sha256sum", "--strict", "-c", publish.SumsFile)
	pub := filepath.Join(srcRoot, "data", "demo", "image-signing-key.DEMO-ONLY.asc")
	for _, f := range []string{list, publish.SumsFile} {
		if err := signtest.Verify(t, pub, filepath.Join(out, f), filepath.Join(out, f+".asc")); err != nil {
			t.Errorf("gpg --verify %s.asc: %v", f, err)
		}
	}

	// Published with the release.
	if pubd := p.published(); !slices.Contains(pubd, filepath.Join(ov, list)) || !slices.Contains(pubd, filepath.Join(ov, list+".asc")) {
		t.Errorf("published %q lacks %s and its signature", pubd, list)
	}

	// The check booted the raw image and recorded the listing as not
	// booted, with its format's reason.
	if !strings.Contains(term.String(), list+" (artifact "+partListName+"): not booted: a partition table listing") {
		t.Errorf("the check does not say %s is not booted:\n%s", list, tail(term.String(), 40))
	}
	boots, _ := p.Manifest()["boot_check"].([]any)
	if len(boots) != 1 || boots[0].(map[string]any)["image"] != ov+".img" || boots[0].(map[string]any)["result"] != "ok" {
		t.Errorf("boot_check = %v, want one ok boot of %s.img", boots, ov)
	}
	data, err := os.ReadFile(filepath.Join(p.Tmpdir(), stage.StateFileName))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Completed []struct {
			Stage     string            `json:"stage"`
			Artifacts []artifact.Record `json:"artifacts"`
		} `json:"completed"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatal(err)
	}
	var rec *artifact.Record
	for _, c := range state.Completed {
		if c.Stage != "check" {
			continue
		}
		for i, r := range c.Artifacts {
			if r.File == list {
				rec = &c.Artifacts[i]
			}
		}
	}
	if rec == nil || rec.Format != partListName || rec.Boot != artifact.MediumNone || rec.BootPath != "" || rec.Disk != "" {
		t.Errorf("state after the check records %s as %+v, want format %s, not booted", list, rec, partListName)
	}
}

// runOut runs name args... in dir and returns its output; a failure
// fails the test.
func runOut(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
