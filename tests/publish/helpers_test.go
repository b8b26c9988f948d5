// Package publish tests the shipped publish and error hooks against real
// destinations: a local directory, a real sshd on 127.0.0.1 (rsync over
// ssh), and an S3-compatible server (gofakes3) on 127.0.0.1 driven by the
// AWS CLI.
package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// eibBin is eib, built once for the tests that need `eib sign`.
var eibBin string

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

const testOV = "eos-master-amd64-pc.261122-080000.base"

// release is a finished build's outdir: an image, its checksum file, a
// manifest, and SHA256SUMS written by the shipped 42-sha256sums hook.
type release struct {
	outdir string
	ov     string
	files  map[string][]byte // name -> content, SHA256SUMS included
}

func makeRelease(t *testing.T, imageSize int) *release {
	t.Helper()
	r := &release{outdir: filepath.Join(t.TempDir(), "out"), ov: testOV, files: map[string][]byte{}}
	if err := os.MkdirAll(r.outdir, 0o755); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, imageSize)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	for name, content := range map[string][]byte{
		r.ov + ".img.zst":        img,
		r.ov + ".img.zst.sha256": []byte(hex.EncodeToString(sum[:]) + "  " + r.ov + ".img.zst\n"),
		r.ov + ".manifest.json":  []byte(`{"product": "eos", "product_name": "Endless \"OS\" ☃"}` + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(r.outdir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runHook(t, "publish", "42-sha256sums", r.env(t)); err != nil {
		t.Fatalf("42-sha256sums: %v\n%s", err, out)
	}
	r.load(t)
	return r
}

// load re-reads the files of outdir.
func (r *release) load(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(r.outdir)
	if err != nil {
		t.Fatal(err)
	}
	r.files = map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(r.outdir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r.files[e.Name()] = data
	}
}

// env is the hook environment of a build with this outdir; extra entries
// (KEY=VALUE) are appended.
func (r *release) env(t *testing.T, extra ...string) []string {
	tmp := t.TempDir()
	return append([]string{"EIB_OUTDIR=" + r.outdir, "EIB_OUTVERSION=" + r.ov, "EIB_TMPDIR=" + tmp, "EIB_DRY_RUN=false"}, extra...)
}

// hookEnv is the host environment without EIB_* and AWS_* variables, plus env.
func hookEnv(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "EIB_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

func hookCmd(ctx context.Context, t *testing.T, group, name string, env []string) *exec.Cmd {
	t.Helper()
	hook := filepath.Join(harness.Src(), "hooks", group, name)
	cmd := exec.CommandContext(ctx, hook)
	if os.Getenv("EIB_TEST_TRACE") != "" {
		// Debugging aid: trace the hook with timestamps.
		cmd = exec.CommandContext(ctx, "bash", "-c", `PS4='+ $(date +%T.%N) '; set -x; . "$0"`, hook)
	}
	cmd.Env = hookEnv(env)
	return cmd
}

// runHook runs one shipped hook directly, as the hook runner does for an
// executable hook, and returns its combined output.
func runHook(t *testing.T, group, name string, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := hookCmd(ctx, t, group, name, env).CombinedOutput()
	return string(out), err
}

// assertRelease checks that dir holds exactly the release's files.
func assertRelease(t *testing.T, dir string, r *release) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("published release: %v", err)
	}
	if len(entries) != len(r.files) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want the %d files of the release", dir, names, len(r.files))
	}
	for name, want := range r.files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("published %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("published %s differs from outdir (%d bytes, want %d)", name, len(got), len(want))
		}
	}
}

func assertMissing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists (err %v), want nothing there", path, err)
	}
}
