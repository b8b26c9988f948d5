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
	"strings"
)

// decompressors are the tools that expand a compressed image, by suffix,
// in order of preference.
var decompressors = []struct {
	suffix string
	tools  [][]string
}{
	{".gz", [][]string{{"pigz", "-dc"}, {"gzip", "-dc"}}},
	{".xz", [][]string{{"xz", "-dc", "-T0"}}},
	{".zst", [][]string{{"zstd", "-dcq"}}},
}

// IsCompressed reports whether path names a compressed image that
// PrepareImage expands (.gz, .xz, .zst).
func IsCompressed(path string) bool {
	for _, d := range decompressors {
		if strings.HasSuffix(path, d.suffix) {
			return true
		}
	}
	return false
}

// PrepareImage returns a raw image to boot: path itself when it is raw
// (.img or any other name), or, for .img.gz, .img.xz and .img.zst, a sparse
// expanded copy in dir. remove deletes the copy (a no-op for a raw image)
// and must be called when the boots are done.
func PrepareImage(ctx context.Context, path, dir string) (raw string, remove func() error, err error) {
	noop := func() error { return nil }
	st, err := os.Stat(path)
	if err != nil {
		return "", noop, fmt.Errorf("image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", noop, fmt.Errorf("image %s: not a regular file", path)
	}
	for _, d := range decompressors {
		if !strings.HasSuffix(path, d.suffix) {
			continue
		}
		var tool []string
		for _, t := range d.tools {
			if _, err := exec.LookPath(t[0]); err == nil {
				tool = t
				break
			}
		}
		if tool == nil {
			return "", noop, fmt.Errorf("image %s: no %s decompressor found (looked for %s)", path, d.suffix, d.tools[0][0])
		}
		out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(path), d.suffix)+".check.raw")
		remove := func() error {
			if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		}
		if err := expand(ctx, tool, path, out); err != nil {
			remove()
			return "", noop, err
		}
		return out, remove, nil
	}
	return path, noop, nil
}

// expand runs tool on src and writes its output to dst, sparsely.
func expand(ctx context.Context, tool []string, src, dst string) error {
	cmd := exec.CommandContext(ctx, tool[0], append(tool[1:], src)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("expanding %s: %w", src, err)
	}
	defer f.Close()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("expanding %s: %s: %w", src, tool[0], err)
	}
	copyErr := sparseCopy(f, stdout)
	if copyErr != nil {
		// Unblock the tool if we stopped reading early.
		io.Copy(io.Discard, stdout)
	}
	waitErr := cmd.Wait()
	if waitErr != nil {
		return fmt.Errorf("expanding %s: %s: %v: %s", src, strings.Join(tool, " "), waitErr, strings.TrimSpace(stderr.String()))
	}
	if copyErr != nil {
		return fmt.Errorf("expanding %s into %s: %w", src, dst, copyErr)
	}
	return f.Close()
}

// sparseCopy copies r to f, seeking over all-zero blocks so that the
// expanded image takes no more space than the data it holds.
func sparseCopy(f *os.File, r io.Reader) error {
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, err := io.ReadFull(r, buf)
		for off := 0; off < n; off += sparseBlock {
			chunk := buf[off:min(off+sparseBlock, n)]
			if isZero(chunk) {
				if _, err := f.Seek(int64(len(chunk)), io.SeekCurrent); err != nil {
					return err
				}
			} else if _, err := f.Write(chunk); err != nil {
				return err
			}
			size += int64(len(chunk))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return f.Truncate(size)
}

// sparseBlock is the granularity of holes in an expanded image.
const sparseBlock = 64 << 10

var zeroBlock = make([]byte, sparseBlock)

func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// createOverlay makes a throw-away qcow2 file backed by the raw image, so
// the boot never writes to the image itself.
func createOverlay(ctx context.Context, raw, overlay string) error {
	abs, err := filepath.Abs(raw)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", abs, "-F", "raw", overlay)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img create -f qcow2 -b %s %s: %v: %s", abs, overlay, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// copyFile copies a small file (the UEFI variable store template).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
