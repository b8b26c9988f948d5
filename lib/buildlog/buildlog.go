// Package buildlog is the log of one build: every line eib and the hooks
// print goes to the log file (${tmpdir}/build.txt) and, concisely, to the
// terminal; each line carries the time and the stage/hook it came from,
// and every secret (a value from a private config file) is replaced by
// "***" before it is written anywhere.
//
// Printf lines (stage and hook progress, errors) go to both; Debugf lines
// and hook output go to the file, and to the terminal only with --debug.
//
// The terminal side is a *terminal.Terminal (Terminal): stages start
// progress bars and tool progress writers on it, so that they and the
// log lines never interleave mid-line; off a TTY their progress lines
// become log lines (file and terminal, with the time/stage prefix). The
// secrets are masked in everything the terminal shows.
package buildlog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/terminal"
)

// Mask is what a secret is replaced with.
const Mask = "***"

// Log is the build log. It is safe for concurrent use.
type Log struct {
	mu      sync.Mutex
	term    *terminal.Terminal
	file    *os.File
	pending [][]byte // lines written before the file was opened
	debug   bool
	stage   string
	// masker masks the secrets (atomic: the terminal calls it while the
	// log holds mu; AddSecrets replaces it).
	masker    atomic.Pointer[strings.Replacer]
	secretsMu sync.Mutex
	secrets   []string
	now       func() time.Time
}

// New returns a log writing to term (the terminal; nil = none) until
// OpenFile adds the log file. secrets are masked in every line. term is
// wrapped in a terminal.Terminal, a TTY when terminal.IsTerminal(term).
func New(term io.Writer, debug bool, secrets []string) *Log {
	return NewTerminal(terminal.New(term), debug, secrets)
}

// NewTerminal is New with the terminal given. The log sets t's mask (the
// secrets) and its log function: progress lines off a TTY become lines
// of this log.
func NewTerminal(t *terminal.Terminal, debug bool, secrets []string) *Log {
	l := &Log{term: t, debug: debug, secrets: append([]string(nil), secrets...), now: time.Now}
	l.masker.Store(newMasker(l.secrets))
	t.SetMask(l.MaskString)
	t.SetLog(func(line string) { l.write("", line, true) })
	return l
}

// Terminal returns the build's terminal, for progress: Progress for a
// pass over bytes, ToolWriter for a tool's own "\r" progress output.
func (l *Log) Terminal() *terminal.Terminal { return l.term }

// maskable reports whether a secret value can be masked without wrecking
// the log: the rule of config.MinPrivateLen, the one definition of a
// private value that the manifest and image checks use too (a short value
// such as "yes" or "1" would mask unrelated text everywhere and hide
// nothing worth hiding).
func maskable(s string) bool {
	return len(s) >= config.MinPrivateLen
}

func newMasker(secrets []string) *strings.Replacer {
	var vals []string
	seen := map[string]bool{}
	for _, s := range secrets {
		// The log is line based: mask each line of a multi-line value,
		// and the value with surrounding space trimmed.
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if maskable(line) && !seen[line] {
				seen[line] = true
				vals = append(vals, line)
			}
		}
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(vals, func(i, j int) bool {
		if len(vals[i]) != len(vals[j]) {
			return len(vals[i]) > len(vals[j])
		}
		return vals[i] < vals[j]
	})
	var pairs []string
	for _, v := range vals {
		pairs = append(pairs, v, Mask)
	}
	return strings.NewReplacer(pairs...)
}

// MaskString returns s with every secret replaced by Mask.
func (l *Log) MaskString(s string) string { return l.masker.Load().Replace(s) }

// AddSecrets masks more values from now on (a secret a stage reads from
// a file the configuration names, such as [check] guest_password_file),
// with the rules of the configuration's private values.
func (l *Log) AddSecrets(values ...string) {
	l.secretsMu.Lock()
	defer l.secretsMu.Unlock()
	l.secrets = append(l.secrets, values...)
	l.masker.Store(newMasker(l.secrets))
}

// OpenFile starts writing the log to path (created, mode 0644), beginning
// with the lines logged so far.
func (l *Log) OpenFile(path string) error {
	return l.openFile(path, os.O_TRUNC)
}

// AppendFile is OpenFile keeping what path holds already (the log of the
// first half of a build continued with eib --from).
func (l *Log) AppendFile(path string) error {
	return l.openFile(path, 0)
}

func (l *Log) openFile(path string, trunc int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|trunc|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Close()
	}
	l.file = f
	for _, line := range l.pending {
		if _, err := f.Write(line); err != nil {
			return fmt.Errorf("build log %s: %w", path, err)
		}
	}
	l.pending = nil
	return nil
}

// Path returns the log file's path, "" before OpenFile.
func (l *Log) Path() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return ""
	}
	return l.file.Name()
}

// Close closes the log file (the terminal side stays usable).
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// SetStage sets the stage named in the prefix of the lines that follow.
func (l *Log) SetStage(stage string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stage = stage
}

// Stage returns the current stage name.
func (l *Log) Stage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stage
}

// Printf logs a line to the file and the terminal.
func (l *Log) Printf(format string, args ...any) {
	l.write("", fmt.Sprintf(format, args...), true)
}

// Debugf logs a line to the file, and the terminal with --debug.
func (l *Log) Debugf(format string, args ...any) {
	l.write("", fmt.Sprintf(format, args...), l.debug)
}

// Filef logs a line to the file only.
func (l *Log) Filef(format string, args ...any) {
	l.write("", fmt.Sprintf(format, args...), false)
}

// TermHookf shows a line of one hook on the terminal only (the tail of a
// failed hook's output, already in the file).
func (l *Log) TermHookf(hook, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prefix := l.now().Format("15:04:05") + " " + label(l.stage, hook) + ": "
	l.term.Line(prefix + l.MaskString(fmt.Sprintf(format, args...)))
}

// HookPrintf logs a progress line of one hook to the file and the terminal.
func (l *Log) HookPrintf(hook, format string, args ...any) {
	l.write(hook, fmt.Sprintf(format, args...), true)
}

func (l *Log) write(hook, msg string, toTerm bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prefix := l.now().Format("15:04:05") + " " + label(l.stage, hook) + ": "
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		text := prefix + l.MaskString(line)
		out := []byte(text + "\n")
		if l.file != nil {
			_, _ = l.file.Write(out)
		} else {
			l.pending = append(l.pending, out)
		}
		if toTerm {
			l.term.Line(text)
		}
	}
}

func label(stage, hook string) string {
	if stage == "" {
		stage = "eib"
	}
	if hook == "" {
		return stage
	}
	return stage + "/" + hook
}

// Output returns a writer for the output of one hook: each complete line
// is logged with the stage/hook prefix (file always, terminal with
// --debug). Close flushes a last unterminated line. The writer also keeps
// the last lines for Tail, to show on the terminal when the hook fails.
func (l *Log) Output(hook string) *HookWriter {
	return &HookWriter{log: l, hook: hook}
}

// tailLines is how many lines of a failed hook's output Tail keeps.
const tailLines = 20

// HookWriter is the io.WriteCloser returned by Output.
type HookWriter struct {
	mu   sync.Mutex
	log  *Log
	hook string
	buf  []byte
	tail []string
}

// Write logs every complete line of p.
func (w *HookWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *HookWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	w.log.write(w.hook, s, w.log.debug)
	w.tail = append(w.tail, w.log.MaskString(s))
	if len(w.tail) > tailLines {
		w.tail = w.tail[len(w.tail)-tailLines:]
	}
}

// Close logs a last unterminated line.
func (w *HookWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
	return nil
}

// Tail returns the last lines written (masked).
func (w *HookWriter) Tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}
