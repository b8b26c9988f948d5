package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/eib-builder/eib/lib/build"
)

func writeRaw(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMergeObjectsRecursivelyInFileNameOrder(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, "20-b.json", `{"images": {"b.img": {"file": "b.img"}}, "product": "eos"}`)
	writeRaw(t, dir, "10-a.json", `{"images": {"a.img": {"file": "a.img", "size": 12345678901234567890}}}`)
	writeRaw(t, dir, "30-c.json", `{"product": "eos", "extra": [1, 2]}`)
	writeRaw(t, dir, "notes.txt", `not a fragment`)
	got, err := MergeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "extra": [
    1,
    2
  ],
  "images": {
    "a.img": {
      "file": "a.img",
      "size": 12345678901234567890
    },
    "b.img": {
      "file": "b.img"
    }
  },
  "product": "eos"
}
`
	if string(data) != want {
		t.Errorf("merged manifest:\n%s\nwant:\n%s", data, want)
	}
}

func TestMergeConflictNamesBothFragments(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a, b     string
		key      string
		noErrors bool
	}{
		{name: "two strings", a: `{"ostree": {"ref": "os/eos/amd64/master"}}`, b: `{"ostree": {"ref": "other"}}`, key: "ostree.ref"},
		{name: "object vs string", a: `{"images": {"x": 1}}`, b: `{"images": "none"}`, key: "images"},
		{name: "string vs object", a: `{"images": "none"}`, b: `{"images": {"x": 1}}`, key: "images"},
		{name: "arrays differ", a: `{"l": [1]}`, b: `{"l": [1, 2]}`, key: "l"},
		{name: "equal values agree", a: `{"v": 1, "s": "x"}`, b: `{"v": 1.0, "s": "x"}`, noErrors: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, "50-first.json", tc.a)
			writeRaw(t, dir, "60-second.json", tc.b)
			_, err := MergeDir(dir)
			if tc.noErrors {
				if err != nil {
					t.Fatalf("equal values: %v", err)
				}
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) {
				t.Fatalf("want a ConflictError, got %v", err)
			}
			msg := err.Error()
			for _, want := range []string{"50-first.json", "60-second.json", `"` + tc.key + `"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %s", msg, want)
				}
			}
		})
	}
}

func TestMergeRejectsInvalidFragmentsNamingTheFile(t *testing.T) {
	for name, text := range map[string]string{
		"broken.json":   `{"a": "unterminated}`,
		"array.json":    `[1, 2]`,
		"trailing.json": `{"a": 1} {"b": 2}`,
	} {
		dir := t.TempDir()
		writeRaw(t, dir, name, text)
		_, err := MergeDir(dir)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: want an error naming the file, got %v", name, err)
		}
	}
}

// TestFragmentsFromShellHooksWithAwkwardValues is what EIB got wrong: values
// with quotes, backslashes, newlines and non-ASCII characters, written by a
// hook through jq (the way hooks are told to write fragments) and by eib,
// must merge into valid JSON that keeps every value intact.
func TestFragmentsFromShellHooksWithAwkwardValues(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Skip("jq is not installed")
	}
	dir := t.TempDir()
	awkward := "Endless \"OS\" C:\\path\\ naïve 日本語 ☃\ttab\nnewline </script>"
	cmd := exec.Command("bash", "-euc", `"$JQ" -n --arg v "$VALUE" '{hook: {value: $v}}' > "$DIR/80-hook.json"`)
	cmd.Env = append(os.Environ(), "JQ="+jq, "VALUE="+awkward, "DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	if err := WriteFragment(dir, BasicInfoFile, BasicInfo{ProductName: awkward}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.manifest.json")
	if err := WriteDir(dir, out, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) || !utf8.Valid(data) {
		t.Fatalf("merged manifest is not valid UTF-8 JSON:\n%s", data)
	}
	if !bytes.Contains(data, []byte("naïve 日本語 ☃")) {
		t.Errorf("non-ASCII characters were escaped or lost:\n%s", data)
	}
	var m struct {
		ProductName string `json:"product_name"`
		Hook        struct {
			Value string `json:"value"`
		} `json:"hook"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.ProductName != awkward || m.Hook.Value != awkward {
		t.Errorf("values changed in the merge: %q, %q, want %q", m.ProductName, m.Hook.Value, awkward)
	}
	// jq, a separate JSON parser, must read it too.
	if out, err := exec.Command(jq, "-e", ".hook.value", out).CombinedOutput(); err != nil {
		t.Errorf("jq cannot read the manifest: %v\n%s", err, out)
	}
}

func TestWriteFragmentRejectsPaths(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"../x.json", "x.txt", "a/b.json"} {
		if err := WriteFragment(dir, name, map[string]any{}); err == nil {
			t.Errorf("WriteFragment(%q) succeeded", name)
		}
	}
}

func TestEibFragmentsMergeWithoutConflict(t *testing.T) {
	dir := t.TempDir()
	started := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	frags := map[string]any{
		BasicInfoFile: BasicInfo{Product: "eos", ProductName: "Endless OS", Branch: "master", Arch: "amd64",
			Platform: "pc", Personality: "base", BuildVersion: "261122-080000", Builder: Builder{Name: "eib", Version: "v0", Commit: "abc"}},
		ImagesFile: Images([]build.Output{{File: "eos.img.zst", Compression: "zst", CompressedSize: 10, ExtractedSize: 100,
			SHA256: strings.Repeat("a", 64), ChecksumFile: "eos.img.zst.sha256", SignatureFile: "eos.img.zst.asc"}}),
		OSTreeFile:    OSTreeFragment(build.OSTreeInfo{Remote: "eos", Ref: "os/eos/amd64/master", Commit: strings.Repeat("c", 64), Version: "6.0", DeployURL: "https://ostree.example/", OS: "eos"}),
		BootCheckFile: BootCheck([]build.BootResult{{Image: "eos.img", Firmware: "bios", Result: "ok", Seconds: 13.7}}),
		TimingsFile: Timings([]build.Timing{
			{Stage: "ostree", Seconds: 1.23456, Status: "ok", Started: started},
			{Stage: "image", Hook: "50-foo", Seconds: 0.5, Status: "ok"},
			{Stage: "image", Seconds: 9, Status: "ok", Started: started.Add(time.Minute)},
		}),
	}
	for name, v := range frags {
		if err := WriteFragment(dir, name, v); err != nil {
			t.Fatal(err)
		}
	}
	got, err := MergeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := Marshal(got)
	var m struct {
		Product string `json:"product"`
		Images  map[string]struct {
			SHA256          string      `json:"sha256"`
			CompressionType string      `json:"compression_type"`
			ExtractedSize   json.Number `json:"extracted_size"`
		} `json:"images"`
		OSTree    struct{ Commit string } `json:"ostree"`
		BootCheck []struct {
			Firmware string  `json:"firmware"`
			Seconds  float64 `json:"seconds_to_marker"`
		} `json:"boot_check"`
		Timings map[string]struct {
			Seconds float64
			Started string
			Hooks   map[string]struct{ Seconds float64 }
		} `json:"timings"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	img := m.Images["eos.img.zst"]
	if m.Product != "eos" || img.SHA256 != strings.Repeat("a", 64) || img.CompressionType != "zst" || img.ExtractedSize != "100" {
		t.Errorf("basic info or images wrong:\n%s", data)
	}
	if m.OSTree.Commit != strings.Repeat("c", 64) || len(m.BootCheck) != 1 || m.BootCheck[0].Seconds != 13.7 {
		t.Errorf("ostree or boot check wrong:\n%s", data)
	}
	if m.Timings["ostree"].Seconds != 1.235 || m.Timings["image"].Hooks["50-foo"].Seconds != 0.5 ||
		m.Timings["image"].Started != "2026-11-22T08:01:00Z" {
		t.Errorf("timings wrong:\n%s", data)
	}
}

func TestImagesFoldTheRawImageIntoItsCompressedEntry(t *testing.T) {
	outputs := []build.Output{
		{File: "eos.img.xz", Path: "/out/eos.img.xz", Compression: "xz", CompressedSize: 10, ExtractedSize: 100,
			SHA256: "c1", ChecksumFile: "eos.img.xz.sha256", SignatureFile: "eos.img.xz.asc"},
		{File: "eos.img", ExtractedSize: 100, SHA256: "r1", ChecksumFile: "eos.img.sha256", SignatureFile: "eos.img.asc"},
		{File: "eos.qcow2", Path: "/out/eos.qcow2", CompressedSize: 20, ExtractedSize: 100, SHA256: "q1"},
		{File: "lonely.img", ExtractedSize: 5, SHA256: "l1"},
	}
	got := Images(outputs)["images"].(map[string]Image)
	want := map[string]Image{
		"eos.img.xz": {File: "eos.img.xz", CompressedSize: 10, ExtractedSize: 100, CompressionType: "xz", SHA256: "c1",
			Checksum: "eos.img.xz.sha256", Signature: "eos.img.xz.asc",
			ExtractedFile: "eos.img", ExtractedSHA256: "r1", ExtractedChecksum: "eos.img.sha256", ExtractedSignature: "eos.img.asc"},
		"eos.qcow2":  {File: "eos.qcow2", CompressedSize: 20, ExtractedSize: 100, SHA256: "q1"},
		"lonely.img": {File: "lonely.img", ExtractedSize: 5, SHA256: "l1"},
	}
	if len(got) != len(want) {
		t.Fatalf("images = %+v, want %+v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("images[%s] = %+v, want %+v", k, got[k], w)
		}
	}
}

func TestPrivateValueInAFragmentIsRefusedNamingIt(t *testing.T) {
	const secret = "s3cr3t-token"
	for _, tc := range []struct{ name, text, key string }{
		{"string value", `{"a": {"b": "url https://x:s3cr3t-token@host"}}`, "a.b"},
		{"object key", `{"a": {"s3cr3t-token": 1}}`, "a.***"},
		{"in an array", `{"a": {"list": ["x", {"y": "s3cr3t-token"}]}}`, "a.list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, "10-clean.json", `{"a": {"c": "fine"}}`)
			writeRaw(t, dir, "70-leaky.json", tc.text)
			out := filepath.Join(t.TempDir(), "m.json")
			err := WriteDir(dir, out, []string{"", secret})
			if err == nil {
				t.Fatal("a manifest with a private value was written")
			}
			for _, want := range []string{"70-leaky.json", `"` + tc.key + `"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error repeats the private value: %v", err)
			}
			if _, serr := os.Stat(out); !os.IsNotExist(serr) {
				t.Errorf("the manifest was written anyway")
			}
		})
	}
	dir := t.TempDir()
	writeRaw(t, dir, "10-clean.json", `{"a": "fine"}`)
	if err := WriteDir(dir, filepath.Join(t.TempDir(), "m.json"), []string{secret}); err != nil {
		t.Errorf("a clean manifest: %v", err)
	}
}
