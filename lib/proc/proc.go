// Package proc runs eib's child processes: tools that run to completion
// (mkfs, debugfs, sfdisk, ostree...) through Command.Run, and long-running
// ones the caller follows itself (hooks, QEMU) through Start.
//
// Every process starts in its own process group, with Pdeathsig so that it
// dies with eib. Stopping one sends SIGTERM to its whole group, waits a
// grace period, then sends SIGKILL, and always reaps it. A tool that fails
// is an *Error naming the command line, how it ended and the last lines of
// its error output.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// DefaultGrace is how long a process group gets between SIGTERM and
// SIGKILL when a Command's context is cancelled.
const DefaultGrace = 5 * time.Second

// TailLines is how many of its last stderr lines an Error keeps.
const TailLines = 20

// Error is a command that failed: it did not start, exited with a status
// other than 0, or was killed by a signal.
type Error struct {
	Command    []string       // the program and its arguments
	ExitStatus int            // -1 when killed by a signal or not started
	Signal     syscall.Signal // the signal that killed it, or 0
	StderrTail string         // its last stderr lines (stdout's when stderr is empty), trimmed
	Err        error          // the underlying error (and the context's, when cancelled)
}

func (e *Error) Error() string {
	s := strings.Join(e.Command, " ") + ": " + e.Status()
	if e.StderrTail != "" {
		s += ": " + e.StderrTail
	}
	return s
}

// Status says how the command ended: "exit status N", "signal: NAME", or
// why it did not start; with "context canceled: " first when the
// context stopped it.
func (e *Error) Status() string {
	var s string
	var ee *exec.ExitError
	switch {
	case e.Signal != 0:
		s = "signal: " + e.Signal.String()
	case e.ExitStatus >= 0:
		s = fmt.Sprintf("exit status %d", e.ExitStatus)
	case errors.As(e.Err, &ee):
		s = ee.Error()
	default:
		s = "failed"
		// The exec error (not found, permission), without the context's.
		for _, err := range unjoin(e.Err) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				s = err.Error()
			}
		}
	}
	for _, err := range unjoin(e.Err) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err.Error() + ": " + s
		}
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// newError describes how cmd ended (waitErr is its Wait's error).
func newError(argv []string, waitErr, ctxErr error, stderr, stdout string) *Error {
	e := &Error{Command: argv, ExitStatus: -1, Err: waitErr}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = ws.Signal()
		} else {
			e.ExitStatus = ee.ExitCode()
		}
	}
	if ctxErr != nil {
		e.Err = errors.Join(ctxErr, waitErr)
	}
	e.StderrTail = Tail(stderr, TailLines)
	if e.StderrTail == "" {
		e.StderrTail = Tail(stdout, TailLines)
	}
	return e
}

// Tail is the last n lines of s, trimmed.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// Process is a started child in its own process group.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Option changes how Start starts a process.
type Option func(*syscall.SysProcAttr)

// InCgroup starts the process in the cgroup v2 group whose directory is
// open as fd (clone3 with CLONE_INTO_CGROUP, Linux 5.7): the process and
// everything it starts stay in that group, whatever they do with their
// process group or session (setsid), until the group is killed. The
// caller keeps fd open until Start returns.
func InCgroup(fd int) Option {
	return func(a *syscall.SysProcAttr) {
		a.UseCgroupFD = true
		a.CgroupFD = fd
	}
}

// Start starts cmd in its own process group (a terminal's ^C reaches eib,
// which stops the child itself) with Pdeathsig SIGKILL (it dies if eib
// dies without cleaning up), changed by opts. A goroutine reaps it: Done
// is closed then.
func Start(cmd *exec.Cmd, opts ...Option) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	for _, o := range opts {
		o(cmd.SysProcAttr)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id, also its group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its Wait error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Stop ends the process group: SIGTERM, then SIGKILL once grace has
// passed (at once when grace <= 0), and waits until the process is
// reaped. Whatever is left in the group afterwards is killed too. It
// returns the process's Wait error.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
	default:
		if grace > 0 {
			p.Signal(syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case <-p.done:
			case <-t.C:
			}
			t.Stop()
		}
	}
	p.KillGroup()
	return p.Wait()
}

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.Pid(), sig)
}

// KillGroup sends SIGKILL to what is left of the process group.
func (p *Process) KillGroup() {
	if syscall.Kill(-p.Pid(), 0) == nil {
		p.Signal(syscall.SIGKILL)
	}
}

// Command is a tool run to completion.
type Command struct {
	Name  string
	Args  []string
	Env   []string  // nil: eib's environment
	Dir   string    // "": eib's working directory
	Stdin io.Reader // nil: /dev/null
	// Stdout, when not nil, receives the standard output, which Run then
	// does not return (an *os.File is handed to the tool itself).
	Stdout io.Writer
	// Grace is the time between SIGTERM and SIGKILL when the context is
	// cancelled (0 = DefaultGrace).
	Grace time.Duration
}

// Run runs c and returns its standard output and error output. A failure
// is an *Error; when ctx is cancelled, the group is stopped (see
// Process.Stop) and the Error wraps ctx.Err().
func (c Command) Run(ctx context.Context) (stdout, stderr string, err error) {
	argv := append([]string{c.Name}, c.Args...)
	if err := ctx.Err(); err != nil {
		return "", "", &Error{Command: argv, ExitStatus: -1, Err: err}
	}
	cmd := exec.Command(c.Name, c.Args...)
	cmd.Env, cmd.Dir, cmd.Stdin = c.Env, c.Dir, c.Stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	}
	p, err := Start(cmd)
	if err != nil {
		return "", "", &Error{Command: argv, ExitStatus: -1, Err: err}
	}
	var werr, ctxErr error
	select {
	case <-p.Done():
		werr = p.Wait()
	case <-ctx.Done():
		grace := c.Grace
		if grace <= 0 {
			grace = DefaultGrace
		}
		werr = p.Stop(grace)
		ctxErr = ctx.Err()
	}
	if werr == nil && ctxErr == nil {
		return out.String(), errb.String(), nil
	}
	return out.String(), errb.String(), newError(argv, werr, ctxErr, errb.String(), out.String())
}

// Output runs name with args and returns its standard output.
func Output(ctx context.Context, name string, args ...string) (string, error) {
	out, _, err := Command{Name: name, Args: args}.Run(ctx)
	return out, err
}

// Run runs name with args.
func Run(ctx context.Context, name string, args ...string) error {
	_, _, err := Command{Name: name, Args: args}.Run(ctx)
	return err
}
