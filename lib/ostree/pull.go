package ostree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/terminal"
)

// Pull describes one pull from a remote.
type Pull struct {
	Remote string
	Refs   []string
	// Mirror writes the refs as local branches (as EIB does for its cache).
	Mirror bool
	// Attempts is how often the pull is tried when it fails for a reason
	// that may pass (network, HTTP 5xx; see retryable); 0 or 1 = once.
	Attempts int
	// RetryDelay is the wait before the second attempt; it doubles at
	// every further attempt (default 1 s).
	RetryDelay time.Duration
	// Progress receives progress: ostree's own bar when it is a
	// terminal, a line every ProgressEvery otherwise (nil = none). A
	// writer with a TerminalFile() *os.File method that returns a file
	// (a *terminal.ToolWriter of a TTY terminal) counts as that
	// terminal.
	Progress      io.Writer
	ProgressEvery time.Duration // default 10 s
}

// Pull fetches refs from a remote, retrying on failures that may be
// transient (network, HTTP 5xx: see retryable). A failure that retrying
// cannot fix (checksum mismatch, HTTP 404, signature, missing ref) is
// returned at once, after one attempt.
func (r *Repo) Pull(ctx context.Context, p Pull) error {
	args := []string{"pull", "--repo=" + r.Path}
	if p.Mirror {
		args = append(args, "--mirror")
	}
	args = append(args, p.Remote)
	args = append(args, p.Refs...)
	attempts := max(p.Attempts, 1)
	delay := p.RetryDelay
	if delay <= 0 {
		delay = time.Second
	}
	var err error
	for i := 1; i <= attempts; i++ {
		err = r.pullOnce(ctx, p, args)
		if err == nil || !retryable(err) || i == attempts || ctx.Err() != nil {
			break
		}
		if p.Progress != nil {
			fmt.Fprintf(p.Progress, "pull %s %s failed (attempt %d of %d), retrying in %s: %v\n",
				p.Remote, strings.Join(p.Refs, " "), i, attempts, delay, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(delay):
		}
		delay *= 2
	}
	return err
}

func (r *Repo) pullOnce(ctx context.Context, p Pull, args []string) error {
	if p.Progress == nil {
		_, err := run(ctx, nil, args...)
		return err
	}
	if f := terminalFile(p.Progress); f != nil {
		// ostree draws its own progress bar on a terminal.
		_, err := run(ctx, f, args...)
		return err
	}
	every := p.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(p.Progress, "pulling %s %s: %s, %d MiB received\n",
					p.Remote, strings.Join(p.Refs, " "),
					time.Since(start).Round(time.Second), r.stagedBytes()>>20)
			}
		}
	}()
	out, err := run(ctx, nil, args...)
	close(done)
	<-finished
	if err == nil {
		if s := strings.TrimSpace(lastLine(out)); s != "" {
			fmt.Fprintln(p.Progress, s)
		}
	}
	return err
}

// stagedBytes is the size of what the running pull has written so far
// (ostree stages new objects under tmp/ until the pull commits them).
func (r *Repo) stagedBytes() int64 {
	var n int64
	_ = filepath.WalkDir(filepath.Join(r.Path, "tmp"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// retryable reports whether a pull failure may pass on its own: the
// network (no connection, a reset, a timeout) or the server (HTTP 5xx,
// 408, 429). ostree itself already retries such a failure per object
// (n-network-retries, 5 by default); this retries the whole pull. What
// a second try cannot change is returned at once: a checksum mismatch
// (the server serves a corrupt object), a missing object, commit or
// branch (HTTP 404), a signature, a key or the summary failing GPG
// verification, and anything not known to be transient.
func retryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	msg := strings.ToLower(e.Stderr)
	for _, permanent := range []string{"corrupted", "checksum", "gpg", "signature", "no such branch",
		"not found", "no such remote", "invalid", "refspec", "not signed", "no signatures",
		"exceeded maximum size"} {
		if strings.Contains(msg, permanent) {
			return false
		}
	}
	if m := httpStatus.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[1])
		return code >= 500 || code == 408 || code == 429
	}
	for _, transient := range []string{"couldn't connect", "could not connect", "connection refused",
		"connection reset", "connection timed out", "timeout was reached", "timed out", "operation too slow",
		"failure when receiving data", "failure when sending data", "recv failure", "send failure",
		"empty reply from server", "transfer closed", "couldn't resolve", "could not resolve",
		"temporary failure in name resolution", "network is unreachable", "no route to host",
		"ssl connect error", "http/2 stream", "stream error", "unexpected eof"} {
		if strings.Contains(msg, transient) {
			return true
		}
	}
	return false
}

// httpStatus is the status of a failed HTTP request as ostree's libcurl
// ("Server returned HTTP 503") and libsoup ("Server returned status 503")
// back ends report it.
var httpStatus = regexp.MustCompile(`server returned (?:http|status) (\d{3})`)

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// terminalFile returns the terminal w is or stands for, nil when it is
// none.
func terminalFile(w io.Writer) *os.File {
	switch w := w.(type) {
	case *os.File:
		if IsTerminal(w) {
			return w
		}
	case interface{ TerminalFile() *os.File }:
		return w.TerminalFile()
	}
	return nil
}

// IsTerminal reports whether f is a terminal (TCGETS succeeds); it is
// terminal.IsTerminal, kept for the callers of this package.
func IsTerminal(f *os.File) bool {
	return terminal.IsTerminal(f)
}
