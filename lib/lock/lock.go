// Package lock is the host-wide build lock: one eib build at a time per
// host, an flock(2) on /var/lock/eib.lock (or $EIB_LOCK_FILE). The kernel
// releases the lock when the process dies, so a killed build never leaves a
// stale lock; the file itself stays and records the holder's PID for the
// error message of the next build that has to wait.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultPath is the lock file when EIB_LOCK_FILE is not set.
const DefaultPath = "/var/lock/eib.lock"

// pollInterval is how often a waiting build retries the lock.
const pollInterval = 100 * time.Millisecond

// Path returns $EIB_LOCK_FILE when set, else DefaultPath.
func Path() string {
	if p := os.Getenv("EIB_LOCK_FILE"); p != "" {
		return p
	}
	return DefaultPath
}

// Lock is a held build lock.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock at path, waiting up to timeout (0: try once).
// The error names the path and the PID of the holder when known.
func Acquire(ctx context.Context, path string, timeout time.Duration) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			holder := Holder(path)
			f.Close()
			return nil, fmt.Errorf("lock %s is held by %s; gave up after %s (another eib build is running; wait for it or raise --lock-timeout SECONDS)",
				path, holder, timeout)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: waiting interrupted: %w", path, context.Cause(ctx))
		case <-time.After(pollInterval):
		}
	}
	// Record the holder for whoever waits next.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Holder describes the process recorded in the lock file ("PID 123 (eib)"),
// or "an unknown process".
func Holder(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "an unknown process"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return "an unknown process"
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Sprintf("PID %d", pid)
	}
	return fmt.Sprintf("PID %d (%s)", pid, strings.TrimSpace(string(comm)))
}

// Path returns the lock file path.
func (l *Lock) Path() string { return l.path }

// Release drops the lock. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	cerr := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.path, err)
	}
	if cerr != nil {
		return fmt.Errorf("unlock %s: %w", l.path, cerr)
	}
	return nil
}
