package lock

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPathHonoursEnv(t *testing.T) {
	t.Setenv("EIB_LOCK_FILE", "/tmp/x.lock")
	if got := Path(); got != "/tmp/x.lock" {
		t.Fatalf("Path() = %q", got)
	}
	t.Setenv("EIB_LOCK_FILE", "")
	if got := Path(); got != DefaultPath {
		t.Fatalf("Path() = %q, want %q", got, DefaultPath)
	}
}

func TestSecondAcquireTimesOutNamingHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "eib.lock")
	l, err := Acquire(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Acquire(context.Background(), path, 300*time.Millisecond)
	if err == nil {
		t.Fatal("second Acquire succeeded while the lock was held")
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("gave up after %s, before the timeout", waited)
	}
	want := "PID " + strconv.Itoa(os.Getpid())
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %q and the path", err, want)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(context.Background(), path, 0)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestLockFreedWhenHolderIsKilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eib.lock")
	// flock(1) holds the lock in another process, as a running build would.
	cmd := exec.Command("sh", "-c", `exec 9>"$1" && flock 9 && exec sleep 60`, "sh", path)
	if err := cmd.Start(); err != nil {
		t.Fatalf("flock(1) not available: %v (util-linux)", err)
	}
	defer cmd.Process.Kill()
	// Wait until the child holds it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := Acquire(context.Background(), path, 0)
		if err != nil {
			break
		}
		l.Release()
		if time.Now().After(deadline) {
			t.Fatal("flock child never took the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(context.Background(), path, 2*time.Second)
	if err != nil {
		t.Fatalf("lock not freed after its holder was killed: %v", err)
	}
	l.Release()
}

func TestAcquireInterruptedByContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eib.lock")
	l, err := Acquire(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Acquire(ctx, path, time.Minute); err == nil {
		t.Fatal("Acquire succeeded")
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("cancellation did not stop the wait")
	}
}
