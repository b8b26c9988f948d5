// Package e2e builds the demo OS image end to end through the real eib
// binary (OSTree pull over HTTP, deploy, disk image, boot checks under
// QEMU, manifest, publish) into temporary directories, and checks that a
// broken image or a marker that never appears fails the build.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check/checktest"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src() // the eib tree
	eibBin  string          // eib built for these tests
)

// TestMain builds eib once. The first test that needs the demo OS repo
// builds and serves it for the others (harness.DemoRepo;
// EIB_TEST_DEMO_CACHE may name a make-demo-repo cache to reuse between
// runs).
func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// needDemo skips a test that cannot run here, and fails one whose demo
// repo could not be built.
func needDemo(t *testing.T) {
	t.Helper()
	harness.NeedDemo(t, "ostree", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage")
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
	harness.DemoRepo(t).Install(t, p.Local)
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
