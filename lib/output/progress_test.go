package output_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/terminal"
)

// With Progress set, the build's terminal takes the progress: its log
// lines off a TTY (ending with the final state), and Terminal is unused.
func TestProgressThroughBuildTerminalOffTTY(t *testing.T) {
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 3<<20)
	var mu sync.Mutex
	var lines []string
	term := terminal.NewTTY(&bytes.Buffer{}, false)
	term.SetLog(func(l string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, l)
	})
	var unused bytes.Buffer
	_, err := output.Image{Raw: raw, OutDir: dir, Name: "x.img", Compression: output.Zstd,
		Progress: term, Terminal: &unused, LogInterval: time.Millisecond}.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if unused.Len() != 0 {
		t.Errorf("Terminal got %q though Progress is set", unused.String())
	}
	final := regexp.MustCompile(`^compressing disk\.raw to x\.img\.zst: 100% 3/3 MiB \d+ MiB/s$`)
	if len(lines) != 1 || !final.MatchString(lines[0]) {
		t.Errorf("progress lines %q, want only the final one (10 s interval)", lines)
	}
}

// On a TTY the bar ends in its full state, left as a line.
func TestProgressThroughBuildTerminalOnTTY(t *testing.T) {
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 3<<20)
	var out bytes.Buffer
	_, err := output.Image{Raw: raw, OutDir: dir, Name: "x.img", Compression: output.Zstd,
		Progress: terminal.NewTTY(&out, true)}.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`\r\[#{30}\] compressing disk\.raw to x\.img\.zst: 100% 3/3 MiB \d+ MiB/s\x1b\[K\n$`)
	if !strings.HasPrefix(out.String(), "\r[......") || !want.MatchString(out.String()) {
		t.Errorf("terminal %q, want a bar ending full", out.String())
	}
}

// Without a terminal, Logf gets the final progress line before the summary.
func TestFinalProgressLineOffTerminal(t *testing.T) {
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 3<<20)
	var lines []string
	var mu sync.Mutex
	logf := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, a...))
	}
	_, err := output.Image{Raw: raw, OutDir: dir, Name: "x.img", Compression: output.Zstd, Logf: logf}.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || !regexp.MustCompile(`^compressing disk\.raw to x\.img\.zst: 100% 3/3 MiB \d+ MiB/s$`).MatchString(lines[1]) ||
		!strings.HasPrefix(lines[2], "wrote x.img.zst") {
		t.Errorf("log lines %q: want command, final progress, summary", lines)
	}
}
