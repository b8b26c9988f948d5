package check

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// compress writes tool -c img into img+suffix.
func compress(t *testing.T, tool, img, dst string) string {
	t.Helper()
	if out, err := exec.Command("sh", "-c", tool+` -c "$1" > "$2"`, "sh", img, dst).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", tool, err, out)
	}
	return dst
}

func copyTo(t *testing.T, src, dst string) string {
	t.Helper()
	if err := copyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func randomFile(t *testing.T, path string, size int) string {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDetectImageRecognizesDisksByContent(t *testing.T) {
	for _, tool := range []string{"sfdisk", "gzip", "xz", "zstd", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps): %v", tool, err)
		}
	}
	dir := t.TempDir()
	gpt := sfdiskImage(t, dir, "gpt.img", "label: gpt\nsize=1MiB, type="+gptESP+"\ntype=linux\n")
	dos := sfdiskImage(t, dir, "dos.img", "label: dos\ntype=83\n")
	// A GPT disk with 4096-byte sectors: the header is in LBA 1 at 4096,
	// and no protective MBR signature here.
	gpt4k := filepath.Join(dir, "gpt4k.img")
	b := make([]byte, 64<<10)
	copy(b[4096:], "EFI PART")
	os.WriteFile(gpt4k, b, 0o644)
	qcow := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qcow, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	for _, tc := range []struct {
		path string
		want Format
	}{
		{gpt, FormatRaw},
		{dos, FormatRaw},
		{gpt4k, FormatRaw},
		{qcow, FormatQCOW2},
		{compress(t, "gzip", gpt, gpt+".gz"), FormatGzip},
		{compress(t, "xz", gpt, gpt+".xz"), FormatXz},
		{compress(t, "zstd", dos, dos+".zst"), FormatZstd},
		// The content decides, not the name.
		{compress(t, "gzip", gpt, filepath.Join(dir, "named-raw.img")), FormatGzip},
		{copyTo(t, gpt, filepath.Join(dir, "named-gz.img.gz")), FormatRaw},
	} {
		got, err := DetectImage(context.Background(), tc.path)
		if err != nil || got != tc.want {
			t.Errorf("DetectImage(%s) = %q, %v; want %q", filepath.Base(tc.path), got, err, tc.want)
		}
	}
}

func TestDetectImageRefusesWhatIsNoDisk(t *testing.T) {
	for _, tool := range []string{"sfdisk", "gzip", "bzip2", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make deps): %v", tool, err)
		}
	}
	dir := t.TempDir()
	disk := sfdiskImage(t, dir, "disk.img", "label: gpt\ntype=linux\n")
	iso := filepath.Join(dir, "cd.iso")
	b := make([]byte, 64<<10)
	copy(b[0x8000:], "\x01CD001\x01")
	os.WriteFile(iso, b, 0o644)
	empty := filepath.Join(dir, "empty.img")
	os.WriteFile(empty, nil, 0o644)
	fifo := filepath.Join(dir, "pipe.img")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.img")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	randomGz := compress(t, "gzip", randomFile(t, filepath.Join(dir, "random-inner"), 64<<10), filepath.Join(dir, "random.img.gz"))
	// Cut before its first 32 KiB expand: refused at once.
	truncated := filepath.Join(dir, "truncated.img.zst")
	full, _ := os.ReadFile(compress(t, "zstd", disk, disk+".zst"))
	os.WriteFile(truncated, full[:12], 0o644)
	zeros := filepath.Join(dir, "zeros.img")
	os.WriteFile(zeros, make([]byte, 1<<20), 0o644)

	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"random", randomFile(t, filepath.Join(dir, "random.img"), 1<<20), []string{notDisk}},
		{"bzip2", compress(t, "bzip2", disk, disk+".bz2"), []string{notDisk, "bzip2"}},
		{"ISO", iso, []string{notDisk, "ISO 9660"}},
		{"zeros", zeros, []string{notDisk, "all zero"}},
		{"empty", empty, []string{"not a disk image: an empty file"}},
		{"directory", dir, []string{"not a disk image: a directory"}},
		{"FIFO", fifo, []string{"not a disk image: a FIFO"}},
		{"socket", sock, []string{"not a disk image: a socket"}},
		{"missing", filepath.Join(dir, "nothere.img"), []string{"no such file"}},
		{"named zst", randomFile(t, filepath.Join(dir, "liar.img.zst"), 4096), []string{notDisk, "ends in .zst, but it does not hold zstd data"}},
		{"gzip of random", randomGz, []string{"not a disk image: gzip data whose content has no MBR or GPT partition table"}},
		{"truncated zstd", truncated, []string{"not a disk image: zstd data that does not expand"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan struct{})
			var got Format
			var err error
			go func() {
				defer close(done)
				got, err = DetectImage(context.Background(), tc.path)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("DetectImage(%s) blocked", tc.path)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("DetectImage(%s) = %q, %v; want an *InputError", tc.path, got, err)
			}
			if ie.Path != tc.path || !strings.HasPrefix(err.Error(), tc.path+": ") {
				t.Errorf("error %q does not name the path %s first", err, tc.path)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPrepareImageGoesByContent(t *testing.T) {
	dir := t.TempDir()
	disk := sfdiskImage(t, dir, "disk.img", "label: gpt\ntype=linux\n")
	want := fileSum(t, disk)
	// gzip data under a raw name is expanded all the same.
	gz := compress(t, "gzip", disk, filepath.Join(dir, "looks-raw.img"))
	work := t.TempDir()
	raw, remove, err := PrepareImage(context.Background(), gz, work)
	if err != nil {
		t.Fatal(err)
	}
	if raw == gz || fileSum(t, raw) != want {
		t.Fatalf("PrepareImage(%s) = %s: want an expanded copy equal to the disk", gz, raw)
	}
	if err := remove(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Fatalf("left in %s after remove: %v", work, left)
	}
	// Data cut after its head passes DetectImage, and fails to expand:
	// an InputError, and no partial copy left.
	full, _ := os.ReadFile(compress(t, "zstd", disk, disk+".zst"))
	cut := filepath.Join(dir, "cut.img.zst")
	os.WriteFile(cut, full[:len(full)-8], 0o644)
	if _, err := DetectImage(context.Background(), cut); err != nil {
		t.Fatalf("DetectImage(%s): %v (its head is whole)", cut, err)
	}
	_, _, err = PrepareImage(context.Background(), cut, work)
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), cut+": zstd data that does not expand") {
		t.Fatalf("PrepareImage(%s) err = %v, want an InputError: zstd data that does not expand", cut, err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Fatalf("partial copy left in %s: %v", work, left)
	}
	// A FIFO is refused without blocking on it.
	fifo := filepath.Join(dir, "pipe.img.gz")
	syscall.Mkfifo(fifo, 0o644)
	done := make(chan error, 1)
	go func() { _, _, err := PrepareImage(context.Background(), fifo, work); done <- err }()
	select {
	case err := <-done:
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "a FIFO") {
			t.Fatalf("PrepareImage(FIFO) err = %v, want an InputError naming a FIFO", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("PrepareImage blocked on a FIFO")
	}
}

func TestOverlayOfAQCOW2ImageIsBackedAsQCOW2(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatalf("qemu-img is needed (make deps): %v", err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", base, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	for _, tc := range []struct{ backing, want string }{
		{base, `"backing-filename-format": "qcow2"`},
		{sfdiskImage(t, dir, "disk.img", "label: gpt\ntype=linux\n"), `"backing-filename-format": "raw"`},
	} {
		overlay := filepath.Join(dir, filepath.Base(tc.backing)+".overlay")
		if err := createOverlay(context.Background(), tc.backing, overlay); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("qemu-img", "info", "--output=json", overlay).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("overlay of %s: %v\n%s\nwant %s", tc.backing, err, out, tc.want)
		}
	}
}

func TestPrepareImageCancelledLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	disk := sfdiskImage(t, dir, "disk.img", "label: gpt\ntype=linux\n")
	xz := compress(t, "xz", disk, disk+".xz")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as a SIGINT does through eib's signal context
	work := t.TempDir()
	_, _, err := PrepareImage(ctx, xz, work)
	var ie *InputError
	if err == nil || errors.As(err, &ie) || !errors.Is(err, context.Canceled) {
		t.Fatalf("PrepareImage with a cancelled context: %v; want context.Canceled, not an input error", err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Fatalf("left in %s: %v", work, left)
	}
	if _, err := DetectImage(ctx, xz); err == nil || errors.As(err, &ie) {
		t.Fatalf("DetectImage with a cancelled context: %v; want an error that is no input error", err)
	}
}

// A decompressor killed by a terminal's signal (a Ctrl-C reaches it in
// eib's process group before eib's own handler ends the run) is an
// interruption, not corrupt data: no InputError, which check-image would
// report as "not a disk image" (exit 1) about a good image. A crash on
// the data stays an InputError.
func TestDecompressorKilledBySignalIsNoInputError(t *testing.T) {
	dir := t.TempDir()
	disk := sfdiskImage(t, dir, "disk.img", "label: gpt\ntype=linux\n")
	zst := compress(t, "zstd", disk, disk+".zst")
	real, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	for _, c := range []struct {
		sig   string
		input bool // the error is an InputError
	}{{"INT", false}, {"TERM", false}, {"SEGV", true}} {
		script := "#!/bin/sh\nkill -" + c.sig + " $$\nsleep 5\nexec " + real + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(bin, "zstd"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		_, _, err := PrepareImage(context.Background(), zst, t.TempDir())
		// DetectImage's look at the head, the same way.
		_, derr := DetectImage(context.Background(), zst)
		var die *InputError
		if derr == nil || errors.As(derr, &die) != c.input {
			t.Errorf("SIG%s: DetectImage err = %v, want an InputError: %v", c.sig, derr, c.input)
		}
		var ie *InputError
		if err == nil || errors.As(err, &ie) != c.input {
			t.Errorf("SIG%s: PrepareImage err = %v, want an InputError: %v", c.sig, err, c.input)
		}
		if !c.input && !strings.Contains(fmt.Sprint(err), "interrupted: the decompressor was killed by") {
			t.Errorf("SIG%s: error %q does not say it was interrupted", c.sig, err)
		}
	}
}
