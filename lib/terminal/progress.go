package terminal

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// barWidth is the number of cells of a bar.
const barWidth = 30

// Progress reports how far a pass over a number of bytes is. On a TTY it
// is a bar redrawn about five times a second:
//
//	[#########.....................] what:  30% 300/1000 MiB 150 MiB/s
//
// off a TTY it is the same text without the bar, one line per interval.
// Done ends it with a final line (on a TTY the bar's final state stays
// on the screen as an ordinary line). Add, Set and Write are safe for
// concurrent use; Done must be called once the work ends (it stops the
// reporting goroutine) and may be called more than once.
type Progress struct {
	t        *Terminal
	what     string
	total    int64
	done     atomic.Int64
	start    time.Time
	interval time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

// Progress starts reporting progress of what over total bytes (total <= 0
// = unknown: no share, no bar).
func (t *Terminal) Progress(what string, total int64) *Progress {
	t.mu.Lock()
	p := &Progress{t: t, what: what, total: total, start: t.now(), interval: t.interval, stop: make(chan struct{})}
	if t.tty {
		t.addStatus(p)
		t.redraw()
	}
	tick := p.interval
	if t.tty {
		tick = redrawEvery
	}
	ticker := t.ticker
	t.mu.Unlock()
	if ticker {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			tk := time.NewTicker(tick)
			defer tk.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-tk.C:
					p.report()
				}
			}
		}()
	}
	return p
}

// Add counts n more bytes done.
func (p *Progress) Add(n int64) { p.done.Add(n) }

// Set sets the bytes done to n.
func (p *Progress) Set(n int64) { p.done.Store(n) }

// Write counts len(b) bytes done, so that a Progress can be the far end
// of an io.TeeReader or io.MultiWriter. It never fails.
func (p *Progress) Write(b []byte) (int, error) {
	p.done.Add(int64(len(b)))
	return len(b), nil
}

// report redraws the bar, or emits a line off a TTY.
func (p *Progress) report() {
	t := p.t
	t.mu.Lock()
	if t.tty {
		t.redraw()
		t.mu.Unlock()
		return
	}
	line := p.text(t.now())
	t.mu.Unlock()
	t.emit(line)
}

// Done stops the reports and writes the final state as a line.
func (p *Progress) Done() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		t := p.t
		t.mu.Lock()
		if t.tty {
			t.removeStatus(p)
			t.lineLocked(p.render(t.now()))
			t.mu.Unlock()
			return
		}
		line := p.text(t.now())
		t.mu.Unlock()
		t.emit(line)
	})
}

// text is the progress without the bar: "what:  30% 300/1000 MiB 150
// MiB/s", or "what: 300 MiB 150 MiB/s" when the total is unknown.
func (p *Progress) text(now time.Time) string {
	done := p.done.Load()
	rate := 0.0
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		rate = float64(done) / secs / (1 << 20)
	}
	if p.total <= 0 {
		return fmt.Sprintf("%s: %d MiB %.0f MiB/s", p.what, done>>20, rate)
	}
	pct := 100 * float64(done) / float64(p.total)
	return fmt.Sprintf("%s: %3.0f%% %d/%d MiB %.0f MiB/s", p.what, pct, done>>20, p.total>>20, rate)
}

// render is the bar and the text (a TTY status line).
func (p *Progress) render(now time.Time) string {
	if p.total <= 0 {
		return p.text(now)
	}
	filled := int(int64(barWidth) * p.done.Load() / p.total)
	filled = min(max(filled, 0), barWidth)
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "] " + p.text(now)
}
