package terminal

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"time"
)

// ToolWriter is the io.WriteCloser for the output of a tool that prints
// its own progress, redrawing a line with "\r" (ostree pull, rsync
// --info=progress2). Its output is cut at every "\r" and "\n":
//
//   - a part ended by "\n" is a line (Line on a TTY, a progress line off
//     one);
//   - a part ended by "\r" is a redraw: on a TTY it replaces the tool's
//     status line at the bottom, off a TTY it becomes a line at most
//     once per interval, the last one not shown yet being written by
//     Close.
//
// Blank parts are dropped, and parts are prefixed "what: " unless what
// is "". Close writes an unterminated last part as a line and removes
// the status line.
type ToolWriter struct {
	t        *Terminal
	what     string
	mu       sync.Mutex
	buf      []byte
	current  string // the last redraw ("" = none)
	pending  bool   // off a TTY: current is not shown yet
	last     time.Time
	interval time.Duration
	closed   bool
}

// ToolWriter returns a writer for a tool's own progress output; it must
// be closed when the tool ends.
func (t *Terminal) ToolWriter(what string) *ToolWriter {
	t.mu.Lock()
	defer t.mu.Unlock()
	return &ToolWriter{t: t, what: what, last: t.now(), interval: t.interval}
}

// TerminalFile returns the terminal's file when it is a TTY, else nil
// (see Terminal.File): a tool that draws better progress on a real
// terminal can be handed it instead of the writer.
func (w *ToolWriter) TerminalFile() *os.File { return w.t.File() }

// Write takes the tool's output; it never fails.
func (w *ToolWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexAny(w.buf, "\r\n")
		if i < 0 {
			break
		}
		part, end := string(w.buf[:i]), w.buf[i]
		w.buf = w.buf[i+1:]
		if end == '\n' {
			w.line(part)
		} else {
			w.redraw(part)
		}
	}
	return len(p), nil
}

func (w *ToolWriter) label(part string) string {
	if w.what == "" {
		return part
	}
	return w.what + ": " + part
}

// line writes a finished line of the tool.
func (w *ToolWriter) line(part string) {
	part = strings.TrimSpace(part)
	if part == "" {
		return
	}
	t := w.t
	if t.tty {
		t.Line(w.label(part))
		return
	}
	// The line supersedes the redraw before it.
	w.pending = false
	w.last = t.clock()
	t.emit(w.label(part))
}

// redraw takes a part ended by "\r".
func (w *ToolWriter) redraw(part string) {
	part = strings.TrimSpace(part)
	if part == "" {
		return
	}
	t := w.t
	if t.tty {
		t.mu.Lock()
		if w.current == "" {
			t.addStatus(w)
		}
		w.current = part
		t.redraw()
		t.mu.Unlock()
		return
	}
	w.current, w.pending = part, true
	if now := t.clock(); now.Sub(w.last) >= w.interval {
		w.pending, w.last = false, now
		t.emit(w.label(part))
	}
}

// render is the tool's status line on a TTY (called with t.mu held).
func (w *ToolWriter) render(time.Time) string { return w.label(w.current) }

// Close writes what is left: an unterminated last part as a line, off a
// TTY the last redraw not shown yet; on a TTY it removes the status line.
func (w *ToolWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	t := w.t
	if t.tty && w.current != "" {
		t.mu.Lock()
		t.removeStatus(w)
		t.redraw()
		t.mu.Unlock()
	}
	rest := string(w.buf)
	w.buf = nil
	if strings.TrimSpace(rest) != "" {
		w.line(rest)
	} else if !t.tty && w.pending {
		w.pending = false
		t.emit(w.label(w.current))
	}
	w.closed = true
	return nil
}

// clock is t.now under t.mu.
func (t *Terminal) clock() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now()
}
