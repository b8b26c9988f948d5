package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eib-builder/eib/lib/proc"
)

// SessionOptions describe a guest session: an image booted in QEMU on a
// persistent overlay, driven through its serial console.
type SessionOptions struct {
	Image     string   // the raw (or qcow2) image; never written
	Dir       string   // where the overlay and UEFI variables live (the caller removes it)
	Firmware  Firmware // BIOS or UEFI
	MemoryMiB int      // guest memory (0 = 1024)
	// Accel is the accelerator (zero value = TCG: KVM does not run guests
	// on every host, see accel.go).
	Accel Accel
	// Net gives the guest a virtio NIC on QEMU's user network: the host
	// is 10.0.2.2, the guest 10.0.2.15/24 (it configures it itself).
	Net bool
	// Log receives a copy of the console (nil: none).
	Log io.Writer
}

// Session is a guest booted from an image with a persistent overlay: what
// the guest writes survives a reboot (Boot after the emulator exited), so
// a test can install an update, reboot, and see the result. The console is
// the guest's first serial port: Expect waits for a pattern in it, Send
// types a line, Run types a shell command and returns its output and exit
// status. The emulator runs with -no-reboot, so a guest reboot ends it
// (WaitExit) and the next Boot starts it again on the same disk.
type Session struct {
	opts    SessionOptions
	m       machine
	overlay string
	vars    string

	mu      sync.Mutex
	buf     []byte // console output since the last consumed point
	cond    chan struct{}
	qemu    *proc.Process
	stdin   io.WriteCloser
	exited  chan struct{}
	exitErr error
	seq     int
}

// NewSession prepares a session (the overlay and, for UEFI, a copy of the
// variable store in o.Dir); Boot starts the guest.
func NewSession(ctx context.Context, o SessionOptions) (*Session, error) {
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.Accel == "" {
		o.Accel = TCG
	}
	m, err := newMachine(o.Firmware, o.MemoryMiB, o.Accel)
	if err != nil {
		return nil, fmt.Errorf("guest session: %w", err)
	}
	s := &Session{opts: o, m: m, overlay: filepath.Join(o.Dir, "session-"+string(o.Firmware)+".qcow2")}
	if err := createOverlay(ctx, o.Image, s.overlay); err != nil {
		return nil, fmt.Errorf("guest session: %w", err)
	}
	if m.vars != "" {
		s.vars = filepath.Join(o.Dir, "session-"+string(o.Firmware)+"-vars.fd")
		if err := copyFile(m.vars, s.vars); err != nil {
			return nil, fmt.Errorf("guest session: copying UEFI variables %s: %w", m.vars, err)
		}
	}
	return s, nil
}

// Boot starts the emulator (again, after the guest rebooted or powered
// off). The console output of an earlier boot is dropped.
func (s *Session) Boot() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.qemu != nil {
		select {
		case <-s.exited:
		default:
			return errors.New("guest session: Boot while the emulator still runs")
		}
	}
	args := s.m.command(s.vars, s.overlay, "qcow2")
	if s.opts.Net {
		args = append(args, "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0")
	}
	cmd := exec.Command(s.m.binary, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	p, err := proc.Start(cmd)
	if err != nil {
		w.Close()
		r.Close()
		return fmt.Errorf("guest session: starting %s: %w", s.m.binary, err)
	}
	w.Close()
	s.qemu, s.stdin, s.buf = p, stdin, nil
	s.cond = make(chan struct{})
	exited := make(chan struct{})
	s.exited = exited
	go func() {
		b := make([]byte, 16<<10)
		for {
			n, err := r.Read(b)
			if n > 0 {
				if s.opts.Log != nil {
					s.opts.Log.Write(b[:n])
				}
				s.mu.Lock()
				s.buf = append(s.buf, b[:n]...)
				close(s.cond)
				s.cond = make(chan struct{})
				s.mu.Unlock()
			}
			if err != nil {
				break
			}
		}
		r.Close()
		err := p.Wait()
		s.mu.Lock()
		if err != nil {
			s.exitErr = fmt.Errorf("%s: %v: %s", s.m.binary, err, strings.TrimSpace(stderr.String()))
		} else {
			s.exitErr = nil
		}
		s.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Expect waits up to timeout for re in the console output not consumed
// yet (control sequences and carriage returns removed), consumes the
// output up to the end of the match and returns the match and its
// submatches. It fails when the emulator exits first.
func (s *Session) Expect(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		text := cleanLine(s.buf)
		loc := re.FindStringSubmatchIndex(text)
		wait, exited := s.cond, s.exited
		if loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = text[loc[2*i]:loc[2*i+1]]
				}
			}
			// Keep what follows the match (cleaned: offsets in text).
			s.buf = []byte(text[loc[1]:])
			s.mu.Unlock()
			return m, nil
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-exited:
			s.mu.Lock()
			text := cleanLine(s.buf)
			if loc := re.FindStringIndex(text); loc != nil {
				s.mu.Unlock()
				continue
			}
			err := s.exitErr
			s.mu.Unlock()
			return nil, fmt.Errorf("guest session: the emulator exited (%v) before %q appeared; console:\n%s", err, re, lastOf(text, 20))
		case <-deadline.C:
			s.mu.Lock()
			text := cleanLine(s.buf)
			s.mu.Unlock()
			return nil, &expectTimeout{fmt.Sprintf("guest session: %q did not appear within %s; console:\n%s", re, timeout, lastOf(text, 20))}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Send types line and a newline on the console.
func (s *Session) Send(line string) error {
	s.mu.Lock()
	in := s.stdin
	s.mu.Unlock()
	if in == nil {
		return errors.New("guest session: not booted")
	}
	if _, err := io.WriteString(in, line+"\n"); err != nil {
		// The emulator is gone (or going): what it printed last says why
		// (its console read to the end, unless it lingers).
		s.mu.Lock()
		exited := s.exited
		s.mu.Unlock()
		select {
		case <-exited:
		case <-time.After(time.Second):
		}
		s.mu.Lock()
		text := cleanLine(s.buf)
		s.mu.Unlock()
		return fmt.Errorf("guest session: typing on the console: %w; console:\n%s", err, lastOf(text, 20))
	}
	return nil
}

// Login waits for the getty's "login: " prompt and logs in as user (a
// user without a password, such as the demo OS's root), then waits for
// the shell to run a first command.
func (s *Session) Login(ctx context.Context, user string, timeout time.Duration) error {
	return s.LoginWithPassword(ctx, user, "", timeout)
}

// LoginWithPassword is Login for a user with a password: after the user
// name it waits (up to timeout) for login's "Password: " prompt and types
// password, which the guest does not echo (and the error never shows).
// An empty password is Login.
func (s *Session) LoginWithPassword(ctx context.Context, user, password string, timeout time.Duration) error {
	// getty may have printed its prompt before what an earlier Expect
	// waited for (the boot marker), which consumed it: an empty line
	// makes getty print it again, every loginPoke until the timeout.
	prompt := regexp.MustCompile(`login: $|login: `)
	deadline := time.Now().Add(timeout)
	for {
		wait := min(loginPoke, time.Until(deadline))
		_, err := s.Expect(ctx, prompt, wait)
		if err == nil {
			break
		}
		var te *expectTimeout
		if !errors.As(err, &te) || time.Until(deadline) <= 0 {
			if errors.As(err, &te) {
				return &expectTimeout{fmt.Sprintf("guest session: no login prompt within %s (an empty line was sent every %s); %s", timeout, loginPoke, te.msg)}
			}
			return err
		}
		if err := s.Send(""); err != nil {
			return err
		}
	}
	if err := s.Send(user); err != nil {
		return err
	}
	if password != "" {
		if _, err := s.Expect(ctx, regexp.MustCompile(`(?i)password: ?`), timeout); err != nil {
			return fmt.Errorf("logging in as %s: %w", user, err)
		}
		if err := s.Send(password); err != nil {
			return err
		}
	}
	// The shell is ready once it runs a command; kernel messages on the
	// console are kept off the prompt's way.
	_, _, err := s.Run(ctx, "dmesg -n 1 2>/dev/null; true", 60*time.Second)
	return err
}

// Run types cmd as one shell line, waits up to timeout for it to end and
// returns what it printed (standard output and error, as the console
// shows them) and its exit status. The line is framed by markers that the
// shell prints (the echo of the typed line never matches them).
func (s *Session) Run(ctx context.Context, cmd string, timeout time.Duration) (string, int, error) {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	tag := "EIB-SESSION-" + strconv.Itoa(n)
	line := fmt.Sprintf("printf '%%s-BEGIN\\n' %s; ( %s ) 2>&1; printf '%%s-END-%%s\\n' %s $?", tag, cmd, tag)
	if err := s.Send(line); err != nil {
		return "", -1, err
	}
	re := regexp.MustCompile(`(?s)` + regexp.QuoteMeta(tag) + `-BEGIN\n(.*?)` + regexp.QuoteMeta(tag) + `-END-([0-9]+)`)
	m, err := s.Expect(ctx, re, timeout)
	if err != nil {
		return "", -1, fmt.Errorf("running %q in the guest: %w", cmd, err)
	}
	rc, _ := strconv.Atoi(m[2])
	return m[1], rc, nil
}

// WaitExit waits up to timeout for the emulator to exit (the guest
// rebooted or powered off, -no-reboot).
func (s *Session) WaitExit(timeout time.Duration) error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("guest session: the emulator still runs after %s", timeout)
	}
}

// Close kills the emulator if it runs and waits for it. The overlay stays
// in Dir (the caller's).
func (s *Session) Close() error {
	s.mu.Lock()
	p, exited := s.qemu, s.exited
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	p.Stop(0)
	<-exited
	return nil
}

// lastOf returns the last n lines of text.
func lastOf(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loginPoke is how long LoginWithPassword waits for getty's prompt before
// it sends an empty line to have it printed again (a variable for tests).
var loginPoke = 15 * time.Second

// expectTimeout is the error of an Expect whose pattern did not appear in
// time (the emulator still running).
type expectTimeout struct{ msg string }

func (e *expectTimeout) Error() string { return e.msg }
