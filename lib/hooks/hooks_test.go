package hooks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
)

// repoRoot is the eib tree this test file is in (for lib/eib.sh).
func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

type fixture struct {
	b        *build.Build
	src      string
	local    string
	cache    string
	term     *bytes.Buffer
	log      *buildlog.Log
	logFile  string
	runner   *Runner
	cfg      *config.Config
	hostFile string
}

// newFixture makes a srcdir (with the real lib/eib.sh), a localdir and a
// cachedir in a temp dir, and a Build over a config made with Set.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		src:   filepath.Join(dir, "src"),
		local: filepath.Join(dir, "local"),
		cache: filepath.Join(dir, "cache"),
		term:  &bytes.Buffer{},
	}
	for _, d := range []string{filepath.Join(f.src, "lib"), f.local, f.cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	eibsh, err := os.ReadFile(filepath.Join(repoRoot(t), "lib", "eib.sh"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(f.src, "lib", "eib.sh"), eibsh, 0o644)
	f.cfg = config.New()
	f.cfg.Set("build", "cachedir", f.cache)
	f.cfg.Set("build", "srcdir", f.src)
	f.cfg.Set("build", "outdir", filepath.Join(f.cache, "out"))
	f.cfg.Set("build", "outversion", "prod-br-amd64-pc.1.base")
	f.log = buildlog.New(f.term, false, nil)
	f.logFile = filepath.Join(dir, "build.txt")
	if err := f.log.OpenFile(f.logFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	f.runner = &Runner{Program: "/usr/bin/eib-test-program"}
	f.b = &build.Build{Config: f.cfg, Public: f.cfg, SrcDir: f.src, LocalDir: f.local, Log: f.log, Hooks: f.runner}
	f.stage("image")
	f.hostFile = filepath.Join(dir, "host-secret-file")
	os.WriteFile(f.hostFile, []byte("host only\n"), 0o644)
	return f
}

// stage sets the running stage, as the engine does.
func (f *fixture) stage(name string) {
	f.b.Stage = name
	f.log.SetStage(name)
}

func writeHook(t *testing.T, dir, group, name, body string, exec bool) string {
	t.Helper()
	d := filepath.Join(dir, "hooks", group)
	os.MkdirAll(d, 0o755)
	mode := os.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	p := filepath.Join(d, name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) logText(t *testing.T) string {
	data, err := os.ReadFile(f.logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestHooksRunInNameOrderAndLocaldirWins(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "order")
	f.cfg.Set("image", "hooks", "30-c\n20-b 10-a")
	body := func(tag string) string { return "echo " + tag + " >> " + out + "\n" }
	writeHook(t, f.src, "image", "10-a", body("src-10-a"), false)
	writeHook(t, f.local, "image", "10-a", body("local-10-a"), false)
	writeHook(t, f.src, "image", "20-b", body("src-20-b"), false)
	writeHook(t, f.local, "image", "30-c", "#!/bin/sh\n"+body("local-30-c"), true)
	// A directory named like a hook in the localdir is not a hook file.
	os.MkdirAll(filepath.Join(f.local, "hooks", "image", "20-b"), 0o755)

	if err := f.runner.RunGroup(context.Background(), f.b, "image", ""); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if want := "local-10-a\nsrc-20-b\nlocal-30-c\n"; string(got) != want {
		t.Errorf("hooks ran as\n%s\nwant\n%s", got, want)
	}
	log := f.logText(t)
	for _, want := range []string{"image/10-a: start", "image/10-a: done in", "exit status 0", "image/30-c: start"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if len(f.b.Timings) != 3 || f.b.Timings[0].Hook != "image/10-a" || f.b.Timings[0].Stage != "image" {
		t.Errorf("timings = %+v", f.b.Timings)
	}
}

func TestMissingHookIsFatalAndNamesDirs(t *testing.T) {
	f := newFixture(t)
	ran := filepath.Join(t.TempDir(), "ran")
	f.cfg.Set("content", "hooks", "10-present 20-absent") // run by the image stage
	writeHook(t, f.src, "content", "10-present", "touch "+ran+"\n", false)
	err := f.runner.RunGroup(context.Background(), f.b, "content", "")
	var he *build.HookError
	if !errors.As(err, &he) || he.Hook != "20-absent" || he.Group != "content" {
		t.Fatalf("err = %v, want a HookError for content/20-absent", err)
	}
	for _, want := range []string{filepath.Join(f.local, "hooks", "content"), filepath.Join(f.src, "hooks", "content"), "[content] hooks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("a hook ran although the group has a missing hook")
	}
}

func TestSourcedHookSeesEibShFunctions(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	f.stage("manifest")
	f.cfg.Set("manifest", "hooks", "50-lib")
	writeHook(t, f.src, "manifest", "50-lib", `
eib_outfile img.gz > "`+out+`"
locale_to_iso_639_1 br_FR.iso885915@euro >> "`+out+`"
echo "args=$#" >> "`+out+`"
case $- in *x*) echo xtrace >> "`+out+`";; esac
case $- in *e*) echo errexit >> "`+out+`";; esac
`, false)
	if err := f.runner.RunGroup(context.Background(), f.b, "manifest", ""); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	want := filepath.Join(f.cache, "out") + "/prod-br-amd64-pc.1.base.img.gz\nbr-FR\nargs=0\nxtrace\nerrexit\n"
	if string(got) != want {
		t.Errorf("sourced hook wrote\n%s\nwant\n%s", got, want)
	}
}

func TestExecutableHookSeesEnvironmentAndRunsInSrcdir(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "env")
	f.cfg.Set("image", "hooks", "50-env")
	f.cfg.Set("image", "hostname", "pc-${build:outversion}")
	f.b.SetEnv("OSTREE_DEPLOYMENT", "/sysroot/ostree/deploy/os/deploy/abc.0")
	t.Setenv("EIB_TEST_HOST_VAR", "from-host")
	writeHook(t, f.src, "image", "50-env", "#!/bin/sh\nenv > "+out+"\npwd >> "+out+"\n", true)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", ""); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	for _, want := range []string{
		"EIB_IMAGE_HOSTNAME=pc-prod-br-amd64-pc.1.base\n",
		"EIB_OUTVERSION=prod-br-amd64-pc.1.base\n",
		"EIB_HOOK_GROUP=image\n",
		"EIB_PROGRAM=/usr/bin/eib-test-program\n",
		"OSTREE_DEPLOYMENT=/sysroot/ostree/deploy/os/deploy/abc.0\n",
		"EIB_TEST_HOST_VAR=from-host\n",
		"\n" + f.src + "\n",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("hook environment lacks %q:\n%s", want, got)
		}
	}
}

func TestFailingHookStopsGroupAndShowsTail(t *testing.T) {
	f := newFixture(t)
	ran := filepath.Join(t.TempDir(), "ran")
	f.cfg.Set("image", "hooks", "10-fail 20-after")
	writeHook(t, f.src, "image", "10-fail", "echo about to fail\nfalse\necho not reached\n", false)
	writeHook(t, f.src, "image", "20-after", "touch "+ran+"\n", false)
	err := f.runner.RunGroup(context.Background(), f.b, "image", "")
	var he *build.HookError
	if !errors.As(err, &he) || he.Hook != "10-fail" || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the hook after a failed one ran")
	}
	if log := f.logText(t); strings.Contains(log, "not reached") || !strings.Contains(log, "failed after") {
		t.Errorf("log:\n%s", log)
	}
	if !strings.Contains(f.term.String(), "image/10-fail: | about to fail") {
		t.Errorf("terminal lacks the failed hook's output tail:\n%s", f.term.String())
	}
}

// procsWith returns the PIDs whose command line contains token.
func procsWith(token string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), token) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestCancelKillsTheHooksProcessGroup(t *testing.T) {
	f := newFixture(t)
	token := strconv.Itoa(4000 + os.Getpid()%1000)
	started := filepath.Join(t.TempDir(), "started")
	f.cfg.Set("image", "hooks", "10-sleep")
	// A background child and a foreground one, both in the hook's group.
	writeHook(t, f.src, "image", "10-sleep", "sleep "+token+" &\ntouch "+started+"\nsleep "+token+"\n", false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.runner.RunGroup(ctx, f.b, "image", "") }()
	for i := 0; ; i++ {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("hook never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; len(procsWith("sleep\x00"+token)) != 2; i++ {
		if i > 500 {
			t.Fatalf("want 2 sleeping children, have %v", procsWith("sleep\x00"+token))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped, the build was interrupted") {
			t.Errorf("err = %v, want interrupted", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunGroup did not return after cancel")
	}
	time.Sleep(100 * time.Millisecond)
	if left := procsWith("sleep\x00" + token); len(left) > 0 {
		t.Errorf("processes left after cancel: %v", left)
	}
}

func TestLeftoverBackgroundProcessIsKilledWhenHookEnds(t *testing.T) {
	f := newFixture(t)
	token := strconv.Itoa(5000 + os.Getpid()%1000)
	f.cfg.Set("image", "hooks", "10-bg")
	writeHook(t, f.src, "image", "10-bg", "#!/bin/sh\nsleep "+token+" >/dev/null 2>&1 &\necho left one behind\n", true)
	start := time.Now()
	if err := f.runner.RunGroup(context.Background(), f.b, "image", ""); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("RunGroup waited %s for a background process", time.Since(start))
	}
	time.Sleep(100 * time.Millisecond)
	if left := procsWith("sleep\x00" + token); len(left) > 0 {
		t.Errorf("background process of the hook still running: %v", left)
	}
}

// busyboxRoot builds a tiny OS tree: busybox and its applet links.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bubblewrap chroot hooks need root here")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("bwrap is not installed: run make deps (bubblewrap)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("busybox-static is not installed: run make deps")
	}
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "dev", "var"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	for _, a := range []string{"sh", "cat", "echo", "env", "touch", "ls", "id", "pwd", "mount", "mknod", "sleep", "test", "["} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	return root
}

func TestChrootHookIsConfinedToItsRoot(t *testing.T) {
	f := newFixture(t)
	root := busyboxRoot(t)
	os.WriteFile(filepath.Join(f.src, "srcfile"), []byte("from src\n"), 0o644)
	os.WriteFile(filepath.Join(f.cache, "cachefile"), []byte("from cache\n"), 0o644)
	// Like the image stage, mount the host's /dev and sysfs in the root.
	for _, m := range []string{"dev", "sys"} {
		os.MkdirAll(filepath.Join(root, m), 0o755)
		if err := syscall.Mount("/"+m, filepath.Join(root, m), "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		mp := filepath.Join(root, m)
		t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })
	}
	os.WriteFile(filepath.Join(f.local, "localfile"), []byte("from local\n"), 0o644)
	f.cfg.Set("build", "localdir", f.local)
	f.cfg.Set("image", "hooks", "20-confined.chroot")
	f.cfg.Set("image", "some_path", "${build:cachedir}/content/x ${build:srcdir}/data")
	f.b.SetEnv("OSTREE_DEPLOYMENT", "/host/only")
	t.Setenv("HOME", "/root-on-host")
	t.Setenv("HOST_ONLY_VAR", "1")
	writeHook(t, f.src, "image", "20-confined.chroot", `#!/bin/sh
out=/result
echo "pwd=$(pwd)" > $out
cat /tmp/eos-image-builder/src/srcfile >> $out
cat /tmp/eos-image-builder/cachefile >> $out
if cat `+f.hostFile+` 2>/dev/null; then echo "SAW-HOST-FILE" >> $out; fi
if touch /tmp/eos-image-builder/written 2>/dev/null; then echo "WROTE-CACHEDIR" >> $out; fi
if touch /tmp/eos-image-builder/src/written 2>/dev/null; then echo "WROTE-SRCDIR" >> $out; fi
cat /tmp/eib-local/localfile >> $out
if touch /tmp/eib-local/written 2>/dev/null; then echo "WROTE-LOCALDIR" >> $out; fi
if mount -t tmpfs none /tmp 2>/dev/null; then echo "COULD-MOUNT" >> $out; fi
if mknod /dev/evil b 8 0 2>/dev/null; then echo "COULD-MKNOD" >> $out; fi
if [ -e /dev/loop-control ]; then echo "SAW-HOST-DEV" >> $out; fi
touch /tmp/scratch
env | sort >> $out
cat /proc/self/mountinfo > /mountinfo
`, true)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", root); err != nil {
		t.Fatalf("%v\n%s", err, f.logText(t))
	}
	got, err := os.ReadFile(filepath.Join(root, "result"))
	if err != nil {
		t.Fatalf("the hook did not write inside its root: %v\n%s", err, f.logText(t))
	}
	s := string(got)
	for _, want := range []string{"pwd=/\n", "from src\n", "from cache\n", "from local\n",
		"EIB_IMAGE_SOME_PATH=/tmp/eos-image-builder/content/x /tmp/eos-image-builder/src/data\n",
		"EIB_CACHEDIR=/tmp/eos-image-builder\n", "EIB_SRCDIR=/tmp/eos-image-builder/src\n", "EIB_LOCALDIR=/tmp/eib-local\n",
		"EIB_HOOK_GROUP=image\n", "PYTHONPATH=/tmp/eos-image-builder/src/lib\n", "LANG=C.UTF-8\n", "PATH="} {
		if !strings.Contains(s, want) {
			t.Errorf("chroot hook output lacks %q:\n%s", want, s)
		}
	}
	for _, bad := range []string{"SAW-HOST-FILE", "WROTE-", "COULD-", "HOME=", "OSTREE_DEPLOYMENT", "HOST_ONLY_VAR"} {
		if strings.Contains(s, bad) {
			t.Errorf("chroot hook escaped its confinement (%s):\n%s", bad, s)
		}
	}
	for _, p := range []string{filepath.Join(f.cache, "written"), filepath.Join(f.src, "written"), filepath.Join(f.local, "written")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists on the host", p)
		}
	}
	// The root's /tmp is the hook's (as in EIB), and the mount points
	// bwrap made there are gone.
	if _, err := os.Stat(filepath.Join(root, "tmp", "scratch")); err != nil {
		t.Errorf("the hook's /tmp is not the root's /tmp: %v", err)
	}
	for _, p := range []string{"20-confined.chroot", "eos-image-builder", "eib-local"} {
		if _, err := os.Lstat(filepath.Join(root, "tmp", p)); err == nil {
			t.Errorf("mount point /tmp/%s left in the root", p)
		}
	}
	// /sys and /proc/sys are read-only inside.
	mi, _ := os.ReadFile(filepath.Join(root, "mountinfo"))
	ro := map[string]bool{}
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 5 {
			ro[f[4]] = strings.HasPrefix(f[5], "ro")
		}
	}
	mps := []string{"/sys", "/proc/sys", "/tmp/eos-image-builder", "/tmp/eos-image-builder/src", "/tmp/eib-local"}
	if _, err := os.Stat("/proc/sysrq-trigger"); err == nil {
		mps = append(mps, "/proc/sysrq-trigger")
	}
	for _, mp := range mps {
		if v, ok := ro[mp]; !ok || !v {
			t.Errorf("%s is not a read-only mount in the sandbox:\n%s", mp, mi)
		}
	}
	syscall.Unmount(filepath.Join(root, "dev"), 0)
	syscall.Unmount(filepath.Join(root, "sys"), 0)
	assertNoMountsUnder(t, root)
}

func TestNonExecutableChrootHookRunsUnderBash(t *testing.T) {
	f := newFixture(t)
	root := busyboxRoot(t)
	// busybox has no bash: the hook fails, which shows bash was asked for.
	f.cfg.Set("image", "hooks", "30-plain.chroot")
	writeHook(t, f.src, "image", "30-plain.chroot", "echo hi\n", false)
	err := f.runner.RunGroup(context.Background(), f.b, "image", root)
	if err == nil {
		t.Fatal("a non-executable .chroot hook ran without bash in the root")
	}
	if log := f.logText(t); !strings.Contains(log, "bash") {
		t.Errorf("log does not say bash was missing:\n%s", log)
	}
}

func TestChrootHookSkippedWithoutInstallRoot(t *testing.T) {
	f := newFixture(t)
	ran := filepath.Join(t.TempDir(), "ran")
	f.stage("publish")
	f.cfg.Set("publish", "hooks", "10-x.chroot 20-y")
	writeHook(t, f.src, "publish", "10-x.chroot", "#!/bin/sh\ntouch "+ran+"\n", true)
	writeHook(t, f.src, "publish", "20-y", "true\n", false)
	if err := f.runner.RunGroup(context.Background(), f.b, "publish", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("a .chroot hook ran with no install root")
	}
	if log := f.logText(t); !strings.Contains(log, "publish/10-x.chroot: skipped: no install root") {
		t.Errorf("no skip line in the log:\n%s", log)
	}
}

func assertNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left under %s:\n%s", dir, mi)
	}
}

func TestRewritePaths(t *testing.T) {
	dirs := map[string]string{"/c": "/tmp/eib", "/c/src": "/tmp/eib/src"}
	for in, want := range map[string]string{
		"/c":                "/tmp/eib",
		"/c/x /c/src/y":     "/tmp/eib/x /tmp/eib/src/y",
		"/cx /other/c/y":    "/cx /other/c/y",
		"a=/c/src:/c/z":     "a=/tmp/eib/src:/tmp/eib/z",
		"/c/src":            "/tmp/eib/src",
		"http://h/c/x":      "http://h/c/x",
		"\n/c/content/a.db": "\n/tmp/eib/content/a.db",
	} {
		if got := RewritePaths(in, dirs); got != want {
			t.Errorf("RewritePaths(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCancelKillsAChrootHook(t *testing.T) {
	f := newFixture(t)
	root := busyboxRoot(t)
	token := strconv.Itoa(6000 + os.Getpid()%1000)
	f.cfg.Set("image", "hooks", "10-sleep.chroot")
	writeHook(t, f.src, "image", "10-sleep.chroot", "#!/bin/sh\nsleep "+token+" &\nsleep "+token+"\n", true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.runner.RunGroup(ctx, f.b, "image", root) }()
	for i := 0; len(procsWith("sleep\x00"+token)) != 2; i++ {
		if i > 500 {
			cancel()
			t.Fatalf("the chroot hook never started its sleepers\n%s", f.logText(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("RunGroup succeeded after cancel")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunGroup did not return after cancel")
	}
	for i := 0; len(procsWith("sleep\x00"+token)) > 0; i++ {
		if i > 100 {
			t.Fatalf("chroot hook processes left after cancel: %v", procsWith("sleep\x00"+token))
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertNoMountsUnder(t, root)
}
