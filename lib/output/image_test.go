package output_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
)

// rawImage writes a small file shaped like a disk image: text, random
// bytes and a zero-filled (sparse) tail.
func rawImage(t testing.TB, dir string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	text := []byte("GRUB ostree deployment /usr/lib/os-release\n")
	for i := 0; i < size/3; i += len(text) {
		copy(data[i:min(i+len(text), size/3)], text)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := size / 3; i < 2*size/3; i++ {
		data[i] = byte(r.Uint32())
	}
	p := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(p, data[:2*size/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, int64(size)); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does)", tool)
		}
	}
}

func runIn(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if len(tmp) != 0 {
		t.Errorf("temporary files left in %s: %q", dir, tmp)
	}
}

func TestImageOutputsVerifyWithTheRealTools(t *testing.T) {
	need(t, "sha256sum", "gpg", "zstd", "xz", "gzip")
	for _, tc := range []struct {
		c         output.Compression
		inProcess bool
		size      int // xz is slow on random bytes: a smaller image
		test, dec []string
	}{
		{output.Zstd, false, 24 << 20, []string{"zstd", "-t", "-q"}, []string{"zstd", "-d", "-q", "-c"}},
		{output.Zstd, true, 24 << 20, []string{"zstd", "-t", "-q"}, []string{"zstd", "-d", "-q", "-c"}},
		{output.Gzip, false, 24 << 20, []string{"gzip", "-t"}, []string{"gzip", "-d", "-c"}},
		{output.XZ, false, 3 << 20, []string{"xz", "-t"}, []string{"xz", "-d", "-c"}},
	} {
		name := string(tc.c)
		if tc.inProcess {
			name += "-in-process"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			key := signtest.NewKey(t, dir, "")
			signer, err := sign.New(sign.Options{KeyFile: key.Secret}, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			raw, data := rawImage(t, dir, tc.size)
			out := filepath.Join(dir, "out")
			os.Mkdir(out, 0o755)
			var logged []string
			im := output.Image{Raw: raw, OutDir: out, Name: "os-1.img", Compression: tc.c, Signer: signer,
				InProcess: tc.inProcess, Logf: func(f string, a ...any) { logged = append(logged, f) }}
			res, err := im.Write(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			comp := "os-1.img." + string(tc.c)
			wantFiles := []string{"os-1.img.asc", "os-1.img.sha256", comp, comp + ".asc", comp + ".sha256", comp + ".size"}
			ents, _ := os.ReadDir(out)
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			sort.Strings(wantFiles)
			if strings.Join(got, " ") != strings.Join(wantFiles, " ") {
				t.Errorf("outdir holds %q, want %q", got, wantFiles)
			}
			if strings.Join(res.Files(), " ") != strings.Join([]string{comp, comp + ".size", comp + ".sha256", comp + ".asc", "os-1.img.sha256", "os-1.img.asc"}, " ") {
				t.Errorf("Result.Files() = %q", res.Files())
			}

			runIn(t, out, tc.test[0], append(tc.test[1:], comp)...)
			// Decompress with the real tool: the bytes are the raw image's.
			dec := exec.Command(tc.dec[0], append(tc.dec[1:], comp)...)
			dec.Dir = out
			plain, err := dec.Output()
			if err != nil {
				t.Fatalf("%s: %v", strings.Join(tc.dec, " "), err)
			}
			if !bytes.Equal(plain, data) {
				t.Fatalf("decompressed %d bytes differ from the %d-byte raw image", len(plain), len(data))
			}
			// The checksums of both files, as sha256sum -c sees them.
			if err := os.WriteFile(filepath.Join(out, "os-1.img"), plain, 0o644); err != nil {
				t.Fatal(err)
			}
			runIn(t, out, "sha256sum", "-c", comp+".sha256", "os-1.img.sha256")
			sum := sha256.Sum256(data)
			if res.Raw.SHA256 != hex.EncodeToString(sum[:]) || res.Raw.Size != int64(len(data)) {
				t.Errorf("raw result %+v, want size %d sha256 %x", res.Raw, len(data), sum)
			}
			line, _ := os.ReadFile(filepath.Join(out, "os-1.img.sha256"))
			if string(line) != hex.EncodeToString(sum[:])+"  os-1.img\n" {
				t.Errorf("os-1.img.sha256 = %q", line)
			}
			st, _ := os.Stat(filepath.Join(out, comp))
			if res.Compressed.Size != st.Size() || res.Compressed.Path != filepath.Join(out, comp) {
				t.Errorf("compressed result %+v, file size %d", res.Compressed, st.Size())
			}
			if st.Size() >= int64(len(data))/2 {
				t.Errorf("%s is %d bytes: not compressed", comp, st.Size())
			}
			size, _ := os.ReadFile(filepath.Join(out, comp+".size"))
			if string(size) != strconv.Itoa(len(data))+"\n" {
				t.Errorf("%s.size = %q, want %d", comp, size, len(data))
			}
			// Both signatures verify with gpg and the public key.
			for _, f := range []string{comp, "os-1.img"} {
				if err := signtest.Verify(t, key.Public, filepath.Join(out, f), filepath.Join(out, f+".asc")); err != nil {
					t.Errorf("%s.asc: %v", f, err)
				}
			}
			// A signature of one file does not verify the other.
			if err := signtest.Verify(t, key.Public, filepath.Join(out, "os-1.img"), filepath.Join(out, comp+".asc")); err == nil {
				t.Errorf("%s.asc verifies os-1.img", comp)
			}
			noTempFiles(t, out)
			if len(logged) == 0 {
				t.Error("nothing logged")
			}
		})
	}
}

func TestImageOutputsWithoutSignerHaveNoSignatures(t *testing.T) {
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 1<<20)
	res, err := output.Image{Raw: raw, OutDir: dir, Name: "x.img", Compression: output.Gzip}.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Raw.SignatureFile != "" || res.Compressed.SignatureFile != "" {
		t.Errorf("signature files named without a signer: %+v", res)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.asc")); len(m) != 0 {
		t.Errorf("signatures written without a signer: %q", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img.gz.sha256")); err != nil {
		t.Error(err)
	}
}

func TestFailedWriteLeavesNoFiles(t *testing.T) {
	need(t, "gpg")
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 8<<20)
	home, err := os.MkdirTemp("", "eib-gh-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	}()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)

	// gpg with a key it does not have: it fails while the image streams.
	bad := &sign.GPG{KeyID: "nobody@eib.invalid", Home: home}
	_, err = output.Image{Raw: raw, OutDir: out, Name: "x.img", Compression: output.Zstd, Signer: bad}.Write(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nobody@eib.invalid") {
		t.Fatalf("error %v, want gpg's complaint naming the key", err)
	}
	// A cancelled build.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (output.Image{Raw: raw, OutDir: out, Name: "x.img", Compression: output.XZ}).Write(ctx); err == nil {
		t.Fatal("a cancelled write succeeded")
	}
	// A bad compression and a missing raw image.
	if _, err := (output.Image{Raw: raw, OutDir: out, Compression: "bz2"}).Write(context.Background()); err == nil || !strings.Contains(err.Error(), "not one of gz, xz, zst") {
		t.Errorf("compression bz2: error %v", err)
	}
	if _, err := (output.Image{Raw: raw + ".absent", OutDir: out, Compression: output.Zstd}).Write(context.Background()); err == nil || !strings.Contains(err.Error(), raw+".absent") {
		t.Errorf("missing raw image: error %v, want one naming it", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed writes left %d files in outdir, e.g. %s", len(ents), ents[0].Name())
	}
}

func TestProgressBarOnTerminal(t *testing.T) {
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 2<<20)
	var term bytes.Buffer
	_, err := output.Image{Raw: raw, OutDir: dir, Name: "x.img", Compression: output.Zstd, Terminal: &term}.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(term.String(), "\r[##############################] ") || !strings.Contains(term.String(), "100% 2/2 MiB") {
		t.Errorf("terminal got %q, want a full bar at 100%%", term.String())
	}
}

func TestQCOW2HasTenMoreGiB(t *testing.T) {
	need(t, "qemu-img")
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 6<<20)
	q := filepath.Join(dir, "x.qcow2")
	f, err := output.WriteQCOW2(context.Background(), raw, q)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Format      string `json:"format"`
	}
	if err := json.Unmarshal([]byte(runIn(t, dir, "qemu-img", "info", "--output=json", q)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.VirtualSize != 6<<20+10<<30 {
		t.Errorf("qemu-img info: %+v, want qcow2 of %d bytes", info, 6<<20+10<<30)
	}
	// Same content, and zeros beyond the raw image's end.
	runIn(t, dir, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, q)
	st, _ := os.Stat(q)
	if f.Size != st.Size() || f.Name != "x.qcow2" || len(f.SHA256) != 64 {
		t.Errorf("result %+v, file size %d", f, st.Size())
	}
	noTempFiles(t, dir)
	// A failing qemu-img leaves no file.
	if _, err := output.WriteQCOW2(context.Background(), raw+".absent", q+"2"); err == nil || !strings.Contains(err.Error(), "qemu-img convert") {
		t.Errorf("error %v, want qemu-img's", err)
	}
	if _, err := os.Stat(q + "2"); !os.IsNotExist(err) {
		t.Error("failed conversion left its output")
	}
	noTempFiles(t, dir)
}

func TestSignFileWritesVerifiableSignature(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "")
	signer, err := sign.New(sign.Options{KeyFile: key.Secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "manifest.json")
	os.WriteFile(f, []byte(`{"images": {}}`), 0o644)
	if err := output.SignFile(context.Background(), signer, f, ""); err != nil {
		t.Fatal(err)
	}
	if err := signtest.Verify(t, key.Public, f, f+".asc"); err != nil {
		t.Fatal(err)
	}
	if err := output.SignFile(context.Background(), nil, f, ""); err == nil {
		t.Error("signing without a key succeeded")
	}
	noTempFiles(t, dir)
}

func TestProgressLogLinesOffTerminal(t *testing.T) {
	dir := t.TempDir()
	raw, _ := rawImage(t, dir, 16<<20)
	var lines []string
	var mu sync.Mutex
	logf := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(f, a...))
	}
	_, err := output.Image{Raw: raw, OutDir: dir, Name: "x.img", Compression: output.Zstd, Logf: logf, LogInterval: time.Millisecond}.Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// How many progress lines a fast compression has time for is up to
	// the scheduler (TestProgressReportsEveryIntervalOffTerminal counts
	// them): each one there is must have the form, and the summary ends.
	progress := regexp.MustCompile(`^compressing disk\.raw to x\.img\.zst: +\d+% \d+/16 MiB \d+ MiB/s$`)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "compressing ") || !strings.Contains(lines[0], "with zstd") {
		t.Fatalf("lines %q: want the compressor's command line first", lines)
	}
	for _, l := range lines[1 : len(lines)-1] {
		if !progress.MatchString(l) {
			t.Errorf("line %q is neither a progress line nor the summary", l)
		}
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "wrote x.img.zst: 16 MiB -> ") {
		t.Errorf("last line %q, want the summary", last)
	}
}
