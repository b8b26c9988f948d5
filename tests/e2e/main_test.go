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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check/checktest"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot  = harness.Src() // the eib tree
	eibBin   string          // eib built for these tests
	demoRepo string          // the demo OS archive repo (helpers/make-demo-repo)
	demoKey  string          // its public signing key
	repoURL  string          // where the repo is served
	tmp      string          // this run's temporary directory

	demoOnce sync.Once
	setupErr error // why the demo could not be prepared
)

// TestMain builds eib once. The first test that needs the demo OS repo
// builds it (helpers/make-demo-repo) and serves it over HTTP on 127.0.0.1
// for the others. EIB_TEST_DEMO_CACHE may name a make-demo-repo cache to
// reuse between runs (default: a temporary one, which downloads the kernel
// package each run).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eib-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmp = dir
	code := harness.RunTests(m, &eibBin, nil)
	os.RemoveAll(dir)
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
	harness.Need(t, "ostree", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage")
	demoOnce.Do(func() { setupErr = prepareDemo(tmp) })
	if setupErr != nil {
		t.Fatalf("preparing the demo OS repo: %v", setupErr)
	}
}

// project is one eib run's temporary directories (harness.Project) and
// its publish directory pubs. Its cleanup fails the test for any QEMU
// process whose command line names the directory, and for any mount,
// loop device or process left under it.
type project struct {
	*harness.Project
	pubs string
}

func newProject(t *testing.T) *project {
	t.Helper()
	p := &project{Project: harness.NewProject(t)}
	p.pubs = filepath.Join(p.Dir, "published")
	t.Cleanup(func() {
		if left := checktest.QEMUProcesses(t, p.Dir); len(left) != 0 {
			t.Errorf("qemu processes left behind: %v", left)
		}
		harness.AssertNoLeftovers(t, p.Dir)
	})
	return p
}

// newDemoProject writes a localdir for `eib --product demo`: the demo key,
// the served URL, a temporary cachedir and publish directory, plus extra
// INI text for local config/defaults.ini (read after the product files).
func newDemoProject(t *testing.T, extra string) *project {
	t.Helper()
	p := newProject(t)
	key, err := os.ReadFile(demoKey)
	if err != nil {
		t.Fatal(err)
	}
	p.Write("data/keys/eib-demo.asc", string(key), 0o644)
	p.Write("config/product/demo.ini", "[ostree]\npull_url = "+repoURL+"\n", 0o644)
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+p.pubs+"\n\n"+extra, 0o644)
	return p
}

// eib runs `eib args...` (no --localdir) in this project's environment
// and returns its combined output and exit code.
func (p *project) eib(args ...string) (string, int) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, eibBin, args...)
	cmd.Env = p.Env(srcRoot)
	return p.combined(cmd)
}

// build runs `eib --localdir LOCAL --product demo master`.
func (p *project) build(extraArgs ...string) (string, int) {
	p.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	return p.combined(p.buildCommand(ctx, extraArgs...))
}

// buildCommand is the command of build, not started.
func (p *project) buildCommand(ctx context.Context, extraArgs ...string) *exec.Cmd {
	return p.Command(ctx, eibBin, srcRoot, append([]string{"--product", "demo"}, append(extraArgs, "master")...)...)
}

// combined runs cmd to the end and returns its combined output and exit
// code, logging how long it took.
func (p *project) combined(cmd *exec.Cmd) (string, int) {
	p.T.Helper()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := harness.Code(p.T, err, cmd)
	p.T.Logf("eib %s: exit %d in %.1f s", strings.Join(cmd.Args[1:], " "), code, time.Since(start).Seconds())
	return string(out), code
}

// manifest reads the merged manifest of the build from outdir.
func (p *project) manifest() map[string]any {
	p.T.Helper()
	files, _ := filepath.Glob(filepath.Join(p.Outdir(), "*.manifest.json"))
	if len(files) != 1 {
		p.T.Fatalf("want one manifest in %s, found %v", p.Outdir(), files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		p.T.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		p.T.Fatalf("%s: %v", files[0], err)
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
