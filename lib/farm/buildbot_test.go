package farm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/matrix"
)

func testConfig() Buildbot {
	return Buildbot{
		Variants: []matrix.Variant{
			{Group: "g", Product: "demo", Branch: "master", Arch: "amd64", Platform: "amd64", Personality: "base"},
			{Group: "g", Product: "demo", Branch: "master", Arch: "arm64", Platform: "arm64", Personality: "base"},
		},
		Workers: []Worker{{Name: "x86", Arches: []string{"amd64"}}, {Name: "any", Arches: []string{}}},
		EIB:     "/usr/bin/eib", MasterEIB: "/usr/bin/eib", Results: "results", PBPort: 9989, Nightly: "02:30",
		Published: "https://images.example.org/pub",
	}
}

// The master configuration loads in Buildbot (buildbot checkconfig) and
// has the rules the farm depends on.
func TestMasterConfigIsAValidBuildbotConfig(t *testing.T) {
	if _, err := exec.LookPath("buildbot"); err != nil {
		t.Fatal("buildbot is not installed: run make deps (make test does), which installs it")
	}
	text, err := testConfig().MasterConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"c['collapseRequests'] = False",
		"util.WorkerLock('eib-build', maxCount=1)",
		"locks=[BUILD_LOCK.access('exclusive')], canStartBuild=worker_is_free, collapseRequests=False",
		"steps.DirectoryUpload(",
		"'report', '--html'",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("master.cfg lacks %q", want)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "master.cfg"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "workers.passwd"), []byte("x86 a\nany b\nchange c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("buildbot", "checkconfig", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("buildbot checkconfig: %v\n%s", err, out)
	}
	// A password missing from workers.passwd is an error naming it.
	if err := os.WriteFile(filepath.Join(dir, "workers.passwd"), []byte("x86 a\nchange c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("buildbot", "checkconfig", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no password for any") {
		t.Errorf("checkconfig without the password of worker any: %v\n%s", err, out)
	}
}

func TestMasterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Buildbot)
		want string
	}{
		{func(c *Buildbot) { c.Workers = nil }, "no worker"},
		{func(c *Buildbot) { c.Workers = []Worker{{Name: "x86", Arches: []string{"amd64"}}} }, "no worker builds arch arm64"},
		{func(c *Buildbot) { c.Workers = append(c.Workers, Worker{Name: "any"}) }, "worker any given twice"},
		{func(c *Buildbot) { c.Nightly = "25:00" }, "not HH:MM"},
		{func(c *Buildbot) { c.PBPort = 0 }, "not a TCP port"},
	} {
		c := testConfig()
		tc.edit(&c)
		if _, err := c.MasterConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	if _, err := ParseWorker("a b"); err == nil {
		t.Errorf("ParseWorker(\"a b\"): no error")
	}
	if w, err := ParseWorker("pi:arm64,amd64"); err != nil || w.Name != "pi" || strings.Join(w.Arches, ",") != "arm64,amd64" {
		t.Errorf("ParseWorker = %+v, %v", w, err)
	}
}
