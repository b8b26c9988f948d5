// Package ostree is a small typed layer over the ostree command line tool:
// repositories (init, remotes, pull, refs, summary, prune, show, commit)
// and sysroots (init-fs, os-init, deploy, and finding a deployment from the
// sysroot's own files).
//
// Every failure is an *Error that names the command and carries ostree's
// own message, so a person can read what went wrong without a stack trace.
package ostree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/eib-builder/eib/lib/proc"
)

// Command is the ostree executable (a variable so tests can point it
// elsewhere).
var Command = "ostree"

// Error is a failed ostree command.
type Error struct {
	Args   []string // arguments after "ostree"
	Stderr string   // ostree's own message, trimmed
	Err    error    // the *proc.Error (exit status, not found, canceled)
}

func (e *Error) Error() string {
	cmd := Command + " " + strings.Join(e.Args, " ")
	if e.Stderr != "" {
		return fmt.Sprintf("%s: %s", cmd, e.Stderr)
	}
	var pe *proc.Error
	if errors.As(e.Err, &pe) {
		return fmt.Sprintf("%s: %s", cmd, pe.Status())
	}
	return fmt.Sprintf("%s: %v", cmd, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// run runs ostree with args and returns its standard output. stdout, when
// not nil, also receives the output as it comes (for progress); a file
// (a terminal) is handed to ostree itself, so that it draws its progress
// bar, and the output is then not returned.
func run(ctx context.Context, stdout io.Writer, args ...string) (string, error) {
	c := proc.Command{Name: Command, Args: args}
	var out bytes.Buffer
	switch f := stdout.(type) {
	case nil:
	case *os.File:
		c.Stdout = f
	default:
		c.Stdout = io.MultiWriter(&out, stdout)
	}
	captured, stderr, err := c.Run(ctx)
	if stdout == nil {
		out.WriteString(captured)
	}
	if err != nil {
		return out.String(), &Error{Args: args, Stderr: cleanStderr(stderr), Err: err}
	}
	return out.String(), nil
}

// cleanStderr trims ostree's message and its "error: " prefix and puts
// it on one line.
func cleanStderr(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "error: ")); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
