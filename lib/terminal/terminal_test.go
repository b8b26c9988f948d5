package terminal

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// clock is a fake time that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// manual makes t report only when the test calls report, on a fake clock.
func manual(t *Terminal) *clock {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	t.now = c.now
	t.ticker = false
	return c
}

// pty opens a pseudo terminal in raw output mode (no "\n" -> "\r\n") and
// returns its two ends; what is written to the terminal end is read from
// the controller end by the returned function, which waits until n bytes
// have come (or 5 s).
func pty(t *testing.T, cols uint16) (*os.File, func(n int) string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ICANON
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	read := func(n int) string {
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			l := got.Len()
			mu.Unlock()
			if l >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // anything beyond n shows
		mu.Lock()
		defer mu.Unlock()
		s := got.String()
		got.Reset()
		return s
	}
	return tty, read
}

func expect(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

const (
	empty = "[..............................]"
	half  = "[###############...............]"
	full  = "[##############################]"
)

func TestIsTerminal(t *testing.T) {
	tty, _ := pty(t, 80)
	if !IsTerminal(tty) {
		t.Error("a pty is not a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var nilFile *os.File
	for _, x := range []io.Writer{w, &bytes.Buffer{}, nil, nilFile} {
		if IsTerminal(x) {
			t.Errorf("%T is a terminal", x)
		}
	}
	if New(tty).IsTTY() != true || New(w).IsTTY() || New(nil).IsTTY() {
		t.Error("New decides TTY wrong")
	}
	if New(tty).File() != tty || New(w).File() != nil {
		t.Error("File is the terminal's file on a TTY only")
	}
}

// On a TTY a bar is redrawn in place, a line goes above it, and Done
// leaves its final state as a line.
func TestBarOnPTY(t *testing.T) {
	tty, read := pty(t, 200)
	term := New(tty)
	c := manual(term)
	p := term.Progress("copy a", 100<<20)
	bar0 := "\r" + empty + " copy a:   0% 0/100 MiB 0 MiB/s\x1b[K"
	expect(t, "first draw", read(len(bar0)), bar0)

	p.Add(50 << 20)
	c.advance(time.Second)
	p.report()
	bar50 := "\r" + half + " copy a:  50% 50/100 MiB 50 MiB/s\x1b[K"
	expect(t, "redraw", read(len(bar50)), bar50)

	term.Line("a log line")
	want := "\ra log line\x1b[K\n" + bar50
	expect(t, "line above the bar", read(len(want)), want)

	p.Set(100 << 20)
	c.advance(time.Second)
	p.Done()
	p.Done()
	want = "\r" + full + " copy a: 100% 100/100 MiB 50 MiB/s\x1b[K\n"
	expect(t, "done", read(len(want)), want)

	term.Line("after")
	expect(t, "plain line without bars", read(6), "after\n")
}

// Two bars at once take two rows; a line written meanwhile goes above
// both, and the rows shrink when one ends.
func TestTwoBarsOnPTY(t *testing.T) {
	tty, read := pty(t, 200)
	term := New(tty)
	manual(term)
	a := term.Progress("a", 1<<20)
	b := term.Progress("b", 1<<20)
	barA := empty + " a:   0% 0/1 MiB 0 MiB/s"
	barB := empty + " b:   0% 0/1 MiB 0 MiB/s"
	want := "\r" + barA + "\x1b[K" + // a alone
		"\r" + barA + "\x1b[K\n\r" + barB + "\x1b[K" // a and b
	expect(t, "two bars", read(len(want)), want)

	term.Line("x\ny")
	want = "\x1b[1A\rx\x1b[K\n\ry\x1b[K\n\r" + barA + "\x1b[K\n\r" + barB + "\x1b[K"
	expect(t, "lines above two bars", read(len(want)), want)

	a.Done()
	want = "\x1b[1A\r" + barA + "\x1b[K\n\r" + barB + "\x1b[K"
	expect(t, "a done", read(len(want)), want)
	b.Done()
	want = "\r" + barB + "\x1b[K\n"
	expect(t, "b done", read(len(want)), want)
}

// A status line is cut to the terminal's width so it stays one row.
func TestBarFitsWidth(t *testing.T) {
	tty, read := pty(t, 20)
	term := New(tty)
	manual(term)
	p := term.Progress("x", 1<<20)
	want := "\r" + empty[:19] + "\x1b[K"
	expect(t, "cut bar", read(len(want)), want)
	p.Done()
	read(1)
}

// Off a TTY progress is plain lines: one per report and a final one.
func TestLinesOffTTY(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	term := New(w)
	if term.IsTTY() {
		t.Fatal("a pipe is a TTY")
	}
	c := manual(term)
	p := term.Progress("copy a", 100<<20)
	p.Add(30 << 20)
	c.advance(time.Second)
	p.report()
	term.Line("a log line")
	fmt.Fprint(p, strings.Repeat("x", 70<<20))
	c.advance(time.Second)
	p.Done()
	p.Done()
	w.Close()
	got, _ := io.ReadAll(r)
	expect(t, "pipe", string(got), "copy a:  30% 30/100 MiB 30 MiB/s\n"+
		"a log line\n"+
		"copy a: 100% 100/100 MiB 50 MiB/s\n")
}

// SetLog takes the progress lines off a TTY (the build log).
func TestLinesOffTTYGoToLog(t *testing.T) {
	var out bytes.Buffer
	term := NewTTY(&out, false)
	c := manual(term)
	var logged []string
	term.SetLog(func(l string) { logged = append(logged, l) })
	p := term.Progress("pull", 0)
	p.Set(3 << 20)
	c.advance(3 * time.Second)
	p.Done()
	if out.Len() != 0 || len(logged) != 1 || logged[0] != "pull: 3 MiB 1 MiB/s" {
		t.Errorf("terminal %q, log %q", out.String(), logged)
	}
}

// With the real ticker, off a TTY a line comes every interval and none
// after Done.
func TestTickerOffTTY(t *testing.T) {
	lines := make(chan string, 1000)
	term := NewTTY(nil, false)
	term.SetInterval(time.Millisecond)
	term.SetLog(func(l string) { lines <- l })
	p := term.Progress("copy", 4<<20)
	p.Add(1 << 20)
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "copy:  25% 1/4 MiB ") {
			t.Errorf("line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no line within 5 s at a 1 ms interval")
	}
	p.Done()
	for len(lines) > 1 {
		<-lines
	}
	if l := <-lines; !strings.HasPrefix(l, "copy:  25% 1/4 MiB ") {
		t.Errorf("final line %q", l)
	}
	time.Sleep(20 * time.Millisecond)
	if len(lines) != 0 {
		t.Errorf("line after Done: %q", <-lines)
	}
}

// Off a TTY a tool's "\r" redraws become at most one line per interval;
// its "\n" lines all show; Close shows the last redraw not shown yet.
func TestToolWriterOffTTY(t *testing.T) {
	var out bytes.Buffer
	term := NewTTY(&out, false)
	c := manual(term)
	w := term.ToolWriter("pull")
	if w.TerminalFile() != nil {
		t.Error("TerminalFile off a TTY")
	}
	io.WriteString(w, "Receiving 10%\rReceiving 20%\r")
	c.advance(10 * time.Second)
	io.WriteString(w, "Receiving 3")
	io.WriteString(w, "0%\rReceiving 40%\r")
	io.WriteString(w, "\r\n5 objects fetched\n")
	io.WriteString(w, "Writing 50%\r")
	w.Close()
	io.WriteString(w, "ignored\n")
	w.Close()
	expect(t, "tool lines", out.String(), "pull: Receiving 30%\n"+
		"pull: 5 objects fetched\n"+
		"pull: Writing 50%\n")
}

// On a TTY a tool's redraws are its status line, kept below log lines.
func TestToolWriterOnPTY(t *testing.T) {
	tty, read := pty(t, 200)
	term := New(tty)
	manual(term)
	w := term.ToolWriter("")
	if w.TerminalFile() != tty {
		t.Error("TerminalFile is not the TTY")
	}
	io.WriteString(w, "Receiving 10%\r")
	want := "\rReceiving 10%\x1b[K"
	expect(t, "status", read(len(want)), want)
	term.Line("log")
	want = "\rlog\x1b[K\n\rReceiving 10%\x1b[K"
	expect(t, "line above", read(len(want)), want)
	io.WriteString(w, "Receiving 20%\r\r\ndone\npartial")
	want = "\rReceiving 20%\x1b[K" + "\rdone\x1b[K\n\rReceiving 20%\x1b[K"
	expect(t, "redraw and line", read(len(want)), want)
	w.Close()
	want = "\r\x1b[J" + "partial\n"
	expect(t, "close", read(len(want)), want)
}

// Everything written to the terminal goes through the mask.
func TestMaskAppliesToEverything(t *testing.T) {
	var out bytes.Buffer
	term := NewTTY(&out, true)
	c := manual(term)
	term.SetMask(strings.NewReplacer("hunter2-secret", "***").Replace)
	p := term.Progress("get https://u:hunter2-secret@host", 1<<20)
	term.Printf("token %s", "hunter2-secret")
	w := term.ToolWriter("hunter2-secret")
	io.WriteString(w, "hunter2-secret 1%\r")
	w.Close()
	c.advance(time.Second)
	p.Done()
	off := NewTTY(&out, false)
	off.SetMask(strings.NewReplacer("hunter2-secret", "***").Replace)
	tw := off.ToolWriter("x")
	io.WriteString(tw, "hunter2-")
	io.WriteString(tw, "secret\n")
	if strings.Contains(out.String(), "hunter2") {
		t.Errorf("secret on the terminal: %q", out.String())
	}
	if !strings.Contains(out.String(), "get https://u:***@host") || !strings.Contains(out.String(), "x: ***\n") {
		t.Errorf("masked text missing: %q", out.String())
	}
}

// Concurrent bars, tool output and lines never cut a line.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var out syncBuffer
	term := NewTTY(&out, true)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := term.Progress(fmt.Sprintf("bar%d", g), 1000)
			tw := term.ToolWriter(fmt.Sprintf("tool%d", g))
			for i := 0; i < 200; i++ {
				p.Add(5)
				term.Printf("line-%d-%d", g, i)
				fmt.Fprintf(tw, "%d\r", i)
				if i%50 == 0 {
					p.report()
				}
			}
			tw.Close()
			p.Done()
		}()
	}
	wg.Wait()
	s := out.String()
	for g := 0; g < 4; g++ {
		for i := 0; i < 200; i++ {
			l := fmt.Sprintf("line-%d-%d", g, i)
			if strings.Count(s, "\r"+l+"\x1b[K\n")+strings.Count(s, "\n"+l+"\n")+strings.Count(s, "\x1b[J"+l+"\n") != 1 {
				t.Fatalf("line %s not written whole once in %q", l, s)
			}
		}
		if !strings.Contains(s, full+fmt.Sprintf(" bar%d: 100%% 0/0 MiB ", g)) {
			t.Errorf("bar%d: no final state", g)
		}
	}
	if term.drawn != 0 || len(term.status) != 0 {
		t.Errorf("%d status lines left drawn", term.drawn)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
