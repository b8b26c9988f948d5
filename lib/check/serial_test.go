package check

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/lib/check/checktest"
)

func TestRewriteGRUB(t *testing.T) {
	in := "set default=0\n" +
		"menuentry 'a' {\n\tlinux /boot/vmlinuz root=LABEL=ostree rw quiet splash  \n\tinitrd /boot/initrd\n}\n" +
		"menuentry 'b' {\n  linux16 /boot/v ostree=/ostree/boot.1/x/1 console=ttyS0,115200n8\n}\n" +
		"menuentry 'c' {\nlinuxefi /boot/v quiet\n}\n" +
		"# linux /not/a/kernel line in a comment\n" +
		"menuentry 'd' {\n\tlinux /boot/v console=ttyS1 console=ttyS0\n}\n"
	out, changed, had := rewriteGRUB(in)
	if changed != 2 || had != 2 {
		t.Errorf("changed %d, had %d; want 2 and 2", changed, had)
	}
	want := strings.NewReplacer(
		"quiet splash  \n", "quiet splash console=ttyS0,115200\n",
		"linuxefi /boot/v quiet\n", "linuxefi /boot/v quiet console=ttyS0,115200\n").Replace(in)
	if out != want {
		t.Errorf("rewriteGRUB:\n%s\nwant:\n%s", out, want)
	}
	// Idempotent: a second pass changes nothing.
	if again, c, h := rewriteGRUB(out); again != out || c != 0 || h != 4 {
		t.Errorf("second pass changed %d lines (had %d)", c, h)
	}
	if _, c, h := rewriteGRUB("set timeout=5\n"); c != 0 || h != 0 {
		t.Errorf("a menu without kernel lines: changed %d, had %d", c, h)
	}
}

func TestRewriteBLS(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		changed, had   bool
	}{
		{"options", "title OS\nlinux /v\noptions root=LABEL=ostree rw quiet ostree=/ostree/boot.1/os/abc/0\n",
			"title OS\nlinux /v\noptions root=LABEL=ostree rw quiet ostree=/ostree/boot.1/os/abc/0 console=ttyS0,115200\n", true, false},
		{"present", "title OS\noptions quiet console=ttyS0\n", "title OS\noptions quiet console=ttyS0\n", false, true},
		{"present on an earlier options line", "options console=ttyS0,9600\noptions quiet\n", "options console=ttyS0,9600\noptions quiet\n", false, true},
		{"several options lines: the last gets it", "options a\noptions b\ninitrd /i\n", "options a\noptions b console=ttyS0,115200\ninitrd /i\n", true, false},
		{"other serial port", "options console=ttyS1\n", "options console=ttyS1 console=ttyS0,115200\n", true, false},
		{"no options line", "title OS\nlinux /v", "title OS\nlinux /v\noptions console=ttyS0,115200\n", true, false},
	} {
		out, changed, had := rewriteBLS(c.in)
		if out != c.want || changed != c.changed || had != c.had {
			t.Errorf("%s: got %q (changed %v, had %v), want %q (%v, %v)", c.name, out, changed, had, c.want, c.changed, c.had)
		}
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func sha(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

const (
	espStart  = 2048  // sectors
	espSize   = 16384 // sectors (8 MiB)
	rootStart = espStart + espSize
)

// entriesImage writes a 40 MiB GPT disk shaped like eib's: an ESP (FAT,
// loader/entries/*.conf as for systemd-boot) and an ext4 root holding
// boot/grub/grub.cfg and boot/loader -> loader.1/entries/*.conf (ostree's
// symlink). bls are the BLS entries' options lines (one file each), grub
// the kernel lines' arguments.
func entriesImage(t *testing.T, dir string, grub, bls []string) string {
	t.Helper()
	checktest.Need(t, "sfdisk", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy", "debugfs", "mtype")
	root := filepath.Join(dir, "root")
	entries := filepath.Join(root, "boot", "loader.1", "entries")
	must(t, os.MkdirAll(entries, 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755))
	must(t, os.Symlink("loader.1", filepath.Join(root, "boot", "loader")))
	var menu strings.Builder
	menu.WriteString("set default=0\n")
	for i, g := range grub {
		fmt.Fprintf(&menu, "menuentry 'OS %d' {\n\tlinux /boot/ostree/vmlinuz %s\n\tinitrd /boot/ostree/initramfs\n}\n", i, g)
	}
	must(t, os.WriteFile(filepath.Join(root, "boot", "grub", "grub.cfg"), []byte(menu.String()), 0o644))
	var confs []string
	for i, o := range bls {
		name := fmt.Sprintf("ostree-%d-os.conf", i+1)
		must(t, os.WriteFile(filepath.Join(entries, name), []byte(fmt.Sprintf("title OS %d\nlinux /ostree/vmlinuz\noptions %s\n", i, o)), 0o644))
		confs = append(confs, filepath.Join(entries, name))
	}
	img := filepath.Join(dir, "disk.img")
	must(t, os.WriteFile(img, nil, 0o644))
	must(t, os.Truncate(img, 40<<20))
	sf := exec.Command("sfdisk", "-q", img)
	sf.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=U\nstart=%d, type=L\n", espStart, espSize, rootStart))
	if out, err := sf.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	runTool(t, "mkfs.vfat", "--offset", fmt.Sprint(espStart), img, fmt.Sprint(espSize/2))
	esp := fmt.Sprintf("%s@@%d", img, espStart*512)
	runTool(t, "mmd", "-i", esp, "::/loader", "::/loader/entries")
	for _, c := range confs {
		runTool(t, "mcopy", "-i", esp, c, "::/loader/entries/"+filepath.Base(c))
	}
	runTool(t, "mkfs.ext4", "-q", "-d", root, "-E", fmt.Sprintf("offset=%d", rootStart*512), img, "24M")
	return img
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func extCat(t *testing.T, img, path string) string {
	return runTool(t, "debugfs", "-R", "cat "+path, fmt.Sprintf("%s?offset=%d", img, rootStart*512))
}

func fatCat(t *testing.T, img, path string) string {
	return runTool(t, "mtype", "-i", fmt.Sprintf("%s@@%d", img, espStart*512), "::"+path)
}

func TestWithSerialConsole(t *testing.T) {
	dir := t.TempDir()
	quiet := "root=LABEL=ostree rw splash plymouth.ignore-serial-consoles quiet loglevel=0 systemd.firstboot=no"
	img := entriesImage(t, dir, []string{quiet + " ostree=/ostree/boot.1/os/a/0", quiet + " ostree=/ostree/boot.1/os/b/0 console=ttyS0"},
		[]string{quiet + " ostree=/ostree/boot.1/os/a/0", quiet + " ostree=/ostree/boot.1/os/b/0"})
	before := sha(t, img)
	work := filepath.Join(dir, "work")
	must(t, os.Mkdir(work, 0o755))

	cc, err := WithSerialConsole(context.Background(), img, work)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha(t, img); got != before {
		t.Fatalf("the image changed: sha256 %s, was %s", got, before)
	}
	// 1 GRUB line (the other has it) + 2 BLS entries on ext4 + 2 on the ESP.
	if !cc.Copied || cc.Changed != 5 || cc.Had != 1 || cc.Image == img || filepath.Dir(cc.Image) != work {
		t.Fatalf("got %+v; want a copy in %s with 5 lines changed, 1 had it", cc, work)
	}
	t.Log(cc.Summary())
	if s := cc.Summary(); !strings.Contains(s, "added console=ttyS0,115200 to 5 boot entries of a throw-away copy (the image is unchanged") ||
		!strings.Contains(s, "partition 1 (fat):/loader/entries/ostree-1-os.conf") || !strings.Contains(s, "partition 2 (ext):/boot/grub/grub.cfg") {
		t.Errorf("summary: %s", s)
	}
	menu := extCat(t, cc.Image, "/boot/grub/grub.cfg")
	if strings.Count(menu, "console=ttyS0,115200") != 1 || !strings.Contains(menu, "os/a/0 console=ttyS0,115200\n") ||
		!strings.Contains(menu, "os/b/0 console=ttyS0\n") {
		t.Errorf("grub.cfg of the copy:\n%s", menu)
	}
	for _, n := range []string{"ostree-1-os.conf", "ostree-2-os.conf"} {
		for _, got := range []string{extCat(t, cc.Image, "/boot/loader/entries/"+n), fatCat(t, cc.Image, "/loader/entries/"+n)} {
			if !strings.Contains(got, "systemd.firstboot=no ostree=/ostree/boot.1/os/") || !strings.HasSuffix(got, "/0 console=ttyS0,115200\n") {
				t.Errorf("%s of the copy:\n%s", n, got)
			}
		}
	}
	// The file systems of the copy are consistent, and the rewritten
	// entry kept its mode and owner.
	runTool(t, "e2fsck", "-fn", fmt.Sprintf("%s?offset=%d", cc.Image, rootStart*512))
	espCopy := filepath.Join(dir, "esp.fat")
	runTool(t, "dd", "if="+cc.Image, "of="+espCopy, "bs=512", fmt.Sprintf("skip=%d", espStart), fmt.Sprintf("count=%d", espSize), "status=none")
	runTool(t, "fsck.vfat", "-n", espCopy)
	ls := runTool(t, "debugfs", "-R", "ls -p /boot/loader/entries", fmt.Sprintf("%s?offset=%d", cc.Image, rootStart*512))
	if !strings.Contains(ls, "/100644/0/0/ostree-1-os.conf/") {
		t.Errorf("mode or owner of the rewritten entry changed:\n%s", ls)
	}
	// The copy is sparse: it takes less space than its size.
	if fi, err := os.Stat(cc.Image); err != nil {
		t.Fatal(err)
	} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 >= fi.Size() {
		t.Errorf("the copy is not sparse: %d bytes allocated for %d", st.Blocks*512, fi.Size())
	}
	// A copy already edited needs nothing more: no second copy.
	again, err := WithSerialConsole(context.Background(), cc.Image, work)
	if err != nil {
		t.Fatal(err)
	}
	if again.Copied || again.Image != cc.Image || again.Changed != 0 || again.Had != 6 {
		t.Errorf("second pass: %+v", again)
	}
	if !strings.Contains(again.Summary(), "all 6 boot entries already have console=ttyS0") {
		t.Errorf("second pass summary: %s", again.Summary())
	}
	must(t, cc.Remove())
	if _, err := os.Stat(cc.Image); !os.IsNotExist(err) {
		t.Errorf("Remove left %s", cc.Image)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("left in the work directory: %v", left)
	}
}

// A qcow2 image is converted to a raw copy and edited the same way.
func TestWithSerialConsoleQCOW2(t *testing.T) {
	dir := t.TempDir()
	img := entriesImage(t, dir, []string{"root=LABEL=ostree quiet"}, []string{"root=LABEL=ostree quiet"})
	qc := filepath.Join(dir, "disk.qcow2")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", img, qc)
	before := sha(t, qc)
	cc, err := WithSerialConsole(context.Background(), qc, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Remove()
	if sha(t, qc) != before {
		t.Error("the qcow2 image changed")
	}
	if !cc.Copied || cc.Changed != 3 {
		t.Errorf("got %+v; want a raw copy with 3 lines changed", cc)
	}
	if got := extCat(t, cc.Image, "/boot/grub/grub.cfg"); !strings.Contains(got, "quiet console=ttyS0,115200\n") {
		t.Errorf("grub.cfg of the copy:\n%s", got)
	}
}

// An image with nothing to edit (no file system eib knows, as the GRUB-only
// test images) is booted as it is, and nothing is copied.
func TestWithSerialConsoleNothingToEdit(t *testing.T) {
	dir := t.TempDir()
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{"x"}, "halt"))
	work := filepath.Join(dir, "work")
	must(t, os.Mkdir(work, 0o755))
	cc, err := WithSerialConsole(context.Background(), img, work)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Copied || cc.Image != img || cc.Changed != 0 {
		t.Errorf("got %+v", cc)
	}
	if !strings.Contains(cc.Summary(), "no GRUB menu or boot loader entry found") {
		t.Errorf("summary: %s", cc.Summary())
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("left in the work directory: %v", left)
	}
}

// A missing image is an error naming it.
func TestWithSerialConsoleMissing(t *testing.T) {
	_, err := WithSerialConsole(context.Background(), "/nonexistent/disk.img", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/disk.img") {
		t.Errorf("got %v", err)
	}
}

// With console=ttyS0 and quiet arguments, a systemd OS prints little
// before serial-getty's prompt (no newline after it): the default marker
// matches the prompt, and no earlier line of such a boot.
func TestDefaultMarkerFitsAQuietSystemdBoot(t *testing.T) {
	before := "[    0.000000] Linux version 6.1.0-28-amd64\r\n" +
		"systemd-logind[301]: New seat seat0.\r\n" +
		"[  OK  ] Started serial-getty@ttyS0.service - Serial Getty on ttyS0.\r\n" +
		"\r\n\x1b[H\x1b[2J\rDebian GNU/Linux 12 debian ttyS0\r\n\r\n"
	c := newConsole(regexp.MustCompile(DefaultMarker))
	if c.write([]byte(before)) {
		t.Fatalf("the default marker %q matched before the login prompt", DefaultMarker)
	}
	if !c.write([]byte("debian login: ")) {
		t.Errorf("the default marker %q does not match serial-getty's prompt", DefaultMarker)
	}
}
