package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
	"golang.org/x/sys/unix"
)

// holeyImage writes a sparse file whose data and holes start and end off
// any block boundary, with a hole too small to skip, and returns its
// bytes.
func holeyImage(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	const size = 9<<20 + 12345
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(3, 4))
	text := []byte("ostree deployment /boot/loader/entries\n")
	put := func(off, n int, random bool) {
		for i := off; i < off+n; i++ {
			if random {
				data[i] = byte(r.Uint32())
			} else {
				data[i] = text[i%len(text)]
			}
		}
	}
	put(0, 100000, false)                     // data, then a 3 MiB hole
	put(100000+3<<20, 2<<20+777, true)        // data, then a 40 KiB hole (read)
	put(100000+5<<20+777+40<<10, 5000, false) // data, then a hole to the end
	p := filepath.Join(dir, "holey.raw")
	f := sizedFile(t, p, size)
	// Write only the non-zero 4 KiB pages: the rest stays holes.
	for off := 0; off < size; off += 4096 {
		page := data[off:min(off+4096, size)]
		if !bytes.Equal(page, make([]byte, len(page))) {
			if _, err := f.WriteAt(page, int64(off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p, data
}

func TestRegionsFindHolesAndMergeSmallOnes(t *testing.T) {
	p, data := holeyImage(t, t.TempDir())
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs := regions(f, int64(len(data)))
	holes := 0
	var next int64
	for _, r := range rs {
		if r.off != next || r.end <= r.off {
			t.Fatalf("regions %+v: not contiguous from 0", rs)
		}
		next = r.end
		if r.hole {
			holes++
			if r.end-r.off < minHole {
				t.Errorf("hole %+v is shorter than %d bytes", r, minHole)
			}
			if !bytes.Equal(data[r.off:r.end], make([]byte, r.end-r.off)) {
				t.Errorf("hole %+v holds data", r)
			}
		}
	}
	if next != int64(len(data)) {
		t.Fatalf("regions %+v end at %d, the file has %d bytes", rs, next, len(data))
	}
	if holes == 0 {
		t.Skipf("the file system of %s reports no holes (regions %+v): only the read path is tested", p, rs)
	}
	if holes != 2 {
		t.Errorf("regions %+v: want the 3 MiB hole and the tail hole", rs)
	}
}

// Every way of feeding the compressor (splice and tee into zstd and xz,
// read and write where splice fails, writes into the Go encoders) produces the raw bytes, holes included,
// and the right checksum and signature.
func TestSparseImageOutputsAreItsBytes(t *testing.T) {
	for _, tool := range []string{"zstd", "xz", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does)", tool)
		}
	}
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "")
	signer, err := sign.New(sign.Options{KeyFile: key.Secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, data := holeyImage(t, dir)
	sum := sha256.Sum256(data)
	defer func() { spliceFile = unix.Splice }()
	for _, tc := range []struct {
		c         Compression
		inProcess bool
		noSplice  bool // a file system without splice: read and write
		dec       []string
	}{
		{Zstd, false, false, []string{"zstd", "-d", "-q", "-c"}},
		{Zstd, false, true, []string{"zstd", "-d", "-q", "-c"}},
		{Zstd, true, false, []string{"zstd", "-d", "-q", "-c"}},
		{Gzip, false, false, []string{"gzip", "-d", "-c"}},
		{XZ, false, false, []string{"xz", "-d", "-c"}},
	} {
		out := t.TempDir()
		spliceFile = unix.Splice
		if tc.noSplice {
			spliceFile = func(int, *int64, int, *int64, int, int) (int64, error) { return 0, unix.EINVAL }
		}
		res, err := Image{Raw: raw, OutDir: out, Name: "os.img", Compression: tc.c, Signer: signer, InProcess: tc.inProcess}.Write(context.Background())
		if err != nil {
			t.Fatalf("%s (in process %v): %v", tc.c, tc.inProcess, err)
		}
		comp := filepath.Join(out, res.Compressed.Name)
		plain, err := exec.Command(tc.dec[0], append(tc.dec[1:], comp)...).Output()
		if err != nil {
			t.Fatalf("%s %s: %v", tc.dec[0], comp, err)
		}
		if !bytes.Equal(plain, data) {
			t.Errorf("%+v: decompressed %d bytes differ from the %d-byte image", tc, len(plain), len(data))
		}
		if res.Raw.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%+v: raw sha256 %s, want %x", tc, res.Raw.SHA256, sum)
		}
		csum, _ := os.ReadFile(comp)
		if c := sha256.Sum256(csum); res.Compressed.SHA256 != hex.EncodeToString(c[:]) {
			t.Errorf("%s: compressed sha256 %s, want %x", tc.c, res.Compressed.SHA256, c)
		}
		if err := os.WriteFile(filepath.Join(out, "os.img"), plain, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"os.img", res.Compressed.Name} {
			if err := signtest.Verify(t, key.Public, filepath.Join(out, f), filepath.Join(out, f+".asc")); err != nil {
				t.Errorf("%s.asc: %v", f, err)
			}
		}
	}
}

// Off a terminal, progress goes to the log once per interval, with the
// share done, the sizes in MiB and the rate, and stops at end.
func TestProgressReportsEveryIntervalOffTerminal(t *testing.T) {
	lines := make(chan string, 100)
	p := startProgress("compressing a", 64<<20, nil, func(f string, a ...any) {
		select {
		case lines <- fmt.Sprintf(f, a...):
		default:
		}
	}, time.Millisecond)
	p.add(16 << 20)
	select {
	case l := <-lines:
		if !regexp.MustCompile(`^compressing a:  25% 16/64 MiB \d+ MiB/s$`).MatchString(l) {
			t.Errorf("progress line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no progress line within 5 s at a 1 ms interval")
	}
	p.end()
	for len(lines) > 0 {
		<-lines
	}
	time.Sleep(20 * time.Millisecond)
	if len(lines) != 0 {
		t.Errorf("progress lines after end: %q", <-lines)
	}
}

// sizedFile creates path as a sparse file of size bytes (all holes), open
// for writing until the test ends.
func sizedFile(t *testing.T, path string, size int64) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}
