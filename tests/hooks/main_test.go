// Package hooks tests eib as a drop-in for the hooks written for EIB
// (Endless OS's image builder): lib/eib.py under Debian's python3 and
// pytest, and a demo build whose localdir hooks use every contract EIB's
// hooks rely on (the eib Python module, the EIB_* variables of EIB's
// [build] keys, lib/eib.sh's functions, the deployment's /tmp shared by
// host and .chroot hooks).
package hooks

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string

	demoOnce sync.Once
	demoErr  error
	demoKey  string // the demo repo's public signing key
	repoURL  string // where the demo repo is served
	tmp      string // this run's temporary directory
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eib-hooks-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmp = dir
	code := harness.RunTests(m, &eibBin, nil)
	os.RemoveAll(dir)
	os.Exit(code)
}

// needDemo builds the demo OS repo (helpers/make-demo-repo; its cache is
// EIB_TEST_DEMO_CACHE when set, else a temporary one) and serves it on
// 127.0.0.1, once; it skips a test that cannot run here.
func needDemo(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the demo build deploys an OSTree sysroot and needs root")
	}
	harness.Need(t, "ostree", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage", "bwrap", "/usr/bin/python3")
	demoOnce.Do(func() {
		cache := os.Getenv("EIB_TEST_DEMO_CACHE")
		if cache == "" {
			cache = filepath.Join(tmp, "demo-cache")
		}
		cmd := exec.Command(filepath.Join(srcRoot, "helpers", "make-demo-repo"), "--cache", cache)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			demoErr = fmt.Errorf("helpers/make-demo-repo --cache %s: %v\n%s", cache, err, stderr.String())
			return
		}
		demoKey = filepath.Join(cache, "keys", "eib-demo.asc")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			demoErr = err
			return
		}
		go http.Serve(ln, http.FileServer(http.Dir(strings.TrimSpace(string(out)))))
		repoURL = "http://" + ln.Addr().String() + "/"
	})
	if demoErr != nil {
		t.Fatalf("preparing the demo OS repo: %v", demoErr)
	}
}
