package terminal_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
	"github.com/eib-builder/eib/lib/terminal"
)

// pullWith pulls a small test repo with progress going to w.
func pullWith(t *testing.T, w io.Writer) {
	t.Helper()
	ostreetest.Need(t, "ostree")
	ctx := context.Background()
	const ref = "eibtest/amd64/master"
	dir, commit := ostreetest.ArchiveRepo(t, ref, nil)
	cache, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "cache"), ostree.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.AddRemote(ctx, ostree.Remote{Name: "eib", URL: ostreetest.Serve(t, dir), Branches: []string{ref}}); err != nil {
		t.Fatal(err)
	}
	if err := cache.Pull(ctx, ostree.Pull{Remote: "eib", Refs: []string{ref}, Mirror: true, Progress: w}); err != nil {
		t.Fatal(err)
	}
	if got, _ := cache.RevParse(ctx, ref); got != commit {
		t.Fatalf("pulled %q, want %s", got, commit)
	}
}

// Off a TTY, ostree pull's progress through a ToolWriter becomes log
// lines of the terminal.
func TestOSTreePullThroughToolWriterOffTTY(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	term := terminal.New(nil)
	term.SetLog(func(l string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, l)
	})
	w := term.ToolWriter("pull")
	pullWith(t, w)
	w.Close()
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "pull: ") || !strings.Contains(lines[len(lines)-1], "transferred in") {
		t.Errorf("lines %q: want the transfer summary last", lines)
	}
}

// ttyWriter stands for a ToolWriter of a TTY terminal, the terminal
// being a pipe here so that what ostree writes to it can be read.
type ttyWriter struct {
	io.Writer
	f *os.File
}

func (w ttyWriter) TerminalFile() *os.File { return w.f }

// A writer with a terminal file has ostree write to that file itself
// (so that it draws its own bar), not through the writer.
func TestOSTreePullGetsTerminalFile(t *testing.T) {
	r, f, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var through strings.Builder
	pullWith(t, ttyWriter{Writer: &through, f: f})
	f.Close()
	direct, _ := io.ReadAll(r)
	if through.Len() != 0 || !strings.Contains(string(direct), "transferred in") {
		t.Errorf("through the writer %q, to the file %q: want ostree's output on the file only", through.String(), direct)
	}
}
