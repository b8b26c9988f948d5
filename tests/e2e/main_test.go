// Package e2e builds the demo OS image end to end through the real eib
// binary (OSTree pull over HTTP, deploy, disk image, boot checks under
// QEMU, manifest, publish) into temporary directories, and checks that a
// broken image or a marker that never appears fails the build.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check/checktest"
)

var (
	srcRoot  string // the eib tree
	eibBin   string // eib built for these tests
	demoRepo string // the demo OS archive repo (helpers/make-demo-repo)
	demoKey  string // its public signing key
	repoURL  string // where the repo is served
	tmp      string // this run's temporary directory

	demoOnce sync.Once
	setupErr error // why the demo could not be prepared
)

// TestMain builds eib once. The first test that needs the demo OS repo
// builds it (helpers/make-demo-repo) and serves it over HTTP on 127.0.0.1
// for the others. EIB_TEST_DEMO_CACHE may name a make-demo-repo cache to
// reuse between runs (default: a temporary one, which downloads the kernel
// package each run).
func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	srcRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	dir, err := os.MkdirTemp("", "eib-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		eibBin = filepath.Join(dir, "eib")
		cmd := exec.Command("go", "build", "-o", eibBin, "./cmd/eib")
		cmd.Dir = srcRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building eib: %v\n%s", err, out)
			return 1
		}
		tmp = dir
		return m.Run()
	}()
	os.Exit(code)
}

// prepareDemo builds the demo repo and serves it.
func prepareDemo(dir string) error {
	cache := os.Getenv("EIB_TEST_DEMO_CACHE")
	if cache == "" {
		cache = filepath.Join(dir, "demo-cache")
	}
	cmd := exec.Command(filepath.Join(srcRoot, "helpers", "make-demo-repo"), "--cache", cache)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("helpers/make-demo-repo --cache %s: %v\n%s", cache, err, stderr.String())
	}
	demoRepo = strings.TrimSpace(string(out))
	demoKey = filepath.Join(cache, "keys", "eib-demo.asc")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.FileServer(http.Dir(demoRepo)))
	repoURL = "http://" + ln.Addr().String() + "/"
	return nil
}

// needDemo skips a test that cannot run here, and fails one whose demo
// repo could not be built.
func needDemo(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the demo build deploys an OSTree sysroot and needs root")
	}
	checktest.Need(t, "ostree", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage")
	demoOnce.Do(func() { setupErr = prepareDemo(tmp) })
	if setupErr != nil {
		t.Fatalf("preparing the demo OS repo: %v", setupErr)
	}
}

// project is one demo build: a localdir, cachedir, sysconfdir, lock and
// publish directory, all temporary.
type project struct {
	t                                      *testing.T
	dir, local, cache, sysconf, lock, pubs string
}

// newProject writes a localdir for `eib --product demo`: the demo key,
// the served URL, a temporary cachedir and publish directory, plus extra
// INI text for local config/defaults.ini (read after the product files).
func newProject(t *testing.T, extra string) *project {
	t.Helper()
	dir := t.TempDir()
	p := &project{t: t, dir: dir, local: filepath.Join(dir, "local"), cache: filepath.Join(dir, "cache"),
		sysconf: filepath.Join(dir, "etc-eib"), lock: filepath.Join(dir, "eib.lock"), pubs: filepath.Join(dir, "published")}
	key, err := os.ReadFile(demoKey)
	if err != nil {
		t.Fatal(err)
	}
	p.write("data/keys/eib-demo.asc", string(key))
	p.write("config/product/demo.ini", "[ostree]\npull_url = "+repoURL+"\n")
	p.write("config/defaults.ini", "[build]\ncachedir = "+p.cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+extra)
	if err := os.MkdirAll(p.sysconf, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left := checktest.QEMUProcesses(t, dir); len(left) != 0 {
			t.Errorf("qemu processes left behind: %v", left)
		}
	})
	return p
}

func (p *project) write(rel, content string) {
	p.t.Helper()
	path := filepath.Join(p.local, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// eib runs the eib binary for this project and returns its combined
// output and exit code.
func (p *project) eib(args ...string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, eibBin, args...)
	cmd.Env = append(os.Environ(), "EIB_SRCDIR="+srcRoot, "EIB_SYSCONFDIR="+p.sysconf, "EIB_LOCK_FILE="+p.lock)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			p.t.Fatalf("eib %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		code = ee.ExitCode()
	}
	p.t.Logf("eib %s: exit %d in %.1f s", strings.Join(args, " "), code, time.Since(start).Seconds())
	return string(out), code
}

// build runs `eib --product demo --localdir LOCAL master`.
func (p *project) build(extraArgs ...string) (string, int) {
	return p.eib(append([]string{"--product", "demo", "--localdir", p.local}, append(extraArgs, "master")...)...)
}

func (p *project) tmpdir() string { return filepath.Join(p.cache, "build", "tmp") }
func (p *project) outdir() string { return filepath.Join(p.cache, "build", "out") }

// manifest reads the merged manifest of the build from outdir.
func (p *project) manifest() map[string]any {
	p.t.Helper()
	files, _ := filepath.Glob(filepath.Join(p.outdir(), "*.manifest.json"))
	if len(files) != 1 {
		p.t.Fatalf("want one manifest in %s, found %v", p.outdir(), files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		p.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		p.t.Fatalf("%s: %v", files[0], err)
	}
	return m
}

// published lists the files under the publish directory.
func (p *project) published() []string {
	var files []string
	filepath.WalkDir(p.pubs, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(p.pubs, path)
			files = append(files, rel)
		}
		return nil
	})
	return files
}
