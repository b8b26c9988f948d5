// Package manifest runs the manifest, publish and error stages through the
// real eib binary with a local directory whose buildscript lists only
// manifest and publish: what a build publishes, what a failed build
// publishes, and what a dry run leaves alone.
package manifest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

const secret = "s3cr3t-PRIVATE-token-4242"

// awkward is a value EIB's heredoc fragments broke on.
const awkward = `Endless "OS" C:\path\ naïve 日本語 ☃ $HOME ${x} 'q'`

// site is one build's directories: a local dir with config, hooks and a
// buildscript, a cache dir, a sysconfdir and a publish directory.
type site struct {
	*harness.Project
	pub string
}

func newSite(t *testing.T, hooks map[string]string) *site {
	t.Helper()
	harness.Need(t, "jq", "rsync", "sha256sum")
	s := &site{Project: harness.NewProject(t)}
	s.pub = filepath.Join(s.Dir, "pub")
	var names []string
	for name := range hooks {
		names = append(names, name)
	}
	files := map[string]string{
		"buildscript": "manifest\npublish\n",
		"config/defaults.ini": fmt.Sprintf("[build]\ncachedir = %s\n\n[image]\nproduct_name = %s\n\n[manifest]\nhooks = %s\n\n[publish]\ndir = %s\n",
			s.Cache, strings.ReplaceAll(awkward, "$", "$$"), strings.Join(names, " "), s.pub),
		"config/private.ini": "[publish]\napi_token = " + secret + "\n",
	}
	for name, text := range hooks {
		files["hooks/manifest/"+name] = text
	}
	harness.WriteFiles(t, s.Local, files)
	t.Cleanup(func() { harness.AssertNoLeftovers(t, s.Dir) })
	return s
}

// run runs eib; it returns the combined output and the exit code.
func (s *site) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := s.Command(context.Background(), eibBin, srcRoot, args...)
	out, err := cmd.CombinedOutput()
	return string(out), harness.Code(t, err, cmd)
}

// published returns every file under the publish directory, relative.
func (s *site) published(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	filepath.Walk(s.pub, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			data, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			rel, _ := filepath.Rel(s.pub, path)
			files[rel] = data
		}
		return nil
	})
	return files
}

// The hooks write fragments with jq (never with heredocs) and print the
// private value, which the build log must mask.
const hookAwkward = `# shellcheck shell=bash
echo "the token is $EIB_PUBLISH_API_TOKEN"
jq -n --arg v "$EIB_IMAGE_PRODUCT_NAME" '{custom: {value: $v, list: [1, 2]}}' > "$EIB_MANIFESTDIR/50-awkward.json"
`

func TestBuildPublishesValidManifestAndNoSecret(t *testing.T) {
	s := newSite(t, map[string]string{"50-awkward": hookAwkward})
	out, code := s.run(t)
	if code != 0 {
		t.Fatalf("eib exited %d:\n%s", code, out)
	}
	files := s.published(t)
	var manifestFile, ov string
	for name := range files {
		if strings.HasSuffix(name, ".manifest.json") {
			manifestFile = name
			ov = filepath.Dir(name)
		}
	}
	if manifestFile == "" || filepath.Base(manifestFile) != ov+".manifest.json" {
		t.Fatalf("no <ov>/<ov>.manifest.json published; published: %v", keys(files))
	}
	for _, want := range []string{ov + "/SHA256SUMS", ov + "/" + ov + ".build.txt"} {
		if _, ok := files[want]; !ok {
			t.Errorf("%s was not published; published: %v", want, keys(files))
		}
	}
	data := files[manifestFile]
	if !json.Valid(data) {
		t.Fatalf("the manifest is not valid JSON:\n%s", data)
	}
	var m struct {
		Product     string `json:"product"`
		ProductName string `json:"product_name"`
		Custom      struct {
			Value string `json:"value"`
		} `json:"custom"`
		Timings map[string]struct {
			Hooks map[string]struct{ Status string } `json:"hooks"`
		} `json:"timings"`
		Builder struct{ Commit string } `json:"builder"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.ProductName != awkward || m.Custom.Value != awkward {
		t.Errorf("values changed on their way through config, hook and merge:\n got %q and %q\nwant %q", m.ProductName, m.Custom.Value, awkward)
	}
	if m.Timings["manifest"].Hooks["manifest/50-awkward"].Status != "ok" {
		t.Errorf("the manifest hook's timing is missing:\n%s", data)
	}
	if m.Product != "eoscustom" {
		t.Errorf("product = %q", m.Product)
	}
	// Keys are sorted: the encoder writes them in order.
	if i, j := bytes.Index(data, []byte(`"arch"`)), bytes.Index(data, []byte(`"timings"`)); i < 0 || j < i {
		t.Errorf("keys are not sorted:\n%s", data)
	}
	if !bytes.Contains(files[ov+"/"+ov+".build.txt"], []byte("the token is ***")) {
		t.Errorf("the published build log does not show the masked hook output")
	}
	for name, content := range files {
		if bytes.Contains(content, []byte(secret)) {
			t.Errorf("the private value is published in %s", name)
		}
	}
	// The full SHA256SUMS verifies the published copy.
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = filepath.Join(s.pub, ov)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c in the published release: %v\n%s", err, out)
	}
}

// manifestOf reads the merged manifest the build left in outdir.
func (s *site) manifestOf(t *testing.T) map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.Cache, "build", "out", "*.manifest.json"))
	if len(files) != 1 {
		t.Fatalf("want one manifest in outdir, found %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
	return m
}

// TestLaterFragmentWinsAndTheConflictIsLogged: as EIB's
// helpers/assemble-manifest, the later fragment's value wins; eib says so in
// the build log, naming the key and both fragments.
func TestLaterFragmentWinsAndTheConflictIsLogged(t *testing.T) {
	s := newSite(t, map[string]string{
		"50-one": "jq -n '{release: {channel: \"stable\", track: \"lts\"}}' > \"$EIB_MANIFESTDIR/50-one.json\"\n",
		"60-two": "jq -n '{release: {channel: \"beta\"}}' > \"$EIB_MANIFESTDIR/60-two.json\"\n",
	})
	out, code := s.run(t, "--dry-run")
	if code != 0 {
		t.Fatalf("eib exited %d:\n%s", code, out)
	}
	rel, _ := s.manifestOf(t)["release"].(map[string]any)
	if rel["channel"] != "beta" || rel["track"] != "lts" {
		t.Errorf("release = %v, want channel beta (the later fragment) and track lts", rel)
	}
	if !strings.Contains(out, `manifest: key "release.channel": "stable" from 50-one.json replaced by "beta" from 60-two.json`) {
		t.Errorf("the conflict is not logged naming the key and both fragments:\n%s", out)
	}
}

// TestHookFragmentIsNeverOverwrittenByEibs: a hook's fragment named like
// one of eib's (basic-info.json, as EIB's stages/eib_manifest names it)
// stays as the hook wrote it; its values win over eib's, eib's other keys
// stay, and each replaced value of eib's is logged. A fragment without
// .json (EIB's "images") is merged too.
func TestHookFragmentIsNeverOverwrittenByEibs(t *testing.T) {
	const frag = `{"product": "hooked", "notes": "from a hook"}`
	s := newSite(t, map[string]string{
		"50-basic": "echo '" + frag + "' > \"$EIB_MANIFESTDIR/basic-info.json\"\n",
		"60-eib":   "jq -n '{images: {full: {file: \"x.img.gz\", compression_type: \"gz\"}}}' > \"$EIB_MANIFESTDIR/images\"\n",
	})
	out, code := s.run(t, "--dry-run")
	if code != 0 {
		t.Fatalf("eib exited %d:\n%s", code, out)
	}
	m := s.manifestOf(t)
	if m["product"] != "hooked" || m["notes"] != "from a hook" {
		t.Errorf("product %v, notes %v: want the hook's", m["product"], m["notes"])
	}
	if m["arch"] == nil || m["builder"] == nil || m["personality"] != "base" {
		t.Errorf("eib's basic info keys are gone: %v", m)
	}
	if full, _ := m["images"].(map[string]any)["full"].(map[string]any); full["file"] != "x.img.gz" {
		t.Errorf("images.full = %v, want the file written as EIB's images fragment", full)
	}
	if !strings.Contains(out, `manifest: key "product": "eoscustom" from eib:basic-info.json replaced by "hooked" from basic-info.json`) {
		t.Errorf("the replaced value of eib's is not logged:\n%s", out)
	}
	got, err := os.ReadFile(filepath.Join(s.Cache, "build", "tmp", "manifest", "basic-info.json"))
	if err != nil || strings.TrimSpace(string(got)) != frag {
		t.Errorf("the hook's basic-info.json is now %q (%v), want it as the hook wrote it", got, err)
	}
}

// TestObjectReplacedByAValueFailsTheBuildNamingBoth: EIB's merge refuses a
// later non-object where an earlier fragment has an object; so does eib,
// naming both fragments, and a failed build publishes only its log.
func TestObjectReplacedByAValueFailsTheBuildNamingBoth(t *testing.T) {
	s := newSite(t, map[string]string{
		"50-one": "jq -n '{release: {channel: \"stable\"}}' > \"$EIB_MANIFESTDIR/50-one.json\"\n",
		"60-two": "jq -n '{release: \"beta\"}' > \"$EIB_MANIFESTDIR/60-two.json\"\n",
	})
	out, code := s.run(t)
	if code != 2 {
		t.Fatalf("eib exited %d, want 2 (build failure):\n%s", code, out)
	}
	for _, want := range []string{"50-one.json", "60-two.json", `"release"`, "stage manifest"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not name %q:\n%s", want, out)
		}
	}
	// Only the failed build's log is published, nothing of a release.
	files := s.published(t)
	if len(files) != 1 {
		t.Fatalf("published %v, want only <ov>.failed.build.txt", keys(files))
	}
	for name, content := range files {
		if !strings.HasSuffix(name, ".failed.build.txt") || strings.Contains(name, "/") {
			t.Errorf("published %s, want only <ov>.failed.build.txt", name)
		}
		if !bytes.Contains(content, []byte("60-two.json")) {
			t.Errorf("the failed log lacks the error:\n%s", content)
		}
		if bytes.Contains(content, []byte(secret)) {
			t.Errorf("the private value is published in %s", name)
		}
	}
}

func TestPrivateValueInAFragmentFailsTheBuild(t *testing.T) {
	s := newSite(t, map[string]string{
		"50-leak": "jq -n --arg t \"$EIB_PUBLISH_API_TOKEN\" '{upload: {auth: $t}}' > \"$EIB_MANIFESTDIR/50-leak.json\"\n",
	})
	out, code := s.run(t)
	if code != 2 {
		t.Fatalf("eib exited %d, want 2 (build failure):\n%s", code, out)
	}
	if !strings.Contains(out, "manifest fragment 50-leak.json") || !strings.Contains(out, "upload.auth") {
		t.Errorf("the failure does not name the fragment and key:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("eib printed the private value:\n%s", out)
	}
	for name, content := range s.published(t) {
		if !strings.HasSuffix(name, ".failed.build.txt") {
			t.Errorf("published %s on a failed build", name)
		}
		if bytes.Contains(content, []byte(secret)) {
			t.Errorf("the private value is published in %s", name)
		}
	}
}

func TestDryRunPublishesNothing(t *testing.T) {
	s := newSite(t, map[string]string{"50-awkward": hookAwkward})
	out, code := s.run(t, "--dry-run")
	if code != 0 {
		t.Fatalf("eib --dry-run exited %d:\n%s", code, out)
	}
	if _, err := os.Stat(s.pub); !os.IsNotExist(err) {
		t.Errorf("a dry run touched the publish directory: %v %v", err, keys(s.published(t)))
	}
	// The manifest is still made.
	matches, _ := filepath.Glob(filepath.Join(s.Cache, "build", "out", "*.manifest.json"))
	if len(matches) != 1 {
		t.Errorf("a dry run wrote no manifest in outdir:\n%s", out)
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for name := range m {
		k = append(k, name)
	}
	return k
}
