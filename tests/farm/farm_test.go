// Package farm runs the variant matrix on a real Buildbot 3.7 (Debian 12's
// buildbot and buildbot-worker) on 127.0.0.1: one master and two workers,
// started and stopped by the test through their pid files, building four
// demo variants with eib.
package farm

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/farm"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// The four variants: personalities of the demo product. plain boots (the
// only boot check), marked1 and marked2 run the hook 60-mark, broken runs
// 60-fail, which fails on purpose.
var variants = []string{
	"demo-master-amd64-amd64-broken",
	"demo-master-amd64-amd64-marked1",
	"demo-master-amd64-amd64-marked2",
	"demo-master-amd64-amd64-plain",
}

const (
	vBroken  = "demo-master-amd64-amd64-broken"
	vMarked1 = "demo-master-amd64-amd64-marked1"
	vMarked2 = "demo-master-amd64-amd64-marked2"
	vPlain   = "demo-master-amd64-amd64-plain"
)

type farmEnv struct {
	t       *testing.T
	root    string
	local   string
	pub     string
	master  string
	port    int
	workers []string // base directories
	pids    []string // pid files of everything started
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hostEnv is the environment of one build host: its own configuration
// directory (its cachedir) and build lock.
func (f *farmEnv) hostEnv(name string) []string {
	etc := filepath.Join(f.root, name, "etc")
	harness.WriteFiles(f.t, etc, map[string]string{
		"config.ini": "[build]\ncachedir = " + filepath.Join(f.root, name, "cache") + "\n",
	})
	return append(os.Environ(), "EIB_SRCDIR="+srcRoot, "EIB_SYSCONFDIR="+etc,
		"EIB_LOCK_FILE="+filepath.Join(f.root, name, "eib.lock"))
}

func (f *farmEnv) run(env []string, name string, args ...string) string {
	f.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// stop ends the daemon of a pid file with SIGTERM (SIGKILL after 60 s,
// an error) and waits until it is gone.
func stop(t *testing.T, pidFile string) {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		if !os.IsNotExist(err) {
			t.Errorf("%s: %v", pidFile, err)
		}
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Errorf("%s: bad pid %q", pidFile, data)
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(60 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Errorf("%s: process %d still running 60 s after SIGTERM; killed", pidFile, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *farmEnv) masterLog() string {
	data, _ := os.ReadFile(filepath.Join(f.master, "twistd.log"))
	return string(data)
}

// startRun starts a run with buildbot sendchange and waits for its
// report page; it returns the run's results directory and wall time.
func (f *farmEnv) startRun(name string) (string, time.Duration) {
	f.t.Helper()
	start := time.Now()
	f.run(os.Environ(), "buildbot", "sendchange", "--master", fmt.Sprintf("127.0.0.1:%d", f.port), "--auth", "change:changepass",
		"--who", "eib-test", "--branch", "nightly", "--property", "run:"+name, "matrix")
	dir := filepath.Join(f.master, "results", name)
	waitFor(f.t, "the report of run "+name+" (master log:\n"+lastLines(f.masterLog(), 40)+")", 8*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(dir, "index.html"))
		return err == nil
	})
	// The report step writes the page before Buildbot finishes the run.
	time.Sleep(time.Second)
	return dir, time.Since(start)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// results reads result.json of every variant of a run.
func (f *farmEnv) results(dir string) map[string]farm.Result {
	f.t.Helper()
	out := map[string]farm.Result{}
	for _, v := range variants {
		r, err := farm.ReadResult(filepath.Join(dir, v))
		if err != nil {
			f.t.Errorf("run %s, variant %s: %v", filepath.Base(dir), v, err)
			continue
		}
		out[v] = r
	}
	return out
}

// buildCounts counts Buildbot's builds of each builder (its database).
func (f *farmEnv) buildCounts() map[string]int {
	f.t.Helper()
	py := `import sqlite3, sys, json
db = sqlite3.connect(sys.argv[1])
rows = db.execute('select b.name, count(*) from builds x join builders b on x.builderid = b.id group by b.name').fetchall()
print(json.dumps(dict(rows)))`
	out := f.run(os.Environ(), "/usr/bin/python3", "-c", py, filepath.Join(f.master, "state.sqlite"))
	counts := map[string]int{}
	if err := json.Unmarshal([]byte(out), &counts); err != nil {
		f.t.Fatalf("build counts %q: %v", out, err)
	}
	return counts
}

func built(res map[string]farm.Result) []string {
	var out []string
	for v, r := range res {
		if r.Result != farm.ResultSkipped {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

func TestBuildbotBuildsTheMatrix(t *testing.T) {
	demo := harness.NeedDemo(t, "buildbot", "buildbot-worker", "qemu-system-x86_64")
	root := t.TempDir()
	t.Cleanup(func() { harness.AssertNoLeftovers(t, root) })
	f := &farmEnv{t: t, root: root, local: filepath.Join(root, "local"), pub: filepath.Join(root, "published"),
		master: filepath.Join(root, "master"), port: freePort(t)}
	demo.Install(t, f.local)
	harness.WriteFiles(t, f.local, map[string]string{
		"config/defaults.ini":            "[check]\nboot = false\n\n[publish]\ndir = " + f.pub + "\n",
		"config/personality/plain.ini":   "[check]\nboot = true\n",
		"config/personality/marked1.ini": "[image]\nhooks_add = 60-mark\n",
		"config/personality/marked2.ini": "[image]\nhooks_add = 60-mark\n",
		"config/personality/broken.ini":  "[image]\nhooks_add = 60-fail\n",
		"config/matrix.ini": "[matrix demo]\nproducts = demo\nbranches = master\narches = amd64\n" +
			"personalities = plain marked1 marked2 broken\n",
	})
	mark := filepath.Join(f.local, "hooks", "image", "60-mark")
	harness.WriteFiles(t, filepath.Join(f.local, "hooks", "image"), map[string]string{
		"60-mark": "#!/bin/bash\necho mark v1\n",
		"60-fail": "#!/bin/bash\necho 'failing on purpose' >&2\nexit 1\n",
	})
	for _, h := range []string{"60-mark", "60-fail"} {
		if err := os.Chmod(filepath.Join(f.local, "hooks", "image", h), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// The matrix lists the four.
	env := append(os.Environ(), "EIB_SRCDIR="+srcRoot)
	if got := strings.Fields(f.run(env, eibBin, "matrix", "--localdir", f.local, "--names")); !slices.Equal(sorted(got), variants) {
		t.Fatalf("eib matrix --names = %v, want %v", got, variants)
	}

	// The master.
	f.run(os.Environ(), "buildbot", "create-master", "-q", f.master)
	f.run(env, eibBin, "farm", "buildbot", "--localdir", f.local, "--worker", "w1", "--worker", "w2:amd64",
		"--eib", eibBin, "--published", f.pub, "--pb-port", strconv.Itoa(f.port), "--pb-interface", "127.0.0.1",
		"-o", filepath.Join(f.master, "master.cfg"))
	harness.WriteFiles(t, f.master, map[string]string{"workers.passwd": "w1 pass1\nw2 pass2\nchange changepass\n"})
	f.run(os.Environ(), "buildbot", "checkconfig", f.master)
	// Stopped in reverse order of starting, every one through its pid
	// file, then nothing of them may be left.
	t.Cleanup(func() {
		for i := len(f.pids) - 1; i >= 0; i-- {
			stop(t, f.pids[i])
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", f.port), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still open after the master stopped", f.port)
		}
		if procs := processesUnder(root); len(procs) > 0 {
			t.Errorf("processes left that name %s: %v", root, procs)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			var lines []string
			for _, l := range strings.Split(f.masterLog(), "\n") {
				if strings.Contains(l, "orker") || strings.Contains(l, "lock") {
					lines = append(lines, l)
				}
			}
			t.Logf("master log, worker lines:\n%s", lastLines(strings.Join(lines, "\n"), 80))
		}
	})
	f.pids = append(f.pids, filepath.Join(f.master, "twistd.pid"))
	f.run(os.Environ(), "buildbot", "start", f.master)
	for i, w := range []string{"w1", "w2"} {
		dir := filepath.Join(root, w, "worker")
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		f.run(os.Environ(), "buildbot-worker", "create-worker", "-q", dir, fmt.Sprintf("127.0.0.1:%d", f.port), w, fmt.Sprintf("pass%d", i+1))
		f.pids = append(f.pids, filepath.Join(dir, "twistd.pid"))
		f.run(f.hostEnv(w), "buildbot-worker", "start", dir)
	}
	waitFor(t, "both workers to attach", time.Minute, func() bool {
		log := f.masterLog()
		return strings.Contains(log, "Worker w1 attached to eib-run") && strings.Contains(log, "Worker w2 attached to eib-run")
	})

	// Run 1: everything is built once; broken fails alone.
	run1, wall1 := f.startRun("run1")
	res := f.results(run1)
	if got := built(res); !slices.Equal(got, variants) {
		t.Errorf("run1 built %v, want all of %v", got, variants)
	}
	for _, v := range variants {
		want := farm.ResultOK
		if v == vBroken {
			want = farm.ResultFailed
		}
		r := res[v]
		if r.Result != want {
			t.Errorf("run1 %s: result %s (%s), want %s", v, r.Result, r.Reason, want)
		}
		if _, err := os.Stat(filepath.Join(run1, v, farm.LogFile)); err != nil {
			t.Errorf("run1 %s: no build log at the master: %v", v, err)
		}
		if want == farm.ResultOK {
			m := readJSON(t, filepath.Join(run1, v, farm.ManifestFile))
			ph, _ := m["plan_hash"].(map[string]any)
			if ph["hash"] != r.PlanHash || r.PlanHash == "" {
				t.Errorf("run1 %s: manifest plan hash %v, want the hash computed before the build %q", v, ph["hash"], r.PlanHash)
			}
			if r.ImageSize <= 0 {
				t.Errorf("run1 %s: no image size in %+v", v, r)
			}
		}
	}
	if log, _ := os.ReadFile(filepath.Join(run1, vBroken, farm.LogFile)); !strings.Contains(string(log), "failing on purpose") {
		t.Errorf("the log of %s at the master does not hold its hook's error:\n%s", vBroken, lastLines(string(log), 20))
	}
	// The boot check is on for plain only.
	for _, v := range []string{vPlain, vMarked1} {
		m := readJSON(t, filepath.Join(run1, v, farm.ManifestFile))
		boots, _ := m["boot_check"].([]any)
		if (len(boots) > 0) != (v == vPlain) {
			t.Errorf("run1 %s: manifest boot_check %v, want boots for %s only", v, m["boot_check"], vPlain)
		}
	}
	for _, v := range variants {
		r := res[v]
		t.Logf("run1 %s: %s on %s, %s to %s (%.1f s)", v, r.Result, r.Worker, r.Started.Format("15:04:05.0"), r.Finished.Format("15:04:05.0"), r.Seconds)
	}
	workersUsed := map[string][]farm.Result{}
	for _, r := range res {
		workersUsed[r.Worker] = append(workersUsed[r.Worker], r)
	}
	if len(workersUsed) != 2 || workersUsed["w1"] == nil || workersUsed["w2"] == nil {
		t.Errorf("run1 used workers %v, want w1 and w2", keys(workersUsed))
	}
	for w, rs := range workersUsed {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Started.Before(rs[j].Started) })
		for i := 1; i < len(rs); i++ {
			if rs[i].Started.Before(rs[i-1].Finished) {
				t.Errorf("worker %s built %s (from %s) while building %s (until %s)", w, rs[i].Variant, rs[i].Started, rs[i-1].Variant, rs[i-1].Finished)
			}
		}
	}
	counts := f.buildCounts()
	for _, v := range variants {
		if counts["eib-"+v] != 1 {
			t.Errorf("after run1, Buildbot built eib-%s %d times, want 1 (counts %v)", v, counts["eib-"+v], counts)
		}
	}
	report := exec.Command(eibBin, "report", run1)
	out, err := report.CombinedOutput()
	if code := harness.Code(t, err, report); code != 2 {
		t.Errorf("eib report run1 exited %d, want 2 (a variant failed):\n%s", code, out)
	}
	t.Logf("eib report run1:\n%s", out)
	for _, v := range variants {
		if !strings.Contains(string(out), v) {
			t.Errorf("eib report does not list %s:\n%s", v, out)
		}
	}
	if page, err := os.ReadFile(filepath.Join(run1, "index.html")); err != nil || !strings.Contains(string(page), vBroken+"/build.log") {
		t.Errorf("the run's report page (written by the master) lacks the log links: %v\n%s", err, page)
	}

	// Run 2, nothing changed: nothing that was published is built again
	// (broken published nothing: it is tried again, and fails again).
	run2, _ := f.startRun("run2")
	res = f.results(run2)
	if got := built(res); !slices.Equal(got, []string{vBroken}) {
		t.Errorf("run2 with nothing changed built %v, want only the failed %s retried", got, vBroken)
	}
	for _, v := range []string{vPlain, vMarked1, vMarked2} {
		if res[v].Result != farm.ResultSkipped || res[v].Published == "" {
			t.Errorf("run2 %s: %+v, want skipped as published", v, res[v])
		}
	}

	// Run 3: a change of the hook marked1 and marked2 run rebuilds
	// exactly those two (and broken is retried).
	harness.WriteFiles(t, filepath.Dir(mark), map[string]string{"60-mark": "#!/bin/bash\necho mark v2\n"})
	if err := os.Chmod(mark, 0o755); err != nil {
		t.Fatal(err)
	}
	run3, _ := f.startRun("run3")
	res = f.results(run3)
	if got := built(res); !slices.Equal(got, []string{vBroken, vMarked1, vMarked2}) {
		t.Errorf("run3 after changing 60-mark built %v, want %s and %s (and the failed %s)", got, vMarked1, vMarked2, vBroken)
	}
	for _, v := range []string{vMarked1, vMarked2} {
		if res[v].Result != farm.ResultOK {
			t.Errorf("run3 %s: %+v, want ok", v, res[v])
		}
	}
	if out, err := exec.Command(eibBin, "report", run3).CombinedOutput(); err == nil {
		t.Errorf("eib report run3: no error, but %s failed again", vBroken)
	} else {
		t.Logf("eib report run3:\n%s", out)
	}
	counts = f.buildCounts()
	for _, v := range variants {
		if counts["eib-"+v] != 3 {
			t.Errorf("after three runs, Buildbot ran eib-%s %d times, want 3 (counts %v)", v, counts["eib-"+v], counts)
		}
	}

	// The same four variants on one host, in turn, for the wall-time
	// ratio (published elsewhere, so the farm's state is untouched).
	serialEnv := f.hostEnv("serial")
	local2 := filepath.Join(root, "local-serial")
	if err := os.CopyFS(local2, os.DirFS(f.local)); err != nil {
		t.Fatal(err)
	}
	harness.WriteFiles(t, local2, map[string]string{
		"config/defaults.ini": "[check]\nboot = false\n\n[publish]\ndir = " + filepath.Join(root, "published-serial") + "\n",
		"hooks/image/60-mark": "#!/bin/bash\necho mark v1\n",
	})
	if err := os.Chmod(filepath.Join(local2, "hooks/image/60-mark"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, v := range variants {
		cmd := exec.CommandContext(context.Background(), eibBin, "farm", "run", "--localdir", local2, "--variant", v,
			"--results", filepath.Join(root, "serial", "results", v))
		cmd.Env = serialEnv
		out, err := cmd.CombinedOutput()
		if code := harness.Code(t, err, cmd); (code != 0) != (v == vBroken) {
			t.Errorf("one host: eib farm run %s exited %d:\n%s", v, code, lastLines(string(out), 30))
		}
	}
	serial := time.Since(start)
	t.Logf("four variants: two Buildbot workers %.1f s (run1, from sendchange to report), one host in turn %.1f s: ratio %.2f",
		wall1.Seconds(), serial.Seconds(), wall1.Seconds()/serial.Seconds())
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v", err)
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	return m
}

// processesUnder lists the processes whose command line or working
// directory names dir.
func processesUnder(dir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.Contains(string(cmdline), dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return out
}
