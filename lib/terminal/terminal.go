// Package terminal is the one place a build writes to the terminal: log
// lines, progress bars and the progress output of tools such as ostree
// pull all go through one Terminal, so that they never interleave in the
// middle of a line.
//
// On a TTY the progress of running work is a set of status lines (one per
// Progress or ToolWriter) kept at the bottom and redrawn in place; a log
// line written meanwhile is put above them. On anything else (a pipe, a
// file, CI) there is no redrawing: progress becomes plain lines, at most
// one per interval (default 10 s) and a final one, given to the Log
// function when one is set (the build log, so that they are prefixed and
// kept in the log file), else written to the terminal writer.
//
// Every byte written to the terminal writer first goes through the mask
// function (SetMask), so secrets are hidden in bars and tool output too.
package terminal

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// DefaultInterval is the time between progress lines off a TTY.
const DefaultInterval = 10 * time.Second

// redrawEvery is the time between redraws of a bar on a TTY.
const redrawEvery = 200 * time.Millisecond

// Terminal is the build's terminal. It is safe for concurrent use.
type Terminal struct {
	mu       sync.Mutex
	w        io.Writer // nil = discard
	file     *os.File  // w when it is an *os.File
	tty      bool
	cols     int // terminal width in columns, 0 = unknown
	mask     func(string) string
	log      func(line string)
	interval time.Duration
	status   []statusLine // drawn at the bottom, in order (TTY only)
	drawn    int          // status rows on the screen now
	now      func() time.Time
	ticker   bool // progress reports on a ticker (false in tests that drive report)
}

// statusLine is one redrawn line at the bottom of a TTY.
type statusLine interface {
	render(now time.Time) string // called with Terminal.mu held
}

// IsTerminal reports whether w is a terminal: it has an Fd method (an
// *os.File does) and the TCGETS ioctl succeeds on that descriptor.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok || w == nil {
		return false
	}
	if file, ok := w.(*os.File); ok && file == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// New returns the terminal writing to w (nil = nothing is shown); it is
// a TTY when IsTerminal(w).
func New(w io.Writer) *Terminal {
	return NewTTY(w, IsTerminal(w))
}

// NewTTY is New with the TTY decision made by the caller (tty true
// draws bars with ANSI escapes on w whatever w is).
func NewTTY(w io.Writer, tty bool) *Terminal {
	t := &Terminal{w: w, tty: tty, interval: DefaultInterval, now: time.Now, ticker: true}
	if f, ok := w.(*os.File); ok && f != nil {
		t.file = f
		if tty {
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
				t.cols = int(ws.Col)
			}
		}
	}
	if w == nil {
		t.tty = false
	}
	return t
}

// IsTTY reports whether progress is drawn as redrawn bars.
func (t *Terminal) IsTTY() bool { return t.tty }

// File returns the terminal's file when it is a TTY *os.File, else nil:
// for a tool that must be handed the terminal itself to draw its own
// progress (ostree pull). While such a tool runs, nothing else should
// write to the terminal.
func (t *Terminal) File() *os.File {
	if t.tty {
		return t.file
	}
	return nil
}

// SetMask sets the function every text passes through before it is
// written (the build log's secret masking); nil = none.
func (t *Terminal) SetMask(mask func(string) string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mask = mask
}

// SetLog sets where progress lines go off a TTY (one line, no newline);
// nil = written to the terminal writer like Line.
func (t *Terminal) SetLog(log func(line string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.log = log
}

// SetInterval sets the time between progress lines off a TTY for the
// progress started afterwards; d <= 0 restores DefaultInterval.
func (t *Terminal) SetInterval(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d <= 0 {
		d = DefaultInterval
	}
	t.interval = d
}

// Line writes s as whole lines (a trailing newline is added; an empty s
// is an empty line). On a TTY with status lines drawn, they are redrawn
// below it.
func (t *Terminal) Line(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lineLocked(s)
}

// Printf is Line(fmt.Sprintf(format, args...)).
func (t *Terminal) Printf(format string, args ...any) {
	t.Line(fmt.Sprintf(format, args...))
}

func (t *Terminal) lineLocked(s string) {
	if t.w == nil {
		return
	}
	s = strings.TrimSuffix(s, "\n")
	if t.mask != nil {
		s = t.mask(s)
	}
	if !t.tty || t.drawn == 0 {
		_, _ = io.WriteString(t.w, s+"\n")
		return
	}
	var b strings.Builder
	t.up(&b)
	for _, l := range strings.Split(s, "\n") {
		b.WriteString("\r" + l + "\x1b[K\n")
	}
	t.drawStatus(&b, strings.Count(s, "\n")+1)
	_, _ = io.WriteString(t.w, b.String())
}

// up moves the cursor to the start of the first status row.
func (t *Terminal) up(b *strings.Builder) {
	if t.drawn > 1 {
		fmt.Fprintf(b, "\x1b[%dA", t.drawn-1)
	}
}

// drawStatus draws the status lines from the cursor (at the start of a
// row, below `above` rows just written over the old status rows) and
// clears what is left of the old ones.
func (t *Terminal) drawStatus(b *strings.Builder, above int) {
	now := t.now()
	for i, s := range t.status {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("\r" + t.fit(s.render(now)) + "\x1b[K")
	}
	if above+len(t.status) < t.drawn {
		// Old status rows are left below: clear them (from the start of
		// the row when no status line was drawn on it).
		if len(t.status) == 0 {
			b.WriteString("\r")
		}
		b.WriteString("\x1b[J")
	}
	t.drawn = len(t.status)
}

// redraw redraws the status lines in place.
func (t *Terminal) redraw() {
	if t.w == nil || !t.tty {
		return
	}
	var b strings.Builder
	t.up(&b)
	t.drawStatus(&b, 0)
	_, _ = io.WriteString(t.w, b.String())
}

// fit masks a status line and cuts it to the terminal's width, so that
// it takes one row and the cursor arithmetic holds.
func (t *Terminal) fit(s string) string {
	if t.mask != nil {
		s = t.mask(s)
	}
	if t.cols > 1 && utf8.RuneCountInString(s) > t.cols-1 {
		r := []rune(s)
		s = string(r[:t.cols-1])
	}
	return s
}

func (t *Terminal) addStatus(s statusLine) {
	t.status = append(t.status, s)
}

func (t *Terminal) removeStatus(s statusLine) {
	for i, x := range t.status {
		if x == s {
			t.status = append(t.status[:i], t.status[i+1:]...)
			return
		}
	}
}

// emit sends one progress line off a TTY to the log function, or the
// terminal. Called without t.mu held (the log function may write to
// the terminal).
func (t *Terminal) emit(line string) {
	t.mu.Lock()
	log := t.log
	t.mu.Unlock()
	if log != nil {
		log(line)
		return
	}
	t.Line(line)
}
