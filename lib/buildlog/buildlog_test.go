package buildlog

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/terminal"
)

func fixed(l *Log) {
	l.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
}

func TestLinesCarryTimeAndStageHookPrefix(t *testing.T) {
	var term bytes.Buffer
	l := New(&term, false, nil)
	fixed(l)
	path := filepath.Join(t.TempDir(), "build.txt")
	l.Printf("before the file")
	if err := l.OpenFile(path); err != nil {
		t.Fatal(err)
	}
	l.SetStage("image")
	l.Printf("stage line")
	w := l.Output("50-hostname")
	w.Write([]byte("hook line 1\nhook "))
	w.Write([]byte("line 2\npartial"))
	w.Close()
	l.Debugf("debug line")
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "03:04:05 eib: before the file\n" +
		"03:04:05 image: stage line\n" +
		"03:04:05 image/50-hostname: hook line 1\n" +
		"03:04:05 image/50-hostname: hook line 2\n" +
		"03:04:05 image/50-hostname: partial\n" +
		"03:04:05 image: debug line\n"
	if string(data) != want {
		t.Errorf("build.txt =\n%s\nwant\n%s", data, want)
	}
	// The terminal is concise: no hook output, no debug lines.
	wantTerm := "03:04:05 eib: before the file\n03:04:05 image: stage line\n"
	if term.String() != wantTerm {
		t.Errorf("terminal =\n%s\nwant\n%s", term.String(), wantTerm)
	}
}

func TestDebugShowsHookOutputOnTerminal(t *testing.T) {
	var term bytes.Buffer
	l := New(&term, true, nil)
	w := l.Output("10-x")
	w.Write([]byte("visible\n"))
	l.Debugf("dbg")
	if !strings.Contains(term.String(), "eib/10-x: visible") || !strings.Contains(term.String(), "dbg") {
		t.Errorf("terminal with --debug lacks hook output: %q", term.String())
	}
}

func TestSecretsAreMaskedEverywhere(t *testing.T) {
	var term bytes.Buffer
	l := New(&term, true, []string{"hunter2-secret", "  multi\nline-secret  ", "no", "1", ""})
	path := filepath.Join(t.TempDir(), "build.txt")
	if err := l.OpenFile(path); err != nil {
		t.Fatal(err)
	}
	l.Printf("password is hunter2-secret, ok no 1")
	w := l.Output("hook")
	w.Write([]byte("token=multi and line-secret\n"))
	w.Close()
	l.Close()
	data, _ := os.ReadFile(path)
	for _, out := range []string{string(data), term.String()} {
		for _, s := range []string{"hunter2", "multi", "line-secret"} {
			if strings.Contains(out, s) {
				t.Errorf("secret %q leaked:\n%s", s, out)
			}
		}
		if !strings.Contains(out, "password is ***, ok no 1") {
			t.Errorf("mask or harmless values wrong:\n%s", out)
		}
		if !regexp.MustCompile(`token=\*\*\* and \*\*\*`).MatchString(out) {
			t.Errorf("multi-line secret not masked line by line:\n%s", out)
		}
	}
	if got := w.Tail(); len(got) != 1 || got[0] != "token=*** and ***" {
		t.Errorf("Tail = %q", got)
	}
}

func TestTailKeepsLastLines(t *testing.T) {
	l := New(nil, false, nil)
	w := l.Output("h")
	for i := 0; i < 50; i++ {
		w.Write([]byte("x\n"))
	}
	w.Write([]byte("last\n"))
	tail := w.Tail()
	if len(tail) != tailLines || tail[len(tail)-1] != "last" {
		t.Errorf("Tail = %d lines ending %q", len(tail), tail[len(tail)-1])
	}
}

// Off a TTY, progress started on the log's terminal becomes log lines:
// prefixed, in the file and on the terminal.
func TestProgressOffTTYIsLogLines(t *testing.T) {
	var term bytes.Buffer
	l := New(&term, false, []string{"hunter2-secret"})
	fixed(l)
	if l.Terminal() == nil || l.Terminal().IsTTY() {
		t.Fatal("a buffer is not a TTY")
	}
	path := filepath.Join(t.TempDir(), "build.txt")
	if err := l.OpenFile(path); err != nil {
		t.Fatal(err)
	}
	l.SetStage("image")
	p := l.Terminal().Progress("copy hunter2-secret", 1<<20)
	p.Add(1 << 20)
	p.Done()
	w := l.Terminal().ToolWriter("pull")
	w.Write([]byte("10%\r3 objects fetched\n"))
	w.Close()
	l.Close()
	data, _ := os.ReadFile(path)
	want := regexp.MustCompile(`^03:04:05 image: copy \*\*\*: 100% 1/1 MiB \d+ MiB/s\n` +
		`03:04:05 image: pull: 3 objects fetched\n$`)
	for _, out := range []string{string(data), term.String()} {
		if !want.MatchString(out) {
			t.Errorf("got\n%s\nwant %s", out, want)
		}
	}
}

// On a TTY a log line goes above a running bar, and the bar is masked.
func TestLinesGoAboveBarOnTTY(t *testing.T) {
	var term bytes.Buffer
	l := NewTerminal(terminal.NewTTY(&term, true), false, []string{"hunter2-secret"})
	fixed(l)
	p := l.Terminal().Progress("copy hunter2-secret", 1<<20)
	l.Printf("password hunter2-secret")
	p.Done()
	out := term.String()
	want := regexp.MustCompile(`^\r\[\.{30}\] copy \*\*\*:   0% 0/1 MiB \d+ MiB/s\x1b\[K` +
		`\r03:04:05 eib: password \*\*\*\x1b\[K\n` +
		`\r\[\.{30}\] copy \*\*\*: +0% 0/1 MiB \d+ MiB/s\x1b\[K` +
		`(\r\[\.{30}\] copy \*\*\*: +0% 0/1 MiB \d+ MiB/s\x1b\[K)*` + // redraws by the ticker
		`\r\[\.{30}\] copy \*\*\*:   0% 0/1 MiB \d+ MiB/s\x1b\[K\n$`)
	if !want.MatchString(out) {
		t.Errorf("terminal %q", out)
	}
}

func TestAddSecretsMasksFromThenOn(t *testing.T) {
	var term bytes.Buffer
	l := New(&term, false, []string{"config-secret"})
	l.Printf("before: guest-password config-secret")
	l.AddSecrets("guest-password")
	l.Printf("after: guest-password config-secret")
	out := term.String()
	if !strings.Contains(out, "before: guest-password ***") || !strings.Contains(out, "after: *** ***") {
		t.Errorf("terminal:\n%s", out)
	}
}
