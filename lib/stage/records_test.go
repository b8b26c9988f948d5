package stage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/publish"
)

// outdirHooks is a hook runner whose image hook writes a file into
// outdir, as EIB's 70-flatpak-appstream-catalog does, and records its
// timing as the hook runner does.
type outdirHooks struct{ outdir string }

func (h outdirHooks) RunGroup(ctx context.Context, b *build.Build, group, root string) error {
	if group != "image" {
		return nil
	}
	start := time.Now()
	if err := os.WriteFile(filepath.Join(h.outdir, "os-1.appstream.xml"), []byte("<components/>\n"), 0o644); err != nil {
		return err
	}
	b.AddTiming(build.Timing{Stage: "image", Hook: "image/70-flatpak-appstream-catalog", Seconds: time.Since(start).Seconds(), Status: "ok", Started: start})
	return nil
}

// TestPublishSignsOnlyRecordedFilesAndRefusesAStray: what the image
// outputs and a hook wrote into outdir is recorded and published; a file
// nothing of this build wrote (issue 13: a leftover process of a killed
// build wrote into the next build's outdir) fails the publish stage,
// naming it, before anything is listed or signed.
func TestPublishSignsOnlyRecordedFilesAndRefusesAStray(t *testing.T) {
	b, dir, _ := outputsBuild(t, map[string]string{"compression": "gz"})
	out := filepath.Join(dir, "out")
	s, err := readOutputSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeImageOutputs(context.Background(), b, build.Image{Path: filepath.Join(dir, "tmp", "os-1.img"), Arch: "amd64"}, s); err != nil {
		t.Fatal(err)
	}
	b.Hooks = outdirHooks{outdir: out}
	if err := runHooks(context.Background(), b, "image", ""); err != nil {
		t.Fatal(err)
	}
	var hookRec bool
	for _, r := range b.Artifacts {
		if r.File == "os-1.appstream.xml" {
			hookRec = r.Format == formatHook && strings.Contains(r.BootReason, "image/70-flatpak-appstream-catalog") && len(r.SHA256) == 64
		}
	}
	if !hookRec {
		t.Fatalf("the hook's file is not recorded as written by image/70-flatpak-appstream-catalog: %+v", b.Artifacts)
	}
	os.WriteFile(filepath.Join(dir, "tmp", "build.txt"), []byte("the build log\n"), 0o644)
	stray := filepath.Join(out, "os-1.leftover.img.gz")
	os.WriteFile(stray, []byte("written by a process of a killed build\n"), 0o644)

	st := publishStage{out: &s}
	err = st.Run(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "outdir holds "+stray+", which no stage or hook of this build wrote: refusing to publish it") {
		t.Fatalf("publish with a stray file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, publish.SumsFile)); !os.IsNotExist(err) {
		t.Fatalf("%s written despite the stray file (%v)", publish.SumsFile, err)
	}

	os.Remove(stray)
	if err := st.Run(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	files, err := publish.ReadSums(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	want := []string{"os-1.appstream.xml", "os-1.build.txt", "os-1.config.ini", "os-1.img.gz", "os-1.img.gz.sha256",
		"os-1.img.gz.size", "os-1.img.sha256", "os-1.ostree.txt"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("%s lists %q\nwant %q", publish.SumsFile, names, want)
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", publish.SumsFile)
	cmd.Dir = out
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c %s: %v\n%s", publish.SumsFile, err, o)
	}
}

// A recorded file that is gone is an error too: SHA256SUMS never lists
// what is not there.
func TestReleaseFilesNamesAMissingRecordedFile(t *testing.T) {
	b, dir, _ := outputsBuild(t, map[string]string{"compression": "gz"})
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)
	p := filepath.Join(out, "os-1.config.ini")
	os.WriteFile(p, []byte("[build]\n"), 0o644)
	if err := recordFile(b, p, ""); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if _, err := releaseFiles(b.Artifacts, out); err == nil || !strings.Contains(err.Error(), p+" is recorded as written by this build, but outdir does not hold it") {
		t.Fatalf("err = %v", err)
	}
}

func TestHookAtNamesTheHookRunningWhenTheFileWasWritten(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	timings := []build.Timing{
		{Stage: "image", Hook: "content/10-x", Started: t0},
		{Stage: "image", Hook: "image/50-a", Started: t0.Add(time.Second), Seconds: 1},
		{Stage: "image", Hook: "image/70-b", Started: t0.Add(3 * time.Second), Seconds: 1},
	}
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{0, "image/50-a"},
		{1500 * time.Millisecond, "image/50-a"},
		{3*time.Second - 5*time.Millisecond, "image/70-b"}, // the coarse file clock
		{10 * time.Second, "image/70-b"},
	} {
		if got := hookAt("image", t0.Add(tc.at), timings); got != tc.want {
			t.Errorf("file written at +%s: hook %s, want %s", tc.at, got, tc.want)
		}
	}
	if got := hookAt("check", t0, timings); got != "check" {
		t.Errorf("no check hook ran: %s", got)
	}
}
