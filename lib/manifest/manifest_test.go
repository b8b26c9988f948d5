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

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
)

func writeRaw(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mergeDir(t *testing.T, own []Fragment, dir string) *Merger {
	t.Helper()
	m, err := MergeDir(own, dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMergeObjectsRecursivelyInFileNameOrder(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, "20-b.json", `{"images": {"b.img": {"file": "b.img"}}, "product": "eos"}`)
	writeRaw(t, dir, "10-a.json", `{"images": {"a.img": {"file": "a.img", "size": 12345678901234567890}}}`)
	writeRaw(t, dir, "30-c.json", `{"product": "eos", "extra": [1, 2]}`)
	// Every file is a fragment, whatever its name (EIB's image stage
	// writes "images").
	writeRaw(t, dir, "images", `{"images": {"full": {"file": "a.img"}}}`)
	m := mergeDir(t, nil, dir)
	data, err := Marshal(m.Result())
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
    },
    "full": {
      "file": "a.img"
    }
  },
  "product": "eos"
}
`
	if string(data) != want {
		t.Errorf("merged manifest:\n%s\nwant:\n%s", data, want)
	}
	if len(m.Conflicts()) != 0 {
		t.Errorf("conflicts %v, want none (equal values agree)", m.Conflicts())
	}
}

// TestFragmentsInOSWalkOrder: EIB's helpers/assemble-manifest walks
// manifestdir with os.walk and sorts each directory's files and
// subdirectories: a directory's files come before its subdirectories' (so
// "z" in the top directory precedes "a/x"), links to directories are not
// entered, and a link to a file is a fragment.
func TestFragmentsInOSWalkOrder(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"b", "a/deeper", "elsewhere"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"z", "m.json", ".hidden", "b/1", "a/x.json", "a/deeper/y", "elsewhere/no"} {
		writeRaw(t, dir, f, `{}`)
	}
	if err := os.Symlink("elsewhere", filepath.Join(dir, "c-dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("m.json", filepath.Join(dir, "n-filelink")); err != nil {
		t.Fatal(err)
	}
	got, err := Fragments(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".hidden", "m.json", "n-filelink", "z", "a/x.json", "a/deeper/y", "b/1", "elsewhere/no"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("merge order\n got %v\nwant %v", got, want)
	}
}

// TestLaterFragmentWinsAndEveryConflictIsRecorded is EIB's dict_merge: a
// later value replaces an earlier one (objects merge key by key), and eib
// records each replacement naming both fragments.
func TestLaterFragmentWinsAndEveryConflictIsRecorded(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		key        string
		want       string // merged value at key, as JSON
	}{
		{name: "two strings", a: `{"ostree": {"ref": "os/eos/amd64/master", "os": "eos"}}`, b: `{"ostree": {"ref": "other"}}`, key: "ostree.ref", want: `{"ostree":{"os":"eos","ref":"other"}}`},
		{name: "object replaces string", a: `{"images": "none"}`, b: `{"images": {"x": 1}}`, key: "images", want: `{"images":{"x":1}}`},
		{name: "arrays are replaced whole", a: `{"l": [1, 3]}`, b: `{"l": [2]}`, key: "l", want: `{"l":[2]}`},
		{name: "null replaces a string", a: `{"o": {"collection-id": "org.example.Os"}}`, b: `{"o": {"collection-id": null}}`, key: "o.collection-id", want: `{"o":{"collection-id":null}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, "50-first.json", tc.a)
			writeRaw(t, dir, "60-second.json", tc.b)
			m := mergeDir(t, nil, dir)
			got, _ := json.Marshal(m.Result())
			if string(got) != tc.want {
				t.Errorf("merged %s, want %s", got, tc.want)
			}
			c := m.Conflicts()
			if len(c) != 1 || c[0].Key != tc.key || c[0].Earlier != "50-first.json" || c[0].Later != "60-second.json" {
				t.Fatalf("conflicts %+v, want one at %s from 50-first.json to 60-second.json", c, tc.key)
			}
			if msg := c[0].String(); !strings.Contains(msg, "50-first.json") || !strings.Contains(msg, "60-second.json") || !strings.Contains(msg, `"`+tc.key+`"`) {
				t.Errorf("conflict %q does not name both fragments and the key", msg)
			}
		})
	}
}

// TestObjectReplacedByNonObjectFails: EIB's dict_merge raises TypeError
// when a later fragment sets a non-object where an object is; eib fails
// naming both fragments and the key.
func TestObjectReplacedByNonObjectFails(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, "50-first.json", `{"images": {"x": 1}}`)
	writeRaw(t, dir, "60-second.json", `{"images": "none"}`)
	_, err := MergeDir(nil, dir)
	var oe *ObjectReplacedError
	if !errors.As(err, &oe) {
		t.Fatalf("want an ObjectReplacedError, got %v", err)
	}
	for _, want := range []string{"50-first.json", "60-second.json", `"images"`, dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// TestHookFragmentWinsOverEibsOwn: eib's own fragments merge first, so a
// hook's ostree.json (EIB's 70-ostree-manifest) keeps its values, eib's
// keys it does not have stay, and each replaced value of eib's is a
// conflict naming eib's fragment.
func TestHookFragmentWinsOverEibsOwn(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, "ostree.json", `{"ostree": {"remote": "eos", "ref": "os/eos/amd64/latest3", "version": "6.0.1", "collection-id": null, "date": "2026-01-16T03:26:40+0000"}}`)
	own, err := Own(OSTreeFile, OSTreeFragment(build.OSTreeInfo{Remote: "eos", Ref: "os/eos/amd64/eos6.0", RefDeploy: "os/eos/amd64/latest3",
		Commit: "c0ffee", Version: "6.0.0", DeployURL: "https://ostree.example/", OS: "eos"},
		OSTreeExtra{Date: time.Date(2026, 1, 16, 3, 26, 40, 0, time.UTC), CollectionID: "com.example.Os"}))
	if err != nil {
		t.Fatal(err)
	}
	m := mergeDir(t, []Fragment{own}, dir)
	o := m.Result()["ostree"].(map[string]any)
	for k, want := range map[string]any{"version": "6.0.1", "collection-id": nil, "ref": "os/eos/amd64/latest3",
		"commit": "c0ffee", "pull_ref": "os/eos/amd64/eos6.0", "url": "https://ostree.example/", "date": "2026-01-16T03:26:40+0000"} {
		if o[k] != want {
			t.Errorf("ostree.%s = %v, want %v", k, o[k], want)
		}
	}
	var keys []string
	for _, c := range m.Conflicts() {
		if c.Earlier != "eib:ostree.json" || c.Later != "ostree.json" {
			t.Errorf("conflict %s: want eib:ostree.json replaced by ostree.json", c)
		}
		keys = append(keys, c.Key)
	}
	if strings.Join(keys, " ") != "ostree.collection-id ostree.version" {
		t.Errorf("conflicts at %v, want ostree.collection-id and ostree.version (ref and date agree)", keys)
	}
}

func TestMergeRejectsInvalidFragmentsNamingTheFile(t *testing.T) {
	for name, text := range map[string]string{
		"broken.json":   `{"a": "unterminated}`,
		"array.json":    `[1, 2]`,
		"trailing.json": `{"a": 1} {"b": 2}`,
		"notes.txt":     `not a fragment`,
	} {
		dir := t.TempDir()
		writeRaw(t, dir, name, text)
		_, err := MergeDir(nil, dir)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: want an error naming the file, got %v", name, err)
		}
	}
	dir := t.TempDir()
	if err := os.Symlink("nowhere.json", filepath.Join(dir, "dangling.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := MergeDir(nil, dir); err == nil || !strings.Contains(err.Error(), "dangling.json") {
		t.Errorf("a dangling link: want an error naming it, got %v", err)
	}
}

// TestFragmentsFromShellHooksWithAwkwardValues is what EIB got wrong: values
// with quotes, backslashes, newlines and non-ASCII characters, written by a
// hook through jq (the way hooks are told to write fragments) and by eib,
// must merge into valid JSON that keeps every value intact.
func TestFragmentsFromShellHooksWithAwkwardValues(t *testing.T) {
	jq, err := exec.LookPath("jq")
	if err != nil {
		t.Fatal("jq is not installed: run make deps (make test does)")
	}
	dir := t.TempDir()
	awkward := "Endless \"OS\" C:\\path\\ naïve 日本語 ☃\ttab\nnewline </script>"
	cmd := exec.Command("bash", "-euc", `"$JQ" -n --arg v "$VALUE" '{hook: {value: $v}}' > "$DIR/80-hook.json"`)
	cmd.Env = append(os.Environ(), "JQ="+jq, "VALUE="+awkward, "DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	own, err := Own(BasicInfoFile, BasicInfo{ProductName: awkward})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.manifest.json")
	if err := Write(mergeDir(t, []Fragment{own}, dir), out, nil); err != nil {
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

func TestEibFragmentsMergeWithoutConflict(t *testing.T) {
	dir := t.TempDir()
	started := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	frags := map[string]any{
		BasicInfoFile: BasicInfo{Product: "eos", ProductName: "Endless OS", Branch: "master", Arch: "amd64",
			Platform: "pc", Personality: "base", BuildVersion: "261122-080000", Builder: Builder{Name: "eib", Version: "v0", Commit: "abc"}},
		ImagesFile: Images([]artifact.Record{{File: "eos.img.zst", Path: "/out/eos.img.zst", Compression: "zst", Size: 10, ExtractedSize: 100,
			SHA256: strings.Repeat("a", 64), ChecksumFile: "eos.img.zst.sha256", SignatureFile: "eos.img.zst.asc"}}, "eos.img.zst"),
		OSTreeFile: OSTreeFragment(build.OSTreeInfo{Remote: "eos", Ref: "os/eos/amd64/master", Commit: strings.Repeat("c", 64), Version: "6.0", DeployURL: "https://ostree.example/", OS: "eos"},
			OSTreeExtra{}),
		BootCheckFile: BootCheck([]build.BootResult{{Image: "eos.img", Firmware: "bios", Result: "ok", Seconds: 13.7, CPUs: 1, AtOnce: true}}),
		TimingsFile: Timings([]build.Timing{
			{Stage: "ostree", Seconds: 1.23456, Status: "ok", Started: started},
			{Stage: "image", Hook: "50-foo", Seconds: 0.5, Status: "ok"},
			{Stage: "image", Seconds: 9, Status: "ok", Started: started.Add(time.Minute)},
		}),
	}
	var own []Fragment
	for name, v := range frags {
		f, err := Own(name, v)
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, f)
	}
	merged := mergeDir(t, own, dir)
	if len(merged.Conflicts()) != 0 {
		t.Errorf("eib's own fragments conflict: %v", merged.Conflicts())
	}
	data, _ := Marshal(merged.Result())
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
			VCPUs    int     `json:"vcpus"`
			AtOnce   bool    `json:"at_once"`
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
	if m.Images["full"] != img {
		t.Errorf("images.full = %+v, want the entry of eos.img.zst", m.Images["full"])
	}
	if m.Product != "eos" || img.SHA256 != strings.Repeat("a", 64) || img.CompressionType != "zst" || img.ExtractedSize != "100" {
		t.Errorf("basic info or images wrong:\n%s", data)
	}
	if m.OSTree.Commit != strings.Repeat("c", 64) || len(m.BootCheck) != 1 || m.BootCheck[0].Seconds != 13.7 ||
		m.BootCheck[0].VCPUs != 1 || !m.BootCheck[0].AtOnce {
		t.Errorf("ostree or boot check wrong:\n%s", data)
	}
	if m.Timings["ostree"].Seconds != 1.235 || m.Timings["image"].Hooks["50-foo"].Seconds != 0.5 ||
		m.Timings["image"].Started != "2026-11-22T08:01:00Z" {
		t.Errorf("timings wrong:\n%s", data)
	}
}

func TestImagesFoldTheRawImageIntoItsCompressedEntry(t *testing.T) {
	outputs := []artifact.Record{
		{File: "eos.img.xz", Path: "/out/eos.img.xz", Compression: "xz", Size: 10, ExtractedSize: 100,
			SHA256: "c1", ChecksumFile: "eos.img.xz.sha256", SignatureFile: "eos.img.xz.asc"},
		{File: "eos.img", Size: 100, ExtractedSize: 100, SHA256: "r1", ChecksumFile: "eos.img.sha256", SignatureFile: "eos.img.asc"},
		{File: "eos.qcow2", Path: "/out/eos.qcow2", Size: 20, ExtractedSize: 100, SHA256: "q1"},
		{File: "lonely.img", Size: 5, ExtractedSize: 5, SHA256: "l1"},
	}
	got := Images(outputs, "eos.img.xz")["images"].(map[string]Image)
	want := map[string]Image{
		"eos.img.xz": {File: "eos.img.xz", CompressedSize: 10, ExtractedSize: 100, CompressionType: "xz", SHA256: "c1",
			Checksum: "eos.img.xz.sha256", Signature: "eos.img.xz.asc",
			ExtractedFile: "eos.img", ExtractedSHA256: "r1", ExtractedChecksum: "eos.img.sha256", ExtractedSignature: "eos.img.asc"},
		"eos.qcow2": {File: "eos.qcow2", CompressedSize: 20, ExtractedSize: 100, SHA256: "q1"},
		// EIB's key of the main image.
		"full": {File: "eos.img.xz", CompressedSize: 10, ExtractedSize: 100, CompressionType: "xz", SHA256: "c1",
			Checksum: "eos.img.xz.sha256", Signature: "eos.img.xz.asc",
			ExtractedFile: "eos.img", ExtractedSHA256: "r1", ExtractedChecksum: "eos.img.sha256", ExtractedSignature: "eos.img.asc"},
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
			err := Write(mergeDir(t, nil, dir), out, []string{"", secret})
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
	if err := Write(mergeDir(t, nil, dir), filepath.Join(t.TempDir(), "m.json"), []string{secret}); err != nil {
		t.Errorf("a clean manifest: %v", err)
	}
}

// TestOSTreeFragmentHasEIBsKeys: the keys and meanings of EIB's
// 70-ostree-manifest: ref is the ref the system follows (ref_deploy), the
// version is os-release's when known, the date is %Y-%m-%dT%H:%M:%S%z in
// UTC, collection-id is null without one.
func TestOSTreeFragmentHasEIBsKeys(t *testing.T) {
	info := build.OSTreeInfo{Remote: "eos", Ref: "os/eos/amd64/eos6.0", RefDeploy: "os/eos/amd64/eos6", Commit: "c1", Version: "meta-6.0",
		DeployURL: "https://ostree.example/eos", OS: "eos"}
	date := time.Date(2026, 1, 16, 11, 26, 40, 0, time.FixedZone("CST", 8*3600))
	for _, tc := range []struct {
		x    OSTreeExtra
		want string
	}{
		{OSTreeExtra{}, `{"ostree":{"collection-id":null,"commit":"c1","os":"eos","pull_ref":"os/eos/amd64/eos6.0","ref":"os/eos/amd64/eos6","ref_deploy":"os/eos/amd64/eos6","remote":"eos","url":"https://ostree.example/eos","version":"meta-6.0"}}`},
		{OSTreeExtra{OSVersion: "6.0.3", Date: date, CollectionID: "com.example.Os"},
			`{"ostree":{"collection-id":"com.example.Os","commit":"c1","date":"2026-01-16T03:26:40+0000","os":"eos","pull_ref":"os/eos/amd64/eos6.0","ref":"os/eos/amd64/eos6","ref_deploy":"os/eos/amd64/eos6","remote":"eos","url":"https://ostree.example/eos","version":"6.0.3"}}`},
	} {
		f, err := Own(OSTreeFile, OSTreeFragment(info, tc.x))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(f.Data)
		if string(got) != tc.want {
			t.Errorf("ostree fragment\n got %s\nwant %s", got, tc.want)
		}
	}
}
