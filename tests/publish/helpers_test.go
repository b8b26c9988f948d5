// Package publish tests eib's destinations (lib/publish) and the publish
// and error stages against real destinations: a local directory, a real
// sshd on 127.0.0.1 (rsync over ssh), and an S3-compatible server
// (gofakes3) on 127.0.0.1 reached with the AWS SDK for Go.
package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/tests/harness"
)

// eibBin is eib, built once for the tests that run builds.
var eibBin string

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

const testOV = "eos-master-amd64-pc.261122-080000.base"

// release is a finished build's outdir: an image, its checksum file, a
// manifest, and SHA256SUMS written by publish.WriteSums.
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
	r.writeSums(t)
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

// writeSums writes SHA256SUMS (unsigned, no output records) and re-reads
// outdir.
func (r *release) writeSums(t *testing.T) {
	t.Helper()
	if _, err := publish.WriteSums(context.Background(), r.outdir, nil, nil); err != nil {
		t.Fatalf("WriteSums: %v", err)
	}
	r.load(t)
}

// env is the configuration of a build with this outdir as the EIB_*
// variables of its keys; extra entries (KEY=VALUE) are appended.
func (r *release) env(t *testing.T, extra ...string) []string {
	return append([]string{"EIB_OUTDIR=" + r.outdir, "EIB_OUTVERSION=" + r.ov}, extra...)
}

// settingsOf is the publish.Settings of the [publish] keys in env.
func settingsOf(env []string, log *strings.Builder) publish.Settings {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return publish.Settings{
		Dir:            m["EIB_PUBLISH_DIR"],
		RsyncDest:      m["EIB_PUBLISH_RSYNC_DEST"],
		RsyncOptions:   strings.Fields(m["EIB_PUBLISH_RSYNC_OPTIONS"]),
		SSHKey:         m["EIB_PUBLISH_SSH_KEY"],
		SSHKnownHosts:  m["EIB_PUBLISH_SSH_KNOWN_HOSTS"],
		SSHPort:        m["EIB_PUBLISH_SSH_PORT"],
		S3Bucket:       m["EIB_PUBLISH_S3_BUCKET"],
		S3Endpoint:     m["EIB_PUBLISH_S3_ENDPOINT"],
		S3Prefix:       m["EIB_PUBLISH_S3_PREFIX"],
		S3Region:       m["EIB_PUBLISH_S3_REGION"],
		AWSCredentials: m["EIB_PUBLISH_AWS_CREDENTIALS"],
		Logf:           func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) },
	}
}

// publishCtx publishes the release of env (EIB_OUTDIR, EIB_OUTVERSION) to
// every destination env configures, as the publish stage does, logging
// to log.
func publishCtx(ctx context.Context, env []string, log *strings.Builder) error {
	var outdir, ov string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "EIB_OUTDIR="); ok {
			outdir = v
		}
		if v, ok := strings.CutPrefix(kv, "EIB_OUTVERSION="); ok {
			ov = v
		}
	}
	ds, errs := publish.Destinations(settingsOf(env, log))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, d := range ds {
		if err := d.Publish(ctx, outdir, ov); err != nil {
			return fmt.Errorf("publishing to %s: %w", d, err)
		}
	}
	return nil
}

// runPublish is publishCtx with a timeout; its output is the log and the
// error.
func runPublish(t *testing.T, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var log strings.Builder
	err := publishCtx(ctx, env, &log)
	if err != nil {
		fmt.Fprintf(&log, "%v\n", err)
	}
	return log.String(), err
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
