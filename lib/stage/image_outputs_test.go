package stage

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/sign/signtest"
)

// outputsBuild is a build whose image stage made dir/tmp/os-1.img.
func outputsBuild(t *testing.T, image map[string]string) (*build.Build, string, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	c := config.New()
	c.Set("build", "tmpdir", filepath.Join(dir, "tmp"))
	c.Set("build", "outdir", filepath.Join(dir, "out"))
	c.Set("build", "outversion", "os-1")
	for k, v := range map[string]string{
		"compression": "zst", "signing_key": filepath.Join(dir, "absent.asc"), "signing_passphrase_file": "",
		"signing_keyid": "", "gpg_homedir": filepath.Join(dir, "gnupg"), "qcow2": "false",
	} {
		if s, ok := image[k]; ok {
			v = s
		}
		c.Set("image", k, v)
	}
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	raw := filepath.Join(dir, "tmp", "os-1.img")
	data := bytes.Repeat([]byte("ext4 superblock and some files\n"), 100000)
	os.WriteFile(raw, data, 0o644)
	os.Truncate(raw, 8<<20)
	os.WriteFile(filepath.Join(dir, "tmp", "ostree.txt"), []byte("commit abc\n"), 0o644)
	var term bytes.Buffer
	return &build.Build{Config: c, Public: c, Log: buildlog.New(&term, false, nil)}, dir, &term
}

func outFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestImageOutputsGoToOutdirAndBuildOutputs(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed (apt-get install qemu-utils)")
	}
	b, dir, _ := outputsBuild(t, map[string]string{"qcow2": "true"})
	key := signtest.NewKey(t, dir, "pass")
	os.WriteFile(filepath.Join(dir, "pass"), []byte("pass\n"), 0o600)
	b.Config.Set("image", "signing_key", key.Secret)
	b.Config.Set("image", "signing_passphrase_file", filepath.Join(dir, "pass"))
	img := build.Image{Path: filepath.Join(dir, "tmp", "os-1.img"), Arch: "amd64", Size: 8 << 20}
	if err := writeImageOutputsNow(context.Background(), b, img); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	want := []string{"os-1.config.ini", "os-1.img.asc", "os-1.img.sha256", "os-1.img.zst", "os-1.img.zst.asc",
		"os-1.img.zst.sha256", "os-1.img.zst.size", "os-1.ostree.txt", "os-1.qcow2", "os-1.qcow2.asc", "os-1.qcow2.sha256"}
	if got := outFiles(t, out); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("outdir: %q\nwant    %q", got, want)
	}
	js, _ := json.MarshalIndent(b.Artifacts, "", " ")
	byName := map[string]artifact.Record{}
	for _, o := range b.Artifacts {
		byName[o.File] = o
	}
	// Every file in outdir is recorded, and only those.
	var recorded []string
	for f := range recordedFiles(b.Artifacts) {
		recorded = append(recorded, f)
	}
	sort.Strings(recorded)
	if strings.Join(recorded, " ") != strings.Join(want, " ") {
		t.Errorf("recorded files: %q\nwant            %q", recorded, want)
	}
	zst := byName["os-1.img.zst"]
	if zst.Compression != "zst" || zst.ExtractedSize != 8<<20 || zst.Size <= 0 || len(zst.SHA256) != 64 ||
		zst.ChecksumFile != "os-1.img.zst.sha256" || zst.SignatureFile != "os-1.img.zst.asc" || zst.Path != filepath.Join(out, "os-1.img.zst") {
		t.Errorf("compressed output: %s", js)
	}
	raw := byName["os-1.img"]
	if raw.Path != "" || raw.ExtractedSize != 8<<20 || raw.ChecksumFile != "os-1.img.sha256" || raw.SignatureFile != "os-1.img.asc" {
		t.Errorf("raw image output: %s", js)
	}
	for _, f := range []string{"os-1.qcow2", "os-1.ostree.txt", "os-1.config.ini"} {
		if o, ok := byName[f]; !ok || len(o.SHA256) != 64 || o.Path != filepath.Join(out, f) {
			t.Errorf("output %s missing or incomplete: %s", f, js)
		}
	}
	if len(b.Artifacts) != 5 {
		t.Errorf("%d records, want 5: %s", len(b.Artifacts), js)
	}
	for _, f := range []string{"os-1.img.zst"} {
		if err := signtest.Verify(t, key.Public, filepath.Join(out, f), filepath.Join(out, f+".asc")); err != nil {
			t.Error(err)
		}
	}
	ini, _ := os.ReadFile(filepath.Join(out, "os-1.config.ini"))
	if !strings.Contains(string(ini), "[image]") || !strings.Contains(string(ini), "compression = zst") {
		t.Errorf("os-1.config.ini:\n%s", ini)
	}
}

func TestUnreadableKeyFailsBeforeAnyOutput(t *testing.T) {
	for _, tc := range []struct{ name, key, want string }{
		{"not a key", "/etc/hostname", "not an OpenPGP key file"},
		{"a directory", "/etc", "signing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, dir, _ := outputsBuild(t, map[string]string{"signing_key": tc.key})
			err := writeImageOutputsNow(context.Background(), b, build.Image{Path: filepath.Join(dir, "tmp", "os-1.img")})
			if err == nil || !strings.Contains(err.Error(), "[image] signing_key") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming [image] signing_key and %q", err, tc.want)
			}
			if got := outFiles(t, filepath.Join(dir, "out")); len(got) != 0 {
				t.Errorf("outdir holds %q after the failure", got)
			}
		})
	}
}

func TestNoKeyFileMeansUnsignedOutputsAndALogLine(t *testing.T) {
	b, dir, term := outputsBuild(t, map[string]string{"compression": "gz"})
	if err := writeImageOutputsNow(context.Background(), b, build.Image{Path: filepath.Join(dir, "tmp", "os-1.img")}); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "out", "*.asc")); len(m) != 0 {
		t.Errorf("signatures without a key: %q", m)
	}
	if !strings.Contains(term.String(), "absent.asc absent and no signing key id set: outputs are not signed") {
		t.Errorf("log:\n%s", term)
	}
}

func TestBadCompressionNamesTheKey(t *testing.T) {
	b, dir, _ := outputsBuild(t, map[string]string{"compression": "bz2"})
	err := writeImageOutputsNow(context.Background(), b, build.Image{Path: filepath.Join(dir, "tmp", "os-1.img")})
	if err == nil || !strings.Contains(err.Error(), "[image] compression") || !strings.Contains(err.Error(), "gz, xz, zst") {
		t.Fatalf("error %v", err)
	}
}
