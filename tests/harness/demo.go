package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Demo is the demo OS repo of helpers/make-demo-repo as DemoRepo serves
// it.
type Demo struct {
	Repo  string // the archive repo
	Cache string // the make-demo-repo cache it is kept in
	Key   string // the public key that signed it (eib-demo.asc)
	URL   string // where it is served: http://127.0.0.1:PORT/
	INI   string // the eib config file serve-repo -ini wrote: [ostree] pull_url = URL
}

var (
	demoOnce sync.Once
	demo     Demo
	demoErr  error   // why the demo could not be prepared
	demoSrv  *server // serving it, until RunTests stops it

	serveOnce sync.Once
	serveBin  string // helpers/serve-repo, built on first use
	serveErr  error
)

// DemoRepo builds the demo OS repo with helpers/make-demo-repo and serves
// it with helpers/serve-repo on 127.0.0.1, once per test binary (its
// TestMain calls Main or RunTests, which stop the server when the tests
// end). The make-demo-repo cache is EIB_TEST_DEMO_CACHE when set (reused
// between runs), else one in the binary's temporary directory (which
// downloads the kernel package each run). A test calling it fails when
// the demo could not be prepared; skipping one that cannot build the demo
// here (root, tools) is for the caller (or NeedDemo).
func DemoRepo(t testing.TB) Demo {
	t.Helper()
	demoOnce.Do(func() { demo, demoErr = prepareDemo() })
	if demoErr != nil {
		t.Fatalf("preparing the demo OS repo: %v", demoErr)
	}
	return demo
}

// NeedDemo skips the test when it does not run as root (the demo build
// deploys an OSTree sysroot) or one of tools is not installed (Need), and
// then is DemoRepo.
func NeedDemo(t testing.TB, tools ...string) Demo {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the demo build deploys an OSTree sysroot and needs root")
	}
	Need(t, tools...)
	return DemoRepo(t)
}

// Install writes the demo's public key and INI into the localdir local as
// data/keys/eib-demo.asc and config/product/demo.ini, so that
// `eib --product demo --localdir local` trusts the demo and pulls it from
// URL.
func (d Demo) Install(t testing.TB, local string) {
	t.Helper()
	files := map[string]string{}
	for rel, src := range map[string]string{"data/keys/eib-demo.asc": d.Key, "config/product/demo.ini": d.INI} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		files[rel] = string(b)
	}
	WriteFiles(t, local, files)
}

// prepareDemo builds the demo repo and starts its server.
func prepareDemo() (Demo, error) {
	if runDir == "" {
		return Demo{}, errors.New("the test binary's TestMain calls neither harness.Main nor harness.RunTests")
	}
	cache := os.Getenv("EIB_TEST_DEMO_CACHE")
	if cache == "" {
		cache = filepath.Join(runDir, "demo-cache")
	}
	cmd := exec.Command(filepath.Join(Src(), "helpers", "make-demo-repo"), "--cache", cache)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Demo{}, fmt.Errorf("helpers/make-demo-repo --cache %s: %v\n%s", cache, err, stderr.String())
	}
	d := Demo{Repo: strings.TrimSpace(string(out)), Cache: cache, Key: filepath.Join(cache, "keys", "eib-demo.asc"),
		INI: filepath.Join(runDir, "demo.ini")}
	srv, err := startServer(d.Repo, d.INI)
	if err != nil {
		return Demo{}, err
	}
	demoSrv, d.URL = srv, srv.url
	return d, nil
}

// stopDemo stops the demo's server, if DemoRepo started one.
func stopDemo() error {
	if demoSrv == nil {
		return nil
	}
	err := demoSrv.stop()
	demoSrv = nil
	return err
}

// Serve serves dir with helpers/serve-repo on another free port of
// 127.0.0.1 for the rest of the test and returns its URL; the test fails
// if the server does not stop cleanly at its end.
func Serve(t testing.TB, dir string) string {
	t.Helper()
	srv, err := startServer(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
	})
	return srv.url
}

// server is a running helpers/serve-repo and the URL it printed.
type server struct {
	cmd *exec.Cmd
	url string
}

var servedURL = regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`)

// startServer starts helpers/serve-repo on dir, with -ini ini unless ini
// is empty, and checks what it promises: a URL of 127.0.0.1 on stdout,
// and that URL as pull_url in ini.
func startServer(dir, ini string) (*server, error) {
	serveOnce.Do(func() { serveBin, serveErr = build("./helpers/serve-repo") })
	if serveErr != nil {
		return nil, serveErr
	}
	args := []string{dir}
	if ini != "" {
		args = []string{"-ini", ini, dir}
	}
	cmd := exec.Command(serveBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	// A test binary that ends without stopping it (a panic, go test's
	// timeout) takes it along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	s := &server{cmd: cmd, url: strings.TrimSpace(line)}
	switch {
	case err != nil:
		err = fmt.Errorf("serve-repo printed no URL: %v", err)
	case !servedURL.MatchString(s.url):
		err = fmt.Errorf("serve-repo printed %q, want http://127.0.0.1:PORT/", s.url)
	case ini != "":
		if b, rerr := os.ReadFile(ini); rerr != nil || !strings.Contains(string(b), "[ostree]\npull_url = "+s.url+"\n") {
			err = fmt.Errorf("serve-repo -ini wrote %q (%v), want pull_url = %s", b, rerr, s.url)
		}
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return s, nil
}

// stop ends the server with SIGTERM, on which it must exit 0.
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		return fmt.Errorf("serve-repo did not stop cleanly on SIGTERM: %v", err)
	}
	return nil
}
