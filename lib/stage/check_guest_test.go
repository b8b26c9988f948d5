package stage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/check"
)

// lineLog is a build log that keeps its lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}
func (l *lineLog) Debugf(format string, args ...any) { l.Printf(format, args...) }

func (l *lineLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// fakeGuest puts a qemu-system-x86_64 on PATH that boots like a small OS
// on a serial console: it counts its boots, prints the marker and a getty
// prompt, reads the login name (and, with FAKE_PASSWORD set, asks for the
// password and refuses a wrong one), then is a shell on the console. The
// marker boots give it no input, so it ends after the marker. It returns
// the file that counts the boots.
func fakeGuest(t *testing.T, password string) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is not installed: run make deps (make test does)")
	}
	bin := t.TempDir()
	boots := filepath.Join(bin, "boots")
	script := "#!/bin/sh\n" +
		"n=$(cat \"$FAKE_BOOTS\" 2>/dev/null || echo 0); echo $((n+1)) > \"$FAKE_BOOTS\"\n" +
		"printf 'EIB-TEST-BOOT-OK\\r\\nfake login: '\n" +
		"read user || exit 0\n" +
		"if [ -n \"$FAKE_PASSWORD\" ]; then printf 'Password: '; read pw; [ \"$pw\" = \"$FAKE_PASSWORD\" ] || { echo 'Login incorrect'; exit 1; }; fi\n" +
		"echo \"welcome $user\"\n" +
		"exec sh 2>&1\n"
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_BOOTS", boots)
	t.Setenv("FAKE_PASSWORD", password)
	t.Setenv(check.AccelEnv, "")
	return boots
}

// guestBuild is a check build of one BIOS image (a blank file: the fake
// emulator boots anything) with the settings given.
func guestBuild(t *testing.T, settings map[string]string) (*build.Build, *envRecorder, *lineLog, string) {
	t.Helper()
	all := map[string]string{"firmware": "bios", "accel": "tcg", "serial_console": "off", "boot_timeout": "20"}
	for k, v := range settings {
		all[k] = v
	}
	b, hooks, dir := checkBuild(t, all)
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Artifacts = bootRecords([]build.Image{{Path: img, Arch: "amd64", Firmware: []string{"bios", "uefi"}}})
	log := &lineLog{}
	b.Log = log
	return b, hooks, log, dir
}

func readGuestResults(t *testing.T, hooksEnv []string, b *build.Build, dir string) []guestResult {
	t.Helper()
	path := filepath.Join(dir, "tmp", "guest-commands.json")
	if !slices.Contains(hooksEnv, GuestResultsEnv+"="+path) && !slices.Contains(b.ExtraEnv(), GuestResultsEnv+"="+path) {
		t.Errorf("%s=%s is not set: %v", GuestResultsEnv, path, b.ExtraEnv())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []guestResult
	if err := json.Unmarshal(data, &rs); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return rs
}

func bootCount(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestGuestCommandsRunAfterTheBootAndAreLogged(t *testing.T) {
	boots := fakeGuest(t, "")
	b, hooks, log, dir := guestBuild(t, map[string]string{
		"guest_commands": "echo hello guest\n\nuname -s; echo to stderr >&2"})
	if err := runCheckStage(context.Background(), b); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.text())
	}
	if got := bootCount(t, boots); got != "2" {
		t.Errorf("the emulator ran %s times, want 2 (the marker boot and one guest session)", got)
	}
	for _, want := range []string{
		"guest $ echo hello guest | hello guest",
		"guest $ uname -s; echo to stderr >&2 | Linux",
		"guest $ uname -s; echo to stderr >&2 | to stderr",
		"guest command 2 of 2 passed",
		"logging in as root",
	} {
		if !strings.Contains(log.text(), want) {
			t.Errorf("the build log lacks %q:\n%s", want, log.text())
		}
	}
	if !slices.Equal(hooks.groups, []string{"check"}) {
		t.Errorf("hook groups %v, want [check]", hooks.groups)
	}
	rs := readGuestResults(t, hooks.env, b, dir)
	if len(rs) != 2 || rs[0].Command != "echo hello guest" || rs[0].Result != "ok" || rs[0].Exit != 0 ||
		rs[0].Output != "hello guest\n" || rs[1].Output != "Linux\nto stderr\n" || rs[1].Firmware != "bios" || rs[1].Image != "disk.img" {
		t.Errorf("results %+v", rs)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "guest-bios.log")); err != nil {
		t.Errorf("no guest console log: %v", err)
	}
}

func TestAFailingGuestCommandFailsTheCheck(t *testing.T) {
	fakeGuest(t, "")
	b, hooks, log, dir := guestBuild(t, map[string]string{
		"guest_commands": "true\necho almost; false\necho never run"})
	err := runCheckStage(context.Background(), b)
	want := `[check] guest_commands: disk.img with bios firmware: command 2 of 3 "echo almost; false": exit status 1; last 1 lines of its output:` + "\n  | almost"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v\nwant it to contain %q", err, want)
	}
	if len(hooks.groups) != 0 {
		t.Errorf("the check hooks ran after a failed guest command: %v", hooks.groups)
	}
	if strings.Contains(log.text(), "never run") {
		t.Errorf("a command after the failed one ran:\n%s", log.text())
	}
	rs := readGuestResults(t, nil, b, dir)
	if len(rs) != 2 || rs[1].Result != "failed" || rs[1].Exit != 1 || rs[1].Output != "almost\n" {
		t.Errorf("results %+v", rs)
	}
}

func TestAGuestCommandPastItsTimeoutFailsTheCheck(t *testing.T) {
	fakeGuest(t, "")
	b, _, _, dir := guestBuild(t, map[string]string{"guest_commands": "sleep 30", "guest_command_timeout": "1"})
	err := runCheckStage(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), `command 1 of 1 "sleep 30": did not finish within 1s ([check] guest_command_timeout)`) {
		t.Fatalf("err = %v", err)
	}
	if rs := readGuestResults(t, nil, b, dir); len(rs) != 1 || rs[0].Result != "error" || rs[0].Exit != -1 {
		t.Errorf("results %+v", rs)
	}
}

func TestGuestCommandsLogInWithThePasswordFile(t *testing.T) {
	fakeGuest(t, "s3cret word")
	pw := filepath.Join(t.TempDir(), "guest-password")
	if err := os.WriteFile(pw, []byte("s3cret word\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _, log, _ := guestBuild(t, map[string]string{"guest_commands": "id -un >/dev/null", "guest_user": "tester", "guest_password_file": pw})
	if err := runCheckStage(context.Background(), b); err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.text())
	}
	if strings.Contains(log.text(), "s3cret") {
		t.Errorf("the password reached the log:\n%s", log.text())
	}

	// A wrong password fails the check, naming the user and the login.
	if err := os.WriteFile(pw, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _, _, _ = guestBuild(t, map[string]string{"guest_commands": "true", "guest_user": "tester", "guest_password_file": pw})
	err := runCheckStage(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "logging in as tester ([check] guest_user)") || !strings.Contains(err.Error(), "Login incorrect") {
		t.Fatalf("wrong password: err = %v", err)
	}
}

func TestGuestSettings(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _, _ := checkBuild(t, map[string]string{"guest_commands": "  systemctl is-system-running --wait\n\n  test -e /etc/os-release  \n",
		"guest_user": " admin ", "guest_command_timeout": "30"})
	s, err := readCheckSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	g := s.guest
	if !slices.Equal(g.commands, []string{"systemctl is-system-running --wait", "test -e /etc/os-release"}) ||
		g.user != "admin" || g.timeout.Seconds() != 30 || g.password != "" {
		t.Errorf("settings %+v", g)
	}
	// The defaults: no commands, root, no password, 120 s.
	b, _, _ = checkBuild(t, nil)
	if s, err = readCheckSettings(b); err != nil || s.guest.commands != nil || s.guest.user != "root" || s.guest.timeout.Seconds() != 120 {
		t.Errorf("defaults: %+v, %v", s.guest, err)
	}
	b, _, _ = checkBuild(t, map[string]string{"guest_password_file": empty})
	if _, err := readCheckSettings(b); err == nil || !strings.Contains(err.Error(), "[check] guest_password_file: "+empty+": the first line (the password of root) is empty") {
		t.Errorf("a password file with an empty first line: %v", err)
	}
}

// With boot = false no guest runs, and the log says why the commands did
// not.
func TestGuestCommandsNeedTheBootCheck(t *testing.T) {
	boots := fakeGuest(t, "")
	b, hooks, log, _ := guestBuild(t, map[string]string{"boot": "false", "guest_commands": "true"})
	if err := runCheckStage(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(boots); !os.IsNotExist(err) {
		t.Errorf("the emulator ran with boot = false")
	}
	if !strings.Contains(log.text(), "[check] guest_commands not run: they need the boot check ([check] boot = false)") || len(hooks.groups) != 1 {
		t.Errorf("log:\n%s\nhooks %v", log.text(), hooks.groups)
	}
}
