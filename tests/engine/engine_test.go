package engine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/lock"
	"github.com/eib-builder/eib/tests/harness"
)

func TestFailingHookRunsErrorStageAndExits2(t *testing.T) {
	p := newProject(t, "publish\n", "[publish]\nhooks = 20-fails 10-ok 30-never\n\n[error]\nhooks = 10-record\n")
	record := filepath.Join(p.Dir, "error-seen")
	never := filepath.Join(p.Dir, "never")
	p.Write("hooks/publish/10-ok", "echo fine\n", 0o644)
	p.Write("hooks/publish/20-fails", "echo going down\nexit 5\n", 0o644)
	p.Write("hooks/publish/30-never", "touch "+never+"\n", 0o644)
	p.Write("hooks/error/10-record", "#!/bin/sh\necho \"$EIB_ERROR_STAGE|$EIB_ERROR_HOOK|$EIB_ERROR_LOG|$EIB_HOOK_GROUP\" > "+record+"\n", 0o755)

	code, stdout, stderr := p.run("master")
	if code != 2 {
		t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := "eib: build failed in stage publish, hook publish/20-fails: exit status 5 (log: " + p.logFile() + ")"
	if got := harness.LastLine(stderr); got != want {
		t.Errorf("final line\n%s\nwant\n%s", got, want)
	}
	if got := strings.TrimSpace(p.read(record)); got != "publish|publish/20-fails|"+p.logFile()+"|error" {
		t.Errorf("error hook saw %q", got)
	}
	if _, err := os.Stat(never); err == nil {
		t.Error("a hook after the failed one ran")
	}
	log := p.read(p.logFile())
	for _, want := range []string{"publish/10-ok: fine", "publish/20-fails: going down", "publish/20-fails: failed after",
		"error/10-record: start", "error/10-record: done in", "eib: cleanup release lock"} {
		if !strings.Contains(log, want) {
			t.Errorf("build.txt lacks %q:\n%s", want, log)
		}
	}
	// The terminal is concise but shows the failed hook's output.
	if strings.Contains(stdout, "publish/10-ok: fine") || !strings.Contains(stdout, "publish/20-fails: | going down") {
		t.Errorf("terminal output:\n%s", stdout)
	}
}

func TestDebugShowsHookOutputOnTerminal(t *testing.T) {
	p := newProject(t, "publish\n", "[publish]\nhooks = 10-ok\n")
	p.Write("hooks/publish/10-ok", "echo visible-with-debug\n", 0o644)
	code, stdout, stderr := p.run("--debug", "master")
	if code != 0 || !strings.Contains(stdout, "publish/10-ok: visible-with-debug") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestSecretReachesHooksButNeverLogOrConfigIni(t *testing.T) {
	const secret = "s3cr3t-Token-Value"
	p := newProject(t, "publish\n", "[publish]\nhooks = 10-use-secret\ntoken = public-placeholder\n")
	p.Write("config/private.ini", "[publish]\ntoken = "+secret+"\n", 0o600)
	seen := filepath.Join(p.Dir, "seen")
	p.Write("hooks/publish/10-use-secret", "printf '%s' \"$EIB_PUBLISH_TOKEN\" > "+seen+"\necho \"the token is $EIB_PUBLISH_TOKEN\"\nenv | grep TOKEN\n", 0o644)

	code, stdout, stderr := p.run("--debug", "master")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if got := p.read(seen); got != secret {
		t.Errorf("hook saw EIB_PUBLISH_TOKEN=%q, want the private value", got)
	}
	log := p.read(p.logFile())
	if !strings.Contains(log, "the token is ***") {
		t.Errorf("build.txt does not show the masked value:\n%s", log)
	}
	for name, text := range map[string]string{
		"build.txt": log, "terminal": stdout + stderr,
		"config.ini": p.read(filepath.Join(p.Tmpdir(), "config.ini")),
	} {
		if strings.Contains(text, secret) {
			t.Errorf("the secret leaked into %s:\n%s", name, text)
		}
	}
	// The published copy of the log (the publish stage's <outversion>.build.txt) is masked too.
	outs, _ := filepath.Glob(filepath.Join(p.Cache, "build", "out", "*.build.txt"))
	// It is copied before the publish hooks run, so it holds the lines of
	// the build up to the publish stage.
	if len(outs) != 1 || strings.Contains(p.read(outs[0]), secret) || !strings.Contains(p.read(outs[0]), "stage publish") {
		t.Errorf("published build logs %v", outs)
	}
	full := filepath.Join(p.Tmpdir(), "fullconfig.ini")
	if !strings.Contains(p.read(full), secret) {
		t.Error("fullconfig.ini lacks the private value")
	}
	if st, _ := os.Stat(full); st.Mode().Perm() != 0o600 {
		t.Errorf("fullconfig.ini mode %v, want 0600", st.Mode().Perm())
	}
	if cfg := p.read(filepath.Join(p.Tmpdir(), "config.ini")); !strings.HasPrefix(cfg, "# Configuration for ") {
		t.Errorf("config.ini header: %.60q", cfg)
	}
}

func TestDryRunSkipsPublish(t *testing.T) {
	p := newProject(t, "publish\n", "[publish]\nhooks = 10-mark\n")
	marker := filepath.Join(p.Dir, "published")
	p.Write("hooks/publish/10-mark", "touch "+marker+"\n", 0o644)
	code, stdout, stderr := p.run("--dry-run", "master")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the publish hook ran in a dry run")
	}
	if !strings.Contains(stdout, "stage publish skipped (--dry-run)") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestUnknownStageFailsBeforeAnythingRuns(t *testing.T) {
	p := newProject(t, "publish\npubish\n", "")
	code, _, stderr := p.run("master")
	if code == 0 || !strings.Contains(stderr, filepath.Join(p.Local, "buildscript")+":2: unknown stage \"pubish\"") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(p.Cache); !os.IsNotExist(err) {
		t.Errorf("the build touched %s before failing: %v", p.Cache, err)
	}
}

// A missing hook is a configuration error, found by the plan before the
// build touches anything: exit 1, naming the file, the key, the hook and
// where it was looked for.
func TestMissingHookIsFatal(t *testing.T) {
	p := newProject(t, "publish\n", "[publish]\nhooks = 10-nowhere\n")
	code, _, stderr := p.run("master")
	if code != 1 || !strings.Contains(stderr, filepath.Join(p.Local, "config", "defaults.ini")+":") ||
		!strings.Contains(stderr, "[publish] hooks: hook publish/10-nowhere") || !strings.Contains(stderr, "missing hook") ||
		!strings.Contains(stderr, filepath.Join(p.Local, "hooks", "publish")) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(p.Cache); !os.IsNotExist(err) {
		t.Errorf("the build touched %s before failing: %v", p.Cache, err)
	}
}

func TestHeldLockFailsNamingTheHolder(t *testing.T) {
	p := newProject(t, "publish\n", "")
	l, err := lock.Acquire(context.Background(), p.Lock, 0)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := p.run("--lock-timeout", "1", "master")
	l.Release()
	holder := "PID " + strconv.Itoa(os.Getpid())
	if code == 0 || !strings.Contains(stderr, holder) || !strings.Contains(stderr, p.Lock) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "waiting up to 1s for the lock "+p.Lock+", held by "+holder) {
		t.Errorf("no waiting line on the terminal:\n%s", stdout)
	}
}

func TestSIGTERMDuringSleepingHookLeavesNothingBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the hook mounts and sets up a loop device)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup missing")
	}
	token := strconv.Itoa(7000 + os.Getpid()%1000)
	p := newProject(t, "publish\n", "[publish]\nhooks = 10-sleep\n\n[error]\nhooks = 10-error\n")
	ready := filepath.Join(p.Dir, "ready")
	errorRan := filepath.Join(p.Dir, "error-ran")
	// The hook leaves a mount and a loop device under tmpdir, a
	// background sleeper, then sleeps.
	p.Write("hooks/publish/10-sleep", `
mkdir -p "$EIB_TMPDIR/mnt"
mount -t tmpfs eib-test "$EIB_TMPDIR/mnt"
truncate -s 1M "$EIB_TMPDIR/disk.img"
losetup -f "$EIB_TMPDIR/disk.img"
sleep `+token+` &
touch `+ready+`
sleep `+token+`
`, 0o644)
	p.Write("hooks/error/10-error", "touch "+errorRan+"\n", 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, stdout, stderr := p.startUntilReady(ctx, ready, token, "master")
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), filepath.Join(p.Tmpdir(), "mnt")) {
		t.Fatal("the hook's mount is not there: the test would prove nothing")
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("eib exited 0 after SIGTERM\n%s\n%s", stdout, stderr)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("eib took %s to stop", d)
	}
	if left := procsWith("sleep\x00" + token); len(left) > 0 {
		t.Errorf("hook processes left: %v", left)
	}
	if _, err := os.Stat(errorRan); err == nil {
		t.Error("the error stage ran on an interrupted build")
	}
	if !strings.Contains(stderr.String(), "build interrupted in stage publish, hook publish/10-sleep") {
		t.Errorf("stderr:\n%s", stderr)
	}
	log := p.read(p.logFile())
	for _, want := range []string{"unmounted leftover " + filepath.Join(p.Tmpdir(), "mnt"), "detached leftover loop device"} {
		if !strings.Contains(log, want) {
			t.Errorf("build.txt lacks %q:\n%s", want, log)
		}
	}
	// assertNoLeftovers (t.Cleanup) checks mounts, loops, processes, lock.
}

func TestNextBuildCleansWhatAKilledBuildLeft(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	p := newProject(t, "publish\n", "[publish]\nhooks =\n")
	// What a SIGKILLed build leaves: a mount in tmpdir and an immutable
	// deployment root in outdir.
	mnt := filepath.Join(p.Tmpdir(), "mnt")
	deploy := filepath.Join(p.Cache, "build", "out", "sysroot", "ostree", "deploy", "os", "deploy", "abc.0")
	os.MkdirAll(mnt, 0o755)
	os.MkdirAll(deploy, 0o755)
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chattr", "+i", deploy).CombinedOutput(); err != nil {
		syscall.Unmount(mnt, 0)
		t.Skipf("chattr +i: %v %s", err, out)
	}
	code, stdout, stderr := p.run("master")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(deploy); !os.IsNotExist(err) {
		t.Errorf("immutable leftover not removed: %v", err)
	}
	if !strings.Contains(stdout, "unmounted leftover "+mnt) {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestSignFileInAHookUsesEibSign(t *testing.T) {
	key := filepath.Join(srcRoot, "data", "demo", "image-signing-key.DEMO-ONLY.sec.asc")
	if _, err := os.Stat(key); err != nil {
		t.Skipf("demo signing key not in this tree: %v", err)
	}
	p := newProject(t, "publish\n", "[image]\nsigning_key = "+key+"\n\n[publish]\nhooks = 10-sign\n")
	p.Write("hooks/publish/10-sign", `f=$(eib_outfile data)
echo "some output" > "$f"
sign_file "$f"
checksum_file "$f"
`, 0o644)
	code, stdout, stderr := p.run("master")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s\n%s", code, stdout, stderr, p.read(p.logFile()))
	}
	outs, _ := filepath.Glob(filepath.Join(p.Cache, "build", "out", "*.data"))
	if len(outs) != 1 {
		t.Fatalf("outputs %v", outs)
	}
	asc := p.read(outs[0] + ".asc")
	if !strings.HasPrefix(asc, "-----BEGIN PGP SIGNATURE-----") {
		t.Fatalf("not an armored signature:\n%s", asc)
	}
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed: signature not verified")
	}
	home := filepath.Join(p.Dir, "gnupg")
	os.MkdirAll(home, 0o700)
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--import", key).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := exec.Command("gpg", "--homedir", home, "--batch", "--verify", outs[0]+".asc", outs[0]).CombinedOutput()
	exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	if err != nil || !strings.Contains(string(out), "Good signature") {
		t.Errorf("gpg --verify: %v\n%s", err, out)
	}

	// With no key configured, sign_file signs nothing and succeeds.
	p2 := newProject(t, "publish\n", "[image]\nsigning_key = "+filepath.Join(p.Dir, "no-such-key.asc")+"\n\n[publish]\nhooks = 10-sign\n")
	p2.Write("hooks/publish/10-sign", "f=$(eib_outfile data)\necho x > \"$f\"\nsign_file \"$f\"\n", 0o644)
	if code, stdout, stderr := p2.run("master"); code != 0 {
		t.Fatalf("without a key: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(p2.Cache, "build", "out", "*.asc")); len(m) != 0 {
		t.Errorf("signatures without a key: %v", m)
	}
}

func TestBuildAfterASIGKILLedOneCleansItsLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount, chroot)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static not installed")
	}
	token := strconv.Itoa(8000 + os.Getpid()%1000)
	p := newProject(t, "publish\n", "[publish]\nhooks = 10-hang\n")
	busybox := filepath.Join(p.Dir, "busybox")
	os.WriteFile(busybox, bb, 0o755)
	ready := filepath.Join(p.Dir, "ready")
	// The hook leaves a mount and a process chrooted in tmpdir, then hangs.
	p.Write("hooks/publish/10-hang", `
mkdir -p "$EIB_TMPDIR/root/bin" "$EIB_TMPDIR/mnt"
cp `+busybox+` "$EIB_TMPDIR/root/bin/busybox"
mount -t tmpfs eib-test "$EIB_TMPDIR/mnt"
setsid chroot "$EIB_TMPDIR/root" /bin/busybox sleep `+token+` </dev/null >/dev/null 2>&1 &
touch `+ready+`
sleep `+token+`
`, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, _, _ := p.startUntilReady(ctx, ready, token, "master")
	cmd.Process.Kill() // no cleanup can run
	cmd.Wait()
	// The hook's own sleep lives on after the kill, outside the build
	// dirs; the next build kills it through the build's cgroup (the
	// deferred kill only keeps a failed test from leaking it).
	defer func() {
		for _, pid := range procsWith("sleep\x00" + token) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	mnt := filepath.Join(p.Tmpdir(), "mnt")
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), mnt) {
		t.Fatal("the killed build left no mount: the test would prove nothing")
	}

	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\nhooks =\n\n[error]\nhooks =\n", 0o644)
	code, out, errOut := p.run("master")
	if code != 0 {
		t.Fatalf("the next build: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"killing leftover process", "unmounted leftover " + mnt} {
		if !strings.Contains(out, want) {
			t.Errorf("the next build did not report %q:\n%s", want, out)
		}
	}
	if pids := procsWith("sleep\x00" + token); len(pids) > 0 {
		t.Errorf("the killed build's hook process %v outlived the next build", pids)
	}
	// assertNoLeftovers (t.Cleanup): no mount, loop, rooted process, lock.
}
