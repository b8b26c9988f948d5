package disk_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/lib/disk"
)

// TestMetadataSurvivesTheImage puts hardlinks, xattrs (user. and
// security.capability), setuid files, device nodes, a fifo, a symlink and
// odd owners through the image and reads them back with debugfs; the
// deployment root is immutable again, the root directory carries the
// version xattr and e2fsck -fn is clean (Assemble runs it).
func TestMetadataSurvivesTheImage(t *testing.T) {
	needTools(t, "grub-mkimage", "setfattr", "mknod")
	f := newSysroot(t, t.TempDir())
	sh(t, "chattr", "-i", f.deployment)
	d := f.deployment
	writeFile(t, filepath.Join(d, "usr/bin/su"), "setuid", 0o4755)
	writeFile(t, filepath.Join(d, "usr/bin/wall"), "setgid", 0o2755)
	writeFile(t, filepath.Join(d, "usr/bin/ping"), "capability", 0o755)
	// cap_net_raw+ep, a VFS_CAP_REVISION_2 value.
	capValue := "0x0000000200200000000000000000000000000000"
	sh(t, "setfattr", "-n", "security.capability", "-v", capValue, filepath.Join(d, "usr/bin/ping"))
	sh(t, "setfattr", "-n", "user.colour", "-v", "blue", filepath.Join(d, "etc/os-release"))
	writeFile(t, filepath.Join(d, "home/odd/file"), "odd", 0o640)
	must(t, os.Chown(filepath.Join(d, "home/odd/file"), 12345, 54321))
	must(t, os.Chown(filepath.Join(d, "home/odd"), 12345, 54321))
	must(t, os.MkdirAll(filepath.Join(d, "dev"), 0o755))
	must(t, syscall.Mknod(filepath.Join(d, "dev/null"), syscall.S_IFCHR|0o666, int(1<<8|3)))
	must(t, syscall.Mknod(filepath.Join(d, "dev/loop9"), syscall.S_IFBLK|0o660, int(7<<8|9)))
	must(t, syscall.Mkfifo(filepath.Join(d, "dev/fifo"), 0o600))
	must(t, os.Symlink("../usr/bin/hello", filepath.Join(d, "etc/hello-link")))
	must(t, os.Link(filepath.Join(d, "usr/bin/su"), filepath.Join(d, "usr/bin/su-hardlink")))
	sh(t, "chattr", "+i", f.deployment)

	plan, img := build(t, f, disk.Params{Arch: "amd64", RootfsResize: true}, rootBytes, disk.RandomIDs(), -1, nil)
	root := plan.Root()
	dep := f.deploymentRel()
	stat := func(p string) string { return debugfs(t, img, root, "stat "+dep+p) }
	field := func(out, re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s in debugfs output:\n%s", re, out)
		}
		return m[1]
	}

	// Hardlinks: the deployment file, its repo object and the extra link
	// are one inode with three links.
	hello := stat("/usr/bin/hello")
	if got := field(hello, `Links: (\d+)`); got != "2" {
		t.Errorf("/usr/bin/hello has %s links, want 2 (deployment + repo object)", got)
	}
	obj := debugfs(t, img, root, "stat /ostree/repo/objects/ab/cdef.file")
	if field(hello, `Inode: (\d+)`) != field(obj, `Inode: (\d+)`) {
		t.Errorf("the repo object and the deployment file are different inodes")
	}
	if a, b := field(stat("/usr/bin/su"), `Inode: (\d+)`), field(stat("/usr/bin/su-hardlink"), `Inode: (\d+)`); a != b {
		t.Errorf("su and su-hardlink are inodes %s and %s", a, b)
	}
	// Modes, owners, setuid/setgid.
	if got := field(stat("/usr/bin/su"), `Mode:\s+(\d+)`); got != "04755" {
		t.Errorf("su mode %s, want 04755", got)
	}
	if got := field(stat("/usr/bin/wall"), `Mode:\s+(\d+)`); got != "02755" {
		t.Errorf("wall mode %s, want 02755", got)
	}
	odd := stat("/home/odd/file")
	if u, g := field(odd, `User:\s+(\d+)`), field(odd, `Group:\s+(\d+)`); u != "12345" || g != "54321" {
		t.Errorf("odd owner %s:%s, want 12345:54321", u, g)
	}
	// Xattrs.
	if got := debugfs(t, img, root, "ea_get "+dep+"/etc/os-release user.colour"); !strings.Contains(got, "blue") {
		t.Errorf("user.colour: %q", got)
	}
	if got := debugfs(t, img, root, "ea_get -x "+dep+"/usr/bin/ping security.capability"); !strings.Contains(strings.ReplaceAll(got, " ", ""), "0000000200200000") {
		t.Errorf("security.capability: %q", got)
	}
	// Device nodes, fifo, symlink.
	null := stat("/dev/null")
	if !strings.Contains(null, "Type: character special") || !strings.Contains(null, "Device major/minor number: 01:03") {
		t.Errorf("/dev/null:\n%s", null)
	}
	loop := stat("/dev/loop9")
	if !strings.Contains(loop, "Type: block special") || !strings.Contains(loop, "07:09") {
		t.Errorf("/dev/loop9:\n%s", loop)
	}
	if !strings.Contains(stat("/dev/fifo"), "Type: FIFO") {
		t.Errorf("/dev/fifo is not a FIFO")
	}
	if !strings.Contains(stat("/etc/hello-link"), `Fast link dest: "../usr/bin/hello"`) {
		t.Errorf("symlink target lost:\n%s", stat("/etc/hello-link"))
	}
	// Immutable deployment root, version xattr.
	flags := field(debugfs(t, img, root, "stat "+dep), `Flags: 0x([0-9a-f]+)`)
	if !hasBit(flags, 0x10) {
		t.Errorf("deployment root flags 0x%s: no immutable bit (0x10)", flags)
	}
	if got := debugfs(t, img, root, "ea_get / user.eos-image-version"); !strings.Contains(got, "demo-amd64-amd64.260101-000000.base") {
		t.Errorf("user.eos-image-version: %q", got)
	}
	// grub.cfg went into the image.
	cfg := debugfs(t, img, root, "cat /boot/grub/grub.cfg")
	if !strings.Contains(cfg, "serial --unit=0 --speed=115200") {
		t.Errorf("grub.cfg has no serial console:\n%s", cfg)
	}
}

func hasBit(hex string, bit uint64) bool {
	var v uint64
	for _, c := range hex {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint64(c-'a') + 10
		}
	}
	return v&bit != 0
}

// TestInodeTablesMarkedZeroed checks that the root filesystem needs no
// lazy inode table initialisation on first boot.
func TestInodeTablesMarkedZeroed(t *testing.T) {
	needTools(t, "grub-mkimage", "dumpe2fs")
	f := newSysroot(t, t.TempDir())
	plan, img := build(t, f, disk.Params{Arch: "arm64"}, rootBytes, disk.RandomIDs(), -1, nil)
	out := sh(t, "dumpe2fs", img+"?offset="+itoa(plan.Root().Offset()))
	// "Group N: (Blocks ...)" lines, not "Group descriptor size:" (64bit).
	groups := len(regexp.MustCompile(`\nGroup [0-9]+: `).FindAllString(out, -1))
	if zeroed := strings.Count(out, "ITABLE_ZEROED"); groups == 0 || zeroed != groups {
		t.Errorf("%d of %d block groups have ITABLE_ZEROED", zeroed, groups)
	}
}

// TestRootFeaturesDoNotFollowTheHostConfig builds with a host mke2fs.conf
// that asks for other features and checks the root filesystem has eib's.
func TestRootFeaturesDoNotFollowTheHostConfig(t *testing.T) {
	needTools(t, "dumpe2fs")
	hostConf := filepath.Join(t.TempDir(), "mke2fs.conf")
	must(t, os.WriteFile(hostConf, []byte("[fs_types]\n\text4 = {\n\t\tfeatures = has_journal,extent,orphan_file,metadata_csum_seed\n\t\tinode_size = 128\n\t}\n"), 0o644))
	t.Setenv("MKE2FS_CONFIG", hostConf)
	f := newSysroot(t, t.TempDir())
	plan, img := build(t, f, disk.Params{Arch: "arm64"}, rootBytes, disk.RandomIDs(), -1, nil)
	out := sh(t, "dumpe2fs", "-h", img+"?offset="+itoa(plan.Root().Offset()))
	m := regexp.MustCompile(`Filesystem features:\s+(.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no features in dumpe2fs -h:\n%s", out)
	}
	got := strings.Fields(m[1])
	want := []string{"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "extent", "64bit", "flex_bg",
		"sparse_super", "large_file", "huge_file", "dir_nlink", "extra_isize", "metadata_csum"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("root filesystem features\n got %v\nwant %v (EIB's since f934a3b: 64bit and huge_file on arm64 too)", got, want)
	}
	if !strings.Contains(out, "Inode size:\t          256") {
		t.Errorf("inode size is not 256:\n%s", out)
	}
}
