package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Local publishes to a local directory: Dir/<outversion>.
type Local struct {
	Dir  string
	Logf func(format string, args ...any)
}

func (l *Local) String() string { return l.Dir }

// Publish copies the release to Dir/.<outversion>.inprogress (removing
// what an interrupted run left there, and the stale staging copies of
// other outversions: StaleAfter), verifies and flushes every file,
// then renames it to Dir/<outversion>, which it never replaces.
func (l *Local) Publish(ctx context.Context, dir, outversion string) error {
	files, err := release(dir)
	if err != nil {
		return err
	}
	final := filepath.Join(l.Dir, outversion)
	staging := filepath.Join(l.Dir, stagingName(outversion))
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	if _, err := os.Lstat(final); err == nil {
		if l.same(dir, final, files) {
			l.Logf("%s is already published", final)
			return nil
		}
		return fmt.Errorf("%s exists and differs from this build; not replacing a published release", final)
	}
	if err := removeStaleLocal(l.Dir, outversion, time.Now(), l.Logf); err != nil {
		return err
	}
	if err := os.RemoveAll(staging); err != nil {
		return err
	}
	if err := os.Mkdir(staging, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copySynced(filepath.Join(dir, f.Name), filepath.Join(staging, f.Name)); err != nil {
			return err
		}
	}
	if bad := verifyDir(staging, files); bad != "" {
		return fmt.Errorf("the copy in %s does not match SHA256SUMS: %s", staging, bad)
	}
	if err := syncPath(staging); err != nil {
		return err
	}
	// RENAME_NOREPLACE: a release published meanwhile stays as it is.
	if err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("renaming %s to %s: %w", staging, final, err)
	}
	if err := syncPath(l.Dir); err != nil {
		return err
	}
	l.Logf("published %s", final)
	return nil
}

// same reports whether final holds this release: the same SHA256SUMS, and
// every file matching it.
func (l *Local) same(dir, final string, files []File) bool {
	a, err1 := os.ReadFile(filepath.Join(dir, SumsFile))
	b, err2 := os.ReadFile(filepath.Join(final, SumsFile))
	return err1 == nil && err2 == nil && bytes.Equal(a, b) && verifyDir(final, files) == ""
}

// Put copies path to Dir/name through a flushed temporary file.
func (l *Local) Put(ctx context.Context, path, name string) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, "."+name+".tmp")
	if err := copySynced(path, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(l.Dir, name)); err != nil {
		return err
	}
	return syncPath(l.Dir)
}

// verifyDir checks every file of files in dir; it returns what is wrong,
// "" when all match.
func verifyDir(dir string, files []File) string {
	for _, f := range files {
		sum, err := hashFile(filepath.Join(dir, f.Name))
		if err != nil {
			return err.Error()
		}
		if sum != f.SHA256 {
			return fmt.Sprintf("%s has sha256 %s, want %s", f.Name, sum, f.SHA256)
		}
	}
	return ""
}

func copySynced(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return out.Sync()
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}
