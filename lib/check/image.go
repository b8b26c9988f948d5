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
	"syscall"
)

// decompressors are the tools that expand a compressed image, by the
// Format its magic says, in order of preference. Each reads standard input
// and writes standard output.
var decompressors = map[Format][][]string{
	FormatGzip: {{"pigz", "-dc"}, {"gzip", "-dc"}},
	FormatXz:   {{"xz", "-dc", "-T0"}},
	FormatZstd: {{"zstd", "-dcq"}},
}

// IsCompressed reports whether path is named like a compressed image
// (.gz, .xz, .zst). It looks at the name only: DetectImage and
// PrepareImage go by the content.
func IsCompressed(path string) bool {
	for _, s := range suffixes {
		if s.format.Compressed() && strings.HasSuffix(path, s.suffix) {
			return true
		}
	}
	return false
}

// decompressor returns the first installed tool for format.
func decompressor(format Format) ([]string, error) {
	tools := decompressors[format]
	for _, t := range tools {
		if _, err := exec.LookPath(t[0]); err == nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("no %s decompressor found (looked for %s)", toolName(format), tools[0][0])
}

// startTool runs tool with the file at path on its standard input.
func startTool(ctx context.Context, tool []string, path string) (cmd *exec.Cmd, stdout io.ReadCloser, stderr *bytes.Buffer, err error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	cmd = exec.CommandContext(ctx, tool[0], tool[1:]...)
	cmd.Stdin = in
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	if stdout, err = cmd.StdoutPipe(); err != nil {
		in.Close()
		return nil, nil, nil, err
	}
	err = cmd.Start()
	in.Close() // the tool has its own descriptor
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", tool[0], err)
	}
	return cmd, stdout, stderr, nil
}

// decompressedHead returns the first headSize bytes the compressed image
// at path expands to, without expanding the rest: the tool is stopped
// once they are read. Data the tool cannot expand is an *InputError.
func decompressedHead(ctx context.Context, path string, format Format) ([]byte, error) {
	tool, err := decompressor(format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd, stdout, stderr, err := startTool(ctx, tool, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	head := make([]byte, headSize)
	n, readErr := io.ReadFull(stdout, head)
	if n == headSize {
		cancel() // enough: stop the tool (it is killed, its error ignored)
		cmd.Wait()
		return head, nil
	}
	waitErr := cmd.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: reading its %s data: %w", path, toolName(format), err)
	}
	if err := killedBySignal(waitErr); err != nil {
		return nil, fmt.Errorf("%s: reading its %s data: %w", path, toolName(format), err)
	}
	if waitErr != nil || (readErr != nil && readErr != io.EOF && readErr != io.ErrUnexpectedEOF) {
		if waitErr == nil {
			waitErr = readErr
		}
		return nil, &InputError{Path: path, Reason: fmt.Sprintf("not a disk image: %s data that does not expand (%s: %v: %s)",
			toolName(format), strings.Join(tool, " "), waitErr, strings.TrimSpace(stderr.String()))}
	}
	return head[:n], nil
}

// PrepareImage returns a file to boot for the image at path, telling its
// format by content, not by name: path itself for a raw disk or a qcow2
// file, or, for gzip, xz or zstd data, a sparse expanded copy in dir
// (named after path, without its .gz/.xz/.zst, plus .check.raw). remove
// deletes the copy (a no-op otherwise) and must be called when the boots
// are done; on an error nothing is left in dir.
//
// PrepareImage does not ask for a partition table (DetectImage does, and
// is what eib check-image calls first); it refuses, as an *InputError, a
// path that is not a regular file, an empty file, a file named .gz, .xz or
// .zst whose content is not that compression, and compressed data the tool
// cannot expand.
func PrepareImage(ctx context.Context, path, dir string) (raw string, remove func() error, err error) {
	noop := func() error { return nil }
	format, head, err := sniff(path)
	if err != nil {
		return "", noop, err
	}
	if !format.Compressed() {
		for _, s := range suffixes {
			if s.format.Compressed() && strings.HasSuffix(path, s.suffix) {
				return "", noop, refusal(path, head)
			}
		}
		return path, noop, nil
	}
	tool, err := decompressor(format)
	if err != nil {
		return "", noop, fmt.Errorf("image %s: %w", path, err)
	}
	name := filepath.Base(path)
	for _, s := range suffixes {
		name = strings.TrimSuffix(name, s.suffix)
	}
	out := filepath.Join(dir, name+".check.raw")
	remove = func() error {
		if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := expand(ctx, tool, format, path, out); err != nil {
		remove()
		return "", noop, err
	}
	return out, remove, nil
}

// killedBySignal returns an error when the tool was killed by a signal
// that was not ours (ours end ctx first): a Ctrl-C on the terminal reaches
// the tool of the same process group before eib's own handler cancels the
// run. That is an interruption, not a sign of corrupt data; nil otherwise.
func killedBySignal(waitErr error) error {
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return nil
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return nil
	}
	switch ws.Signal() {
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT:
		return fmt.Errorf("interrupted: the decompressor was killed by %s", ws.Signal())
	}
	return nil // a crash on the data: the caller's InputError
}

// expand runs tool on src and writes its output to dst, sparsely. The
// tool failing (and not because ctx ended) is an *InputError: the data
// is corrupt or truncated.
func expand(ctx context.Context, tool []string, format Format, src, dst string) error {
	cmd, stdout, stderr, err := startTool(ctx, tool, src)
	if err != nil {
		return fmt.Errorf("expanding %s: %w", src, err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("expanding %s: %w", src, err)
	}
	defer f.Close()
	copyErr := sparseCopy(f, stdout)
	if copyErr != nil {
		// Unblock the tool if we stopped reading early.
		io.Copy(io.Discard, stdout)
	}
	waitErr := cmd.Wait()
	if waitErr != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("expanding %s: %w", src, ctx.Err())
		}
		if err := killedBySignal(waitErr); err != nil {
			return fmt.Errorf("expanding %s: %w", src, err)
		}
		return &InputError{Path: src, Reason: fmt.Sprintf("%s data that does not expand (%s: %v: %s)",
			toolName(format), strings.Join(tool, " "), waitErr, strings.TrimSpace(stderr.String()))}
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
	// The backing file's format by its magic: a raw disk, or a qcow2
	// image given to eib check-image as it is.
	format := "raw"
	if f, err := os.Open(abs); err == nil {
		b := make([]byte, 4)
		if _, err := io.ReadFull(f, b); err == nil && magic(b) == FormatQCOW2 {
			format = "qcow2"
		}
		f.Close()
	}
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", abs, "-F", format, overlay)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemu-img create -f qcow2 -b %s -F %s %s: %v: %s", abs, format, overlay, err, strings.TrimSpace(string(out)))
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
