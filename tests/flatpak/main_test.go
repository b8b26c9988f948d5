// Package flatpak builds the demo OS with preinstalled Flatpak apps from a
// Flatpak repository the test makes itself (make-repo.sh: Debian's
// flatpak build-init/build-finish/build-export) and serves on 127.0.0.1,
// and checks the image, the manifest, eib --show-apps and the failures of
// bad remotes.
package flatpak

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// testRepo is the Flatpak repository of make-repo.sh, served.
type testRepo struct {
	Dir  string // repo/, key.gpg, key.asc
	URL  string // http://127.0.0.1:PORT/
	srv  *countingServer
	key  []byte
	stop func()
}

// countingServer serves a directory on 127.0.0.1 and counts the bytes of
// the object and delta files it sends (content), apart from the rest
// (summaries, signatures, commit metadata).
type countingServer struct {
	content, meta atomic.Int64
	requests      atomic.Int64
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

func serve(t *testing.T, dir string) (string, *countingServer, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingServer{}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.requests.Add(1)
		n := &cs.meta
		if (strings.HasPrefix(r.URL.Path, "/objects/") && !strings.HasSuffix(r.URL.Path, ".commitmeta") && !strings.HasSuffix(r.URL.Path, ".commit")) ||
			strings.HasPrefix(r.URL.Path, "/deltas/") {
			n = &cs.content
		}
		files.ServeHTTP(countingWriter{w, n}, r)
	})}
	go srv.Serve(ln)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String() + "/", cs, stop
}

// newTestRepo builds (or reuses) the repository and serves it.
func newTestRepo(t *testing.T) testRepo {
	t.Helper()
	dir := harness.FlatpakTestRepo(t)
	key, err := os.ReadFile(filepath.Join(dir, "key.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	url, cs, stop := serve(t, filepath.Join(dir, "repo"))
	return testRepo{Dir: dir, URL: url, srv: cs, key: key, stop: stop}
}

// repoFile is a .flatpakrepo file for the served repository (withKey:
// its GPGKey).
func (r testRepo) repoFile(withKey bool) string {
	s := "[Flatpak Repo]\nTitle=eib test apps\nUrl=" + r.URL + "\n"
	if withKey {
		s += "GPGKey=" + base64.StdEncoding.EncodeToString(r.key) + "\n"
	}
	return s
}

// project is a demo build's directories, with the demo OS served.
type project struct {
	*harness.Project
	pubs string
}

func newProject(t *testing.T, config string) *project {
	t.Helper()
	harness.NeedDemo(t, "ostree", "flatpak", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage", "debugfs", "zstd")
	p := &project{Project: harness.NewProject(t)}
	p.pubs = filepath.Join(p.Dir, "published")
	t.Cleanup(func() { harness.AssertNoLeftovers(t, p.Dir) })
	harness.DemoRepo(t).Install(t, p.Local)
	// No boot check: the demo OS has no flatpak; what is installed is
	// read from the disk image.
	p.Write("buildscript", "ostree\nimage\nmanifest\npublish\n", 0o644)
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+config, 0o644)
	return p
}

// eib runs eib with the project's localdir and args, returning its
// combined output and exit code.
func (p *project) eib(args ...string) (string, int) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := p.Command(ctx, eibBin, srcRoot, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	code := harness.Code(p.T, err, cmd)
	p.T.Logf("eib %s: exit %d in %.1f s", strings.Join(args, " "), code, time.Since(start).Seconds())
	return out.String(), code
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// run runs a command and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// rootPartition returns the raw image decompressed from the published
// .img.zst and the byte offset of its root (ext4, label ostree) partition.
func rootPartition(t *testing.T, outdir string) (string, int64) {
	t.Helper()
	imgs, _ := filepath.Glob(filepath.Join(outdir, "*.img.zst"))
	if len(imgs) != 1 {
		t.Fatalf("want one .img.zst in %s: %v", outdir, imgs)
	}
	raw := filepath.Join(t.TempDir(), "image.raw")
	run(t, "zstd", "-q", "-d", "-o", raw, imgs[0])
	var table struct {
		PartitionTable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Start int64  `json:"start"`
				Type  string `json:"type"`
				Name  string `json:"name"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(run(t, "sfdisk", "-J", raw)), &table); err != nil {
		t.Fatal(err)
	}
	ss := table.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	for _, pt := range table.PartitionTable.Partitions {
		off := pt.Start * ss
		out, err := exec.Command("debugfs", "-R", "ls /ostree/deploy", fmt.Sprintf("%s?offset=%d", raw, off)).CombinedOutput()
		if err == nil && strings.Contains(string(out), "eib-demo") {
			return raw, off
		}
	}
	t.Fatalf("no partition of %s has /ostree/deploy/eib-demo", raw)
	return "", 0
}

// dumpFromImage copies path of the image's root partition into a new
// directory and returns the copy.
func dumpFromImage(t *testing.T, raw string, off int64, path string) string {
	t.Helper()
	dst := t.TempDir()
	run(t, "debugfs", "-R", "rdump "+path+" "+dst, fmt.Sprintf("%s?offset=%d", raw, off))
	return filepath.Join(dst, filepath.Base(path))
}
