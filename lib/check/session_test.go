package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeEmulator puts a qemu-system-x86_64 on PATH that behaves like a guest
// on a serial console: it prints its boot count and a login prompt, reads
// the user name, then is a shell on standard input and output (exit
// powers it off).
func fakeEmulator(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img is not installed")
	}
	bin := t.TempDir()
	script := "#!/bin/sh\n" +
		"n=$(cat \"$FAKE_BOOTS\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$FAKE_BOOTS\"\n" +
		"printf '\\033[1mboot %s\\033[0m\\r\\nguest login: ' $n\n" +
		"read user\n" +
		"echo \"welcome $user\"\n" +
		"exec sh 2>&1\n"
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_BOOTS", filepath.Join(bin, "boots"))
}

func TestSessionRunsCommandsAndSurvivesAReboot(t *testing.T) {
	fakeEmulator(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var log strings.Builder
	s, err := NewSession(ctx, SessionOptions{Image: img, Dir: dir, Firmware: BIOS, Log: &syncWriter{b: &log}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, "session-bios.qcow2")); err != nil {
		t.Errorf("no persistent overlay: %v", err)
	}
	if err := s.Boot(); err != nil {
		t.Fatal(err)
	}
	// Control sequences are gone from what Expect matches.
	if m, err := s.Expect(ctx, regexp.MustCompile(`boot ([0-9]+)\n`), 10*time.Second); err != nil || m[1] != "1" {
		t.Fatalf("Expect = %v, %v", m, err)
	}
	if err := s.Login(ctx, "root", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out, rc, err := s.Run(ctx, "echo hello; echo oops >&2; exit 3", 10*time.Second)
	if err != nil || rc != 3 || out != "hello\noops\n" {
		t.Errorf("Run = %q, %d, %v; want both streams and status 3", out, rc, err)
	}
	out, rc, err = s.Run(ctx, "true", 10*time.Second)
	if err != nil || rc != 0 || out != "" {
		t.Errorf("Run(true) = %q, %d, %v", out, rc, err)
	}
	if _, _, err := s.Run(ctx, "sleep 5", 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not appear within") {
		t.Errorf("a command past its timeout: %v", err)
	}
	// The guest powers off; the next Boot is a new boot of the same disk.
	if err := s.Send("exit"); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitExit(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expect(ctx, regexp.MustCompile(`never`), 5*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Expect after the emulator exited: %v, want an error saying so", err)
	}
	if err := s.Boot(); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Expect(ctx, regexp.MustCompile(`boot ([0-9]+)`), 10*time.Second); err != nil || m[1] != "2" {
		t.Fatalf("second boot: Expect = %v, %v", m, err)
	}
	if !strings.Contains(log.String(), "welcome root") {
		t.Errorf("the console copy lacks the login:\n%s", log.String())
	}
}

// syncWriter is a strings.Builder written by the session's reader only.
type syncWriter struct{ b *strings.Builder }

func (w *syncWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// TestLoginAfterAConsumedPrompt: getty printed its prompt before the boot
// marker, which an Expect consumed; Login sends an empty line, getty
// prints the prompt again, and the login goes on.
func TestLoginAfterAConsumedPrompt(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is not installed (make deps installs it)")
	}
	bin := t.TempDir()
	script := "#!/bin/sh\n" +
		"printf 'guest login: EIB-MARKER\\r\\n'\n" +
		"while read user; do [ -n \"$user\" ] && break; printf 'guest login: '; done\n" +
		"echo \"welcome $user\"\n" +
		"exec sh 2>&1\n"
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	defer func(d time.Duration) { loginPoke = d }(loginPoke)
	loginPoke = 200 * time.Millisecond
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := NewSession(ctx, SessionOptions{Image: img, Dir: dir, Firmware: BIOS})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expect(ctx, regexp.MustCompile(`EIB-MARKER`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "root", 10*time.Second); err != nil {
		t.Fatalf("login after the prompt was consumed: %v", err)
	}
	if out, rc, err := s.Run(ctx, "echo ok", 10*time.Second); err != nil || rc != 0 || out != "ok\n" {
		t.Errorf("Run = %q, %d, %v", out, rc, err)
	}
}
