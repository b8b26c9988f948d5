// Package ostree tests the ostree stage and the first half of the image
// stage end to end, through the real eib binary, against real archive
// repos served on 127.0.0.1: the demo OS of helpers/make-demo-repo
// (harness.DemoRepo) and small signed, foreign-signed and unsigned repos.
package ostree

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string // eib built for these tests
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// demo is the demo OS repo as harness.DemoRepo builds and serves it, and
// its commit of ostreetest.DemoRef.
type demo struct {
	harness.Demo
	Commit string
}

// demoRepo is the demo OS repo; it skips a test that cannot build it here
// (the skips of ostreetest.DemoRepo, which these tests used before).
func demoRepo(t *testing.T) demo {
	t.Helper()
	ostreetest.Need(t, "ostree", "gpg", "apt-get", "dpkg-deb", "modinfo", "cpio")
	if os.Geteuid() != 0 {
		t.Skip("building the demo OS needs root (apt-get download into the cache, owners in the commit)")
	}
	d := demo{Demo: harness.DemoRepo(t)}
	var err error
	if d.Commit, err = ostree.Open(d.Repo).RevParse(context.Background(), ostreetest.DemoRef); err != nil {
		t.Fatal(err)
	}
	return d
}

// project is one demo build in a temp dir: localdir, cachedir, sysconfdir
// and lock file.
type project struct {
	*harness.Project
	t *testing.T
}

// newProject makes a localdir running the stages ostree and image with
// the given extra INI text, no error or publish hooks, and checks after
// the test that nothing is left mounted or running.
func newProject(t *testing.T, ini string) *project {
	t.Helper()
	ostreetest.Need(t, "ostree", "chattr")
	if os.Geteuid() != 0 {
		t.Skip("deploying and mounting need root")
	}
	p := &project{Project: harness.NewProject(t), t: t}
	p.Write("buildscript", "ostree\nimage\n", 0o644)
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n"+ini+
		"\n[error]\nhooks =\n\n[publish]\nhooks =\n", 0o644)
	t.Cleanup(p.assertNoLeftovers)
	return p
}

// trust installs a public key as <localdir>/data/keys/<name>.
func (p *project) trust(key, name string) {
	p.t.Helper()
	b, err := os.ReadFile(key)
	if err != nil {
		p.t.Fatal(err)
	}
	p.Write(filepath.Join("data", "keys", name), string(b), 0o644)
}

func (p *project) checkout() string { return filepath.Join(p.Cache, "build", "sysroot") }

// run runs eib --product demo --dry-run master and returns its exit code
// and output.
func (p *project) run(args ...string) (code int, stdout, stderr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args = append([]string{"--product", "demo", "--dry-run"}, args...)
	r := harness.Run(p.t, p.Command(ctx, eibBin, srcRoot, append(args, "master")...))
	return r.Code, r.Stdout, r.Stderr
}

// assertNoLeftovers: no mount, loop device or process under the test's
// dirs, and no half-made sysroot.
func (p *project) assertNoLeftovers() {
	harness.AssertNoLeftovers(p.t, p.Dir)
	if ents, err := os.ReadDir(p.checkout()); err == nil && len(ents) > 0 {
		p.t.Errorf("sysroot %s left with %d entries", p.checkout(), len(ents))
	}
}
