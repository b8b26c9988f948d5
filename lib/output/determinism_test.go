package output

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// osLikeImage writes a sparse 40 MiB raw image: in each MiB, 48 KiB of
// text drawn from a small vocabulary, 8 KiB of random bytes and a hole.
// It spans two xz blocks (24 MiB at -6) and several zstd jobs.
func osLikeImage(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	const size = 40 << 20
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(5, 6))
	words := []string{"ostree ", "deploy ", "/usr/lib/", "x86_64 ", "libc.so.6\n", "systemd ", "GRUB ", "\x00\x01\x02\x03"}
	p := filepath.Join(dir, "os.raw")
	f := sizedFile(t, p, size)
	for mib := 0; mib < size; mib += 1 << 20 {
		i := mib
		for i < mib+48<<10 {
			i += copy(data[i:mib+48<<10], words[r.IntN(len(words))])
		}
		for ; i < mib+56<<10; i++ {
			data[i] = byte(r.Uint32())
		}
		if _, err := f.WriteAt(data[mib:mib+56<<10], int64(mib)); err != nil {
			t.Fatal(err)
		}
	}
	return p, data
}

// compressOnce writes the outputs of raw with c and returns the
// compressed bytes.
func compressOnce(t *testing.T, raw string, c Compression, inProcess bool) []byte {
	t.Helper()
	out := t.TempDir()
	res, err := Image{Raw: raw, OutDir: out, Name: "os.img", Compression: c, InProcess: inProcess}.Write(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	b, err := os.ReadFile(filepath.Join(out, res.Compressed.Name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withTool runs f with the compressor tool of c replaced by argv.
func withTool(c Compression, argv []string, f func()) {
	saved := tools[c]
	tools[c] = argv
	defer func() { tools[c] = saved }()
	f()
}

// withProcs runs f with GOMAXPROCS n: the thread count of the in-process
// encoders.
func withProcs(n int, f func()) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(n))
	f()
}

// TestCompressedBytesDoNotDependOnThreads compresses one raw image
// several times with each compression, as eib does (Image.Write), on one
// CPU and on all of them (taskset for the tools, GOMAXPROCS for the Go
// encoders), and with the host's compressor variables set, and wants the
// same bytes each time. The controls show that the comparison sees an
// encoder change: xz's and zstd's single-threaded encoders, and the Go
// zstd encoder's sequential mode, write other bytes.
func TestCompressedBytesDoNotDependOnThreads(t *testing.T) {
	need := []string{"xz", "zstd", "taskset", "gzip"}
	for _, tool := range need {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does)", tool)
		}
	}
	t.Logf("%d CPUs: the tools' -T0 means %d threads, taskset -c 0 one", runtime.NumCPU(), runtime.NumCPU())
	if runtime.NumCPU() < 2 {
		t.Log("one CPU: one thread and all threads are the same here; the test proves less")
	}
	raw, data := osLikeImage(t, t.TempDir())
	oneCPU := func(argv []string) []string { return append([]string{"taskset", "-c", "0"}, argv...) }

	for _, tc := range []struct {
		c         Compression
		inProcess bool
		dec       []string
	}{
		{Gzip, true, []string{"gzip", "-d", "-c"}},
		{XZ, false, []string{"xz", "-d", "-c"}},
		{Zstd, false, []string{"zstd", "-d", "-q", "-c"}},
		{Zstd, true, []string{"zstd", "-d", "-q", "-c"}},
	} {
		name := string(tc.c)
		if tc.inProcess {
			name += "-in-process"
		}
		t.Run(name, func(t *testing.T) {
			type run struct {
				how string
				out []byte
			}
			var runs []run
			add := func(how string, f func() []byte) { runs = append(runs, run{how, f()}) }
			once := func() []byte { return compressOnce(t, raw, tc.c, tc.inProcess) }
			add("all CPUs", once)
			add("all CPUs, again", once)
			if tc.inProcess {
				withProcs(1, func() { add("GOMAXPROCS=1", once) })
				withProcs(8, func() { add("GOMAXPROCS=8", once) })
			} else {
				withTool(tc.c, oneCPU(tools[tc.c]), func() { add("taskset -c 0 (one CPU)", once) })
				t.Setenv("XZ_OPT", "--block-size=4MiB")
				t.Setenv("XZ_DEFAULTS", "--memlimit-compress=1MiB")
				t.Setenv("ZSTD_CLEVEL", "19")
				add("with XZ_OPT, XZ_DEFAULTS and ZSTD_CLEVEL set", once)
			}
			for _, r := range runs[1:] {
				if !bytes.Equal(r.out, runs[0].out) {
					t.Errorf("%s: %s wrote %d bytes, %s %d bytes: not the same", tc.c, r.how, len(r.out), runs[0].how, len(runs[0].out))
				}
			}
			// The bytes are a valid stream of the image.
			dec := exec.Command(tc.dec[0], tc.dec[1:]...)
			dec.Stdin = bytes.NewReader(runs[0].out)
			plain, err := dec.Output()
			if err != nil || !bytes.Equal(plain, data) {
				t.Fatalf("%s: decompressed %d bytes (%v), want the %d bytes of the image", tc.dec[0], len(plain), err, len(data))
			}

			// Controls: another encoder mode must be seen as different.
			var control []byte
			switch {
			case tc.c == Gzip:
				// No file name (FLG 0) and no time stamp (MTIME 0), as gzip -n.
				if h := runs[0].out[:10]; h[3] != 0 || !bytes.Equal(h[4:8], []byte{0, 0, 0, 0}) {
					t.Errorf("gzip header % x: want FLG 0 and MTIME 0", h)
				}
				return
			case tc.c == XZ:
				withTool(XZ, slices.Replace(slices.Clone(tools[XZ]), 1, 2, "-T1"), func() { control = once() })
			case tc.c == Zstd && !tc.inProcess:
				withTool(Zstd, append(slices.Clone(tools[Zstd]), "--single-thread"), func() { control = once() })
			default:
				var b bytes.Buffer
				zw, err := zstd.NewWriter(&b, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
				if err != nil {
					t.Fatal(err)
				}
				zw.Write(data)
				if err := zw.Close(); err != nil {
					t.Fatal(err)
				}
				control = b.Bytes()
			}
			if bytes.Equal(control, runs[0].out) {
				t.Errorf("%s: the single-threaded control wrote the same bytes: the comparison proves nothing", tc.c)
			}
		})
	}
}
