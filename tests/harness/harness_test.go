package harness

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/lib/hostclean"
)

var eibBin string

func TestMain(m *testing.M) { Main(m, &eibBin, nil) }

// recorder is a testing.TB that keeps its errors instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestMainBuiltEibAndRunReportsItsExit(t *testing.T) {
	if st, err := os.Stat(eibBin); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("Main built no executable eib at %q: %v", eibBin, err)
	}
	dir := t.TempDir()
	r := Run(t, exec.Command(eibBin, "--no-such-option"))
	if r.Code == 0 || r.Stderr == "" {
		t.Errorf("eib --no-such-option: exit %d, stderr %q; want a failure that says why", r.Code, r.Stderr)
	}
	cmd := exec.Command("sh", "-c", "echo out; echo err >&2; exit 3")
	cmd.Env = Env(Src(), filepath.Join(dir, "etc"), filepath.Join(dir, "lock"))
	if r := Run(t, cmd); r.Code != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("Run = %+v, want exit 3, out, err", r)
	}
	if LastLine("a\nb\n\n") != "b" {
		t.Errorf("LastLine(a b) = %q", LastLine("a\nb\n\n"))
	}
}

// TestAssertNoLeftoversFailsAndCleansUp leaves a mount and a loop device
// under a directory: both must be reported and gone afterwards.
func TestAssertNoLeftoversFailsAndCleansUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount, losetup)")
	}
	Need(t, "losetup")
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	img := filepath.Join(dir, "disk.img")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-f", img).CombinedOutput(); err != nil {
		hostclean.Clean([]string{dir}, nil)
		t.Skipf("losetup -f: %v %s", err, out)
	}
	r := &recorder{TB: t}
	AssertNoLeftovers(r, dir)
	got := strings.Join(r.errs, "\n")
	if len(r.errs) != 2 || !strings.Contains(got, "mounts left under "+dir) || !strings.Contains(got, "loop devices left") {
		t.Errorf("AssertNoLeftovers reported %q; want the mount and the loop device", r.errs)
	}
	if mps, _ := hostclean.Mounts([]string{dir}); len(mps) > 0 {
		t.Errorf("still mounted after the check: %v", mps)
	}
	if loops := hostclean.Loops([]string{dir}); len(loops) > 0 {
		t.Errorf("loop devices still there after the check: %v", loops)
	}
	r = &recorder{TB: t}
	if AssertNoLeftovers(r, dir); len(r.errs) != 0 {
		t.Errorf("a clean dir reported %q", r.errs)
	}
}

// TestServeRepoServesWritesTheINIAndStops: helpers/serve-repo (as
// DemoRepo and Serve run it) serves a directory on 127.0.0.1, writes its
// URL as pull_url to -ini and stops cleanly on SIGTERM; Install puts the
// key and that INI into a localdir.
func TestServeRepoServesWritesTheINIAndStops(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	WriteFiles(t, dir, map[string]string{"repo/config": "[core]\nmode=archive-z2\n", "keys/eib-demo.asc": "KEY\n"})
	get := func(url string) string {
		t.Helper()
		resp, err := http.Get(url + "config")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %sconfig: %s %q (%v)", url, resp.Status, b, err)
		}
		return string(b)
	}
	ini := filepath.Join(dir, "demo.ini")
	srv, err := startServer(repo, ini)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(srv.url); got != "[core]\nmode=archive-z2\n" {
		t.Errorf("served config %q", got)
	}
	local := filepath.Join(dir, "local")
	Demo{Repo: repo, Key: filepath.Join(dir, "keys", "eib-demo.asc"), URL: srv.url, INI: ini}.Install(t, local)
	if b, err := os.ReadFile(filepath.Join(local, "config", "product", "demo.ini")); err != nil || !strings.Contains(string(b), "[ostree]\npull_url = "+srv.url+"\n") {
		t.Errorf("Install wrote demo.ini %q (%v), want pull_url = %s", b, err, srv.url)
	}
	if b, err := os.ReadFile(filepath.Join(local, "data", "keys", "eib-demo.asc")); err != nil || string(b) != "KEY\n" {
		t.Errorf("Install wrote the key %q (%v)", b, err)
	}
	if err := srv.stop(); err != nil {
		t.Error(err)
	}
	if _, err := http.Get(srv.url); err == nil {
		t.Errorf("%s still answers after stop", srv.url)
	}
	if url := Serve(t, repo); get(url) != "[core]\nmode=archive-z2\n" {
		t.Errorf("Serve's %s serves another config", url)
	}
}
