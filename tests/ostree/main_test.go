// Package ostree tests the ostree stage and the first half of the image
// stage end to end, through the real eib binary, against real archive
// repos served on 127.0.0.1: the demo OS of helpers/make-demo-repo and
// small signed, foreign-signed and unsigned repos.
package ostree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
)

var (
	srcRoot  string // the eib tree
	eibBin   string // eib built for these tests
	serveBin string // helpers/serve-repo built for these tests
)

func TestMain(m *testing.M) {
	srcRoot = ostreetest.SrcDir()
	dir, err := os.MkdirTemp("", "eib-ostree-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eibBin = filepath.Join(dir, "eib")
	serveBin = filepath.Join(dir, "serve-repo")
	for bin, pkg := range map[string]string{eibBin: "./cmd/eib", serveBin: "./helpers/serve-repo"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Dir = srcRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// project is one demo build in a temp dir: localdir, cachedir, sysconfdir
// and lock file.
type project struct {
	t        *testing.T
	dir      string
	local    string
	cache    string
	sysconf  string
	lockFile string
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
	dir := t.TempDir()
	p := &project{t: t, dir: dir, local: filepath.Join(dir, "local"), cache: filepath.Join(dir, "cache"),
		sysconf: filepath.Join(dir, "etc-eib"), lockFile: filepath.Join(dir, "eib.lock")}
	if err := os.MkdirAll(p.sysconf, 0o755); err != nil {
		t.Fatal(err)
	}
	p.write("buildscript", "ostree\nimage\n", 0o644)
	p.write("config/defaults.ini", "[build]\ncachedir = "+p.cache+"\n\n"+ini+
		"\n[error]\nhooks =\n\n[publish]\nhooks =\n", 0o644)
	t.Cleanup(p.assertNoLeftovers)
	return p
}

func (p *project) write(rel, content string, mode os.FileMode) string {
	p.t.Helper()
	path := filepath.Join(p.local, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// trust installs a public key as <localdir>/data/keys/<name>.
func (p *project) trust(key, name string) {
	p.t.Helper()
	b, err := os.ReadFile(key)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(filepath.Join("data", "keys", name), string(b), 0o644)
}

func (p *project) tmpdir() string   { return filepath.Join(p.cache, "build", "tmp") }
func (p *project) checkout() string { return filepath.Join(p.cache, "build", "sysroot") }

// run runs eib --product demo --dry-run master and returns its exit code
// and output.
func (p *project) run(args ...string) (code int, stdout, stderr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args = append([]string{"--localdir", p.local, "--product", "demo", "--dry-run"}, args...)
	cmd := exec.CommandContext(ctx, eibBin, append(args, "master")...)
	cmd.Env = append(os.Environ(), "EIB_SRCDIR="+srcRoot, "EIB_SYSCONFDIR="+p.sysconf, "EIB_LOCK_FILE="+p.lockFile)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("running eib: %v", err)
	}
	return code, out.String(), errb.String()
}

// assertNoLeftovers: no mount or process under the test's dirs, and no
// half-made sysroot.
func (p *project) assertNoLeftovers() {
	t := p.t
	if mps, err := hostclean.Mounts([]string{p.dir}); err != nil || len(mps) > 0 {
		t.Errorf("left mounted: %v (%v)", mps, err)
		_ = hostclean.Clean([]string{p.dir}, nil)
	}
	if procs := hostclean.Processes([]string{p.dir}); len(procs) > 0 {
		t.Errorf("processes rooted in the build dirs left: %v", procs)
	}
	if ents, err := os.ReadDir(p.checkout()); err == nil && len(ents) > 0 {
		t.Errorf("sysroot %s left with %d entries", p.checkout(), len(ents))
	}
	_ = hostclean.ClearImmutable(p.dir, nil) // lets t.TempDir remove it
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
