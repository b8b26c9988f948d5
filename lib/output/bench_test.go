package output_test

import (
	"context"
	"crypto/rand"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
)

// mixedImage writes a file of about size bytes that looks like a disk
// image: the host's /usr files back to back (binaries, libraries, text),
// a stretch of random bytes and a sparse hole. EIB_BENCH_IMAGE names an
// existing file to use instead.
func mixedImage(tb testing.TB, dir string, size int64) string {
	tb.Helper()
	if p := os.Getenv("EIB_BENCH_IMAGE"); p != "" {
		return p
	}
	p := filepath.Join(dir, "mixed.img")
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	files := size * 6 / 10
	var n int64
	filepath.WalkDir("/usr", func(path string, d fs.DirEntry, err error) error {
		if err != nil || n >= files {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer in.Close()
		m, _ := io.Copy(f, io.LimitReader(in, files-n))
		n += m
		return nil
	})
	if _, err := io.CopyN(f, rand.Reader, size/10); err != nil {
		tb.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkOnePassVsBareZstd compares eib's pass over an image (zstd +
// SHA-256 and signature of the raw and the compressed stream, all files
// written) with the bare `zstd -T0 -3` on the same file. The ratio metric
// is onepass/bare; the goal is <= 1.25.
func BenchmarkOnePassVsBareZstd(b *testing.B) {
	if _, err := exec.LookPath("zstd"); err != nil {
		b.Fatal("zstd is not installed: run make deps")
	}
	dir := b.TempDir()
	raw := mixedImage(b, dir, 1<<30)
	key := signtest.NewKey(b, dir, "")
	signer, err := sign.New(sign.Options{KeyFile: key.Secret}, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Warm the page cache for both contenders alike.
	exec.Command("cat", raw).Run()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	var one, bare, oneCPU, bareCPU time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cmd := exec.Command("zstd", "-T0", "-3", "-q", "-f", raw, "-o", filepath.Join(dir, "bare.zst"))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("zstd: %v\n%s", err, out)
		}
		bare += time.Since(t0)
		bareCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		c0 := cpuTime()
		t0 = time.Now()
		im := output.Image{Raw: raw, OutDir: out, Name: "bench.img", Compression: output.Zstd, Signer: signer}
		if _, err := im.Write(context.Background()); err != nil {
			b.Fatal(err)
		}
		one += time.Since(t0)
		oneCPU += cpuTime() - c0
	}
	b.ReportMetric(one.Seconds()/float64(b.N), "onepass-s/op")
	b.ReportMetric(bare.Seconds()/float64(b.N), "bare-s/op")
	b.ReportMetric(one.Seconds()/bare.Seconds(), "ratio")
	// CPU time is the fairer measure on a loaded machine.
	b.ReportMetric(oneCPU.Seconds()/float64(b.N), "onepass-cpu-s/op")
	b.ReportMetric(bareCPU.Seconds()/float64(b.N), "bare-cpu-s/op")
	b.ReportMetric(oneCPU.Seconds()/bareCPU.Seconds(), "cpu-ratio")
}

// cpuTime is the CPU time of this process and its waited-for children
// (the compressor tool).
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}
