package output

import (
	"io"
	"time"

	"github.com/eib-builder/eib/lib/terminal"
)

// progress is the compression pass's terminal.Progress (pump counts the
// bytes read into it).
type progress struct{ p *terminal.Progress }

// startProgress reports a pass over total bytes on a terminal made for it:
// a bar on term (the caller has found it to be a terminal), else a logf
// line every interval and a final one.
func startProgress(what string, total int64, term io.Writer, logf func(string, ...any), interval time.Duration) *progress {
	var t *terminal.Terminal
	if term != nil {
		t = terminal.NewTTY(term, true)
	} else {
		t = terminal.NewTTY(nil, false)
		if logf != nil {
			t.SetLog(func(line string) { logf("%s", line) })
		}
		t.SetInterval(interval)
	}
	return &progress{t.Progress(what, total)}
}

// progress starts the progress of Write: on im.Progress when set (the
// build's terminal, which decides bar or lines), else as the Terminal,
// Logf and LogInterval fields say.
func (im Image) progress(what string, total int64, logf func(string, ...any)) *progress {
	if im.Progress != nil {
		return &progress{im.Progress.Progress(what, total)}
	}
	return startProgress(what, total, im.Terminal, logf, im.interval())
}

func (p *progress) add(n int) { p.p.Add(int64(n)) }

// end stops the reports and writes the final state (the bar's last
// redraw and a newline on a terminal, a last line otherwise).
func (p *progress) end() { p.p.Done() }
