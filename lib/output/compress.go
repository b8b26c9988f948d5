package output

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

// Compression is an image compression, named by its file suffix.
type Compression string

// The compressions of image:compression.
//
// Each is deterministic: the same raw image gives the same compressed bytes
// with the same compressor version, whatever the number of cores or threads
// (measured, and checked by TestCompressedBytesDoNotDependOnThreads):
//   - gz: pgzip cuts the input into 1 MiB blocks whatever the concurrency
//     and writes no file name and a zero MTIME (RFC 1952: "no time stamp
//     is available"), like gzip -n.
//   - xz: -T0 always selects xz's multi-threaded encoder (xz >= 5.4.0, even
//     on one core; 5.2 used the single-threaded one there), whose blocks
//     have the preset's size (-6: 24 MiB) whatever the thread count; the
//     host's XZ_OPT and XZ_DEFAULTS are not passed on, so no memory limit
//     can switch it to the single-threaded encoder.
//   - zst: zstd -T0 runs at least one worker, and zstd's multi-threaded
//     output does not depend on their number (only --single-thread
//     differs); the input is a pipe, so no content size is in the header.
//     The Go encoder (no zstd tool, or InProcess) always runs in its
//     concurrent-block mode with two or more encoders, so one core gives
//     the bytes of many. It writes other bytes than the tool.
const (
	Gzip Compression = "gz"  // parallel gzip (pgzip), level 6, all cores
	XZ   Compression = "xz"  // xz -T0 -6
	Zstd Compression = "zst" // zstd -T0 -3 (or the Go encoder at its default level)
)

// Compressions lists the valid values, for errors and the schema.
var Compressions = []Compression{Gzip, XZ, Zstd}

// ParseCompression checks an image:compression value.
func ParseCompression(s string) (Compression, error) {
	for _, c := range Compressions {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("compression %q: not one of gz, xz, zst", s)
}

// tools are the external compressors: faster than the in-process ones
// where it matters (C zstd needs about 0.7x the CPU of the Go encoder).
// zstd falls back to the Go encoder when the tool is missing; xz has no
// Go fallback.
var tools = map[Compression][]string{
	Zstd: {"zstd", "-T0", "-3", "-q", "-c", "-"},
	XZ:   {"xz", "-T0", "-6", "-c", "-"},
}

// newCompressor returns a writer that compresses into w. Close flushes
// it; it does not close w. inProcess forbids the external tools where a
// Go encoder exists.
func newCompressor(ctx context.Context, c Compression, w io.Writer, inProcess bool) (io.WriteCloser, string, error) {
	threads := runtime.GOMAXPROCS(0)
	if t, ok := tools[c]; ok && (c == XZ || !inProcess) {
		if _, err := exec.LookPath(t[0]); err == nil || c == XZ {
			tw, err := newTool(ctx, t, w)
			return tw, strings.Join(t, " "), err
		}
	}
	switch c {
	case Zstd:
		// The concurrent-block mode cuts the stream into jobs of a size
		// set by the window, not by the encoders; it needs two of them,
		// and without it one core would write other bytes than many.
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(max(threads, 2)),
			zstd.WithConcurrentBlocks(true),
			zstd.WithEncoderCRC(true))
		return zw, "zstd (in process)", err
	case Gzip:
		gz, err := pgzip.NewWriterLevel(w, 6)
		if err != nil {
			return nil, "", err
		}
		// No time stamp (MTIME 0, RFC 1952); pgzip's zero time would
		// write a date in 2042.
		gz.ModTime = time.Unix(0, 0)
		if err := gz.SetConcurrency(1<<20, 2*threads); err != nil {
			return nil, "", err
		}
		return gz, "gzip -6 (in process, parallel)", nil
	}
	return nil, "", fmt.Errorf("compression %q: not one of gz, xz, zst", c)
}

// toolEnvDrop are the variables through which the host would change what
// the compressor tools write (their options, or an xz memory limit that
// switches to the single-threaded encoder); the tools run without them.
var toolEnvDrop = []string{"XZ_DEFAULTS", "XZ_OPT", "ZSTD_CLEVEL", "ZSTD_NBTHREADS"}

// toolEnv is the environment of the compressor tools: the host's, without
// toolEnvDrop.
func toolEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(toolEnvDrop, name) {
			env = append(env, kv)
		}
	}
	return env
}

// toolWriter pipes the stream through an external compressor; a
// goroutine copies its output to w in large blocks.
type toolWriter struct {
	argv   []string
	cmd    *exec.Cmd
	in     *os.File
	stderr bytes.Buffer
	copied chan error
	closed bool
}

func newTool(ctx context.Context, argv []string, w io.Writer) (*toolWriter, error) {
	t := &toolWriter{argv: argv, cmd: exec.CommandContext(ctx, argv[0], argv[1:]...), copied: make(chan error, 1)}
	t.cmd.Env = toolEnv()
	// The input pipe is blocking (not in Go's poller): pump splices and
	// tees into it with raw system calls.
	var in [2]int
	if err := unix.Pipe2(in[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	inR, inW := os.NewFile(uintptr(in[0]), "|"+argv[0]), os.NewFile(uintptr(in[1]), argv[0]+"|")
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	for _, p := range []*os.File{inW, outR} {
		// Larger pipes: fewer, larger writes and reads (best effort).
		unix.FcntlInt(p.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	}
	t.cmd.Stdin, t.cmd.Stdout, t.cmd.Stderr = inR, outW, &t.stderr
	err = t.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("%s: %w (is it installed? see helpers/debian-packages.txt)", argv[0], err)
	}
	t.in = inW
	go func() {
		buf := make([]byte, 1<<20)
		_, err := io.CopyBuffer(onlyWriter{w}, onlyReader{outR}, buf)
		if err != nil {
			// Unblock the tool so that Wait returns.
			io.Copy(io.Discard, outR)
		}
		outR.Close()
		t.copied <- err
	}()
	return t, nil
}

// onlyWriter and onlyReader hide ReadFrom and WriteTo so that CopyBuffer
// uses its buffer (os.File.WriteTo would copy in 32 KiB pieces).
type (
	onlyWriter struct{ io.Writer }
	onlyReader struct{ io.Reader }
)

func (t *toolWriter) Write(p []byte) (int, error) {
	n, err := t.in.Write(p)
	if err != nil {
		return n, t.finish(err)
	}
	return n, nil
}

// finish closes the tool's input, waits for it and its output, and
// returns the first error with the tool's stderr.
func (t *toolWriter) finish(err error) error {
	if t.closed {
		return err
	}
	t.closed = true
	t.in.Close()
	cerr := <-t.copied
	werr := t.cmd.Wait()
	switch {
	case werr != nil:
		err = werr
	case err == nil:
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(t.argv, " "), err, strings.TrimSpace(t.stderr.String()))
	}
	return nil
}

// spliceable says whether pump may feed the tool's input pipe directly.
func (t *toolWriter) spliceable() bool { return !t.closed }

// inFD is the tool's input pipe, for splice and tee.
func (t *toolWriter) inFD() int { return int(t.in.Fd()) }

func (t *toolWriter) Close() error { return t.finish(nil) }
