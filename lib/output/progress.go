package output

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports how far a pass over total bytes is: a bar redrawn on a
// terminal, or a log line every interval otherwise.
type progress struct {
	what     string
	total    int64
	done     atomic.Int64
	term     io.Writer
	logf     func(format string, args ...any)
	interval time.Duration
	start    time.Time
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startProgress(what string, total int64, term io.Writer, logf func(string, ...any), interval time.Duration) *progress {
	p := &progress{what: what, total: total, term: term, logf: logf, interval: interval,
		start: time.Now(), stop: make(chan struct{})}
	tick := interval
	if term != nil {
		tick = 250 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.report()
			}
		}
	}()
	return p
}

func (p *progress) add(n int) { p.done.Add(int64(n)) }

func (p *progress) line() string {
	done := p.done.Load()
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	secs := time.Since(p.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(done) / secs / (1 << 20)
	}
	return fmt.Sprintf("%s: %3.0f%% %d/%d MiB %.0f MiB/s", p.what, pct, done>>20, p.total>>20, rate)
}

func (p *progress) report() {
	if p.term == nil {
		if p.logf != nil {
			p.logf("%s", p.line())
		}
		return
	}
	const width = 30
	filled := width
	if p.total > 0 {
		filled = int(int64(width) * p.done.Load() / p.total)
	}
	filled = min(max(filled, 0), width)
	fmt.Fprintf(p.term, "\r[%s%s] %s ", strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.line())
}

// end stops the reports; the terminal bar gets its final state and a
// newline.
func (p *progress) end() {
	close(p.stop)
	p.wg.Wait()
	if p.term != nil {
		p.report()
		fmt.Fprintln(p.term)
	}
}
