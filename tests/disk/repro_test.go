package disk_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/disk"
)

// TestReproducibleImagesAreByteIdentical builds the same sysroot content
// twice, from two trees made at different times (other ctimes, atimes and
// mtimes), and compares the raw images with cmp. A third build without the
// seed must differ, or the test would prove nothing.
func TestReproducibleImagesAreByteIdentical(t *testing.T) {
	needTools(t, "grub-mkimage", "cmp")
	for _, p := range []disk.Params{
		{Arch: "amd64", RootfsResize: true},
		{Arch: "amd64", SDBoot: true},
		{Arch: "amd64", PartitionTable: disk.DOS, RootfsResize: true},
	} {
		name := string(p.PartitionTable) + map[bool]string{true: "sdboot", false: "grub"}[p.SDBoot]
		t.Run(name, func(t *testing.T) {
			seed := disk.SeededIDs("demo-amd64-amd64.260101-000000.base\x00" + deplCsum)
			const epoch = 1700000000
			var imgs []string
			for i := 0; i < 2; i++ {
				f := newSysroot(t, t.TempDir())
				_, img := build(t, f, p, rootBytes, seed, epoch, nil)
				imgs = append(imgs, img)
				time.Sleep(1100 * time.Millisecond)
			}
			if out, err := exec.Command("cmp", imgs[0], imgs[1]).CombinedOutput(); err != nil {
				t.Fatalf("two reproducible builds differ: %s", strings.TrimSpace(string(out)))
			}
			f := newSysroot(t, filepath.Join(t.TempDir()))
			_, other := build(t, f, p, rootBytes, disk.RandomIDs(), -1, nil)
			if exec.Command("cmp", "-s", imgs[0], other).Run() == nil {
				t.Fatal("a non-reproducible build made the same bytes: the comparison proves nothing")
			}
		})
	}
}

// orderedTree adds to f's deployment and /boot a tree whose directory
// entries, hardlinks and xattrs are created in the order of its names, or
// in the reverse order: names that byte order and a locale's collation
// sort differently, a directory of more than one block, hardlinks whose
// first-made name differs, xattrs set in opposite orders, kernels and boot
// entries for the ESP and grub.cfg.
func orderedTree(t *testing.T, f fixture, reverse bool) {
	t.Helper()
	sh(t, "chattr", "-i", f.deployment)
	defer sh(t, "chattr", "+i", f.deployment)
	order := func(s []string) []string {
		s = slices.Clone(s)
		if reverse {
			slices.Reverse(s)
		}
		return s
	}
	dir := filepath.Join(f.deployment, "usr", "share", "order")
	var names []string
	for i := 0; i < 12; i++ {
		for _, p := range []string{"a", "B", "_c", "é", "Z-", "z", "long-" + strings.Repeat("x", 90)} {
			names = append(names, fmt.Sprintf("%s%02d", p, i))
		}
	}
	for _, n := range order(names) {
		if strings.HasPrefix(n, "B") {
			must(t, os.MkdirAll(filepath.Join(dir, n, "sub"), 0o755))
			writeFile(t, filepath.Join(dir, n, "sub", "f"), n, 0o644)
			continue
		}
		writeFile(t, filepath.Join(dir, n), "content of "+n+"\n", 0o644)
	}
	// Hardlinks: which name is made first differs, across directories too.
	links := order([]string{filepath.Join(dir, "hard-1"), filepath.Join(dir, "hard-2"), filepath.Join(f.deployment, "usr", "lib", "hard-3")})
	writeFile(t, links[0], "one inode, three names\n", 0o644)
	for _, l := range links[1:] {
		must(t, os.MkdirAll(filepath.Dir(l), 0o755))
		must(t, os.Link(links[0], l))
	}
	for _, target := range []string{filepath.Join(dir, "a00"), dir} {
		for _, a := range order([]string{"user.alpha", "user.beta", "user.gamma", "trusted.delta"}) {
			sh(t, "setfattr", "-n", a, "-v", "value-of-"+a, target)
		}
	}
	for _, n := range order([]string{"s1", "s2", "s3"}) {
		must(t, os.Symlink("../order/"+n+"-target", filepath.Join(dir, "sym-"+n)))
	}
	// Kernel files (systemd-boot copies all of /boot/ostree to the ESP:
	// B.dtb and b.dtb are one FAT name, the last copied wins) and boot
	// entries of the same version (grub.cfg's order).
	kdir := filepath.Join(f.sysroot, "boot", "ostree", osName+"-"+bootCsum)
	for _, n := range order([]string{"dtb/b.dtb", "dtb/a.dtb", "dtb/B.dtb", "dtb/_c.dtb", "dtb/é-board-rev2.dtb", "initramfs-extra.img"}) {
		writeFile(t, filepath.Join(kdir, n), n, 0o644)
	}
	entries := filepath.Join(f.sysroot, "boot", "loader.1", "entries")
	for _, e := range order([]string{"ostree-3-a.conf", "ostree-3-B.conf", "ostree-3-_c.conf"}) {
		writeFile(t, filepath.Join(entries, e), "title "+e+"\nversion 3\noptions "+kargs+
			"\nlinux /ostree/"+osName+"-"+bootCsum+"/vmlinuz-6.1.0-demo\n", 0o644)
	}
}

// readdirOrder lists dir in the order its file system returns the entries.
func readdirOrder(t *testing.T, dir string) []string {
	t.Helper()
	d, err := os.Open(dir)
	must(t, err)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	must(t, err)
	return names
}

// collatingLocale returns the environment of a locale whose collation is
// not byte order (en_US.UTF-8, made with localedef into a temporary
// LOCPATH when the host has its source), or C.UTF-8.
func collatingLocale(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("localedef"); err == nil {
		if _, err := os.Stat("/usr/share/i18n/locales/en_US"); err == nil {
			dir := t.TempDir()
			if out, err := exec.Command("localedef", "-i", "en_US", "-f", "UTF-8", filepath.Join(dir, "en_US.UTF-8")).CombinedOutput(); err == nil {
				return []string{"LOCPATH=" + dir, "LC_ALL=en_US.UTF-8", "LANG=en_US.UTF-8"}
			} else {
				t.Logf("localedef en_US.UTF-8: %v: %s; using C.UTF-8", err, out)
			}
		}
	}
	return []string{"LC_ALL=C.UTF-8", "LANG=C.UTF-8"}
}

// TestImageBytesDoNotDependOnTheHostFilesystemOrLocale builds one
// content twice: once from a tmpfs, its entries made in one order, under
// the C locale, and once from the host's file system (t.TempDir), its
// entries made in the reverse order, under a collating locale. The
// sysroots' sizes (what the root partition is sized for) and the raw
// images must be the same, byte for byte.
func TestImageBytesDoNotDependOnTheHostFilesystemOrLocale(t *testing.T) {
	needTools(t, "grub-mkimage", "cmp", "setfattr")
	tmpfs := filepath.Join(t.TempDir(), "tmpfs")
	must(t, os.Mkdir(tmpfs, 0o755))
	must(t, syscall.Mount("eib-test", tmpfs, "tmpfs", 0, "mode=0755"))
	t.Cleanup(func() { syscall.Unmount(tmpfs, syscall.MNT_DETACH) })
	const epoch = 1700000000
	locales := [][]string{{"LC_ALL=C", "LANG=C"}, collatingLocale(t)}
	t.Logf("locales: %v and %v", locales[0], locales[1])

	var fixtures []fixture
	for i, dir := range []string{tmpfs, t.TempDir()} {
		f := newSysroot(t, dir)
		orderedTree(t, f, i == 1)
		fixtures = append(fixtures, f)
	}
	// The premise: the two file systems list the entries in other orders.
	orderDir := filepath.Join("usr", "share", "order")
	a, b := readdirOrder(t, filepath.Join(fixtures[0].deployment, orderDir)), readdirOrder(t, filepath.Join(fixtures[1].deployment, orderDir))
	if slices.Equal(a, b) {
		t.Fatalf("tmpfs and %s list %s in the same order: the test proves nothing", os.TempDir(), orderDir)
	}
	var usage []int64
	for _, f := range fixtures {
		u, err := disk.Usage(f.sysroot)
		must(t, err)
		usage = append(usage, u)
	}
	if usage[0] != usage[1] {
		t.Errorf("disk.Usage: %d bytes on tmpfs, %d on %s: the root partition's size follows the host file system", usage[0], usage[1], os.TempDir())
	}

	for _, p := range []disk.Params{{Arch: "amd64", RootfsResize: true}, {Arch: "amd64", SDBoot: true}} {
		name := map[bool]string{true: "sdboot", false: "grub"}[p.SDBoot]
		t.Run(name, func(t *testing.T) {
			seed := disk.SeededIDs("demo-amd64-amd64.260101-000000.base\x00" + deplCsum)
			var imgs []string
			var plan disk.Plan
			for i, f := range fixtures {
				for _, kv := range locales[i] {
					k, v, _ := strings.Cut(kv, "=")
					t.Setenv(k, v)
				}
				var img string
				plan, img = build(t, f, p, disk.RootSize(usage[0]), seed, epoch, nil)
				imgs = append(imgs, img)
			}
			if out, err := exec.Command("cmp", imgs[0], imgs[1]).CombinedOutput(); err != nil {
				t.Fatalf("the images from tmpfs and from %s differ: %s", os.TempDir(), strings.TrimSpace(string(out)))
			}
			checkReproducibleMetadata(t, fixtures[0], plan, imgs[0])
		})
	}
}

// checkReproducibleMetadata reads back from a reproducible image of
// orderedTree's content what its canonical order must not lose: the
// immutable deployment root, every xattr with its value, the hardlinks, the times at the epoch and the UTF-8 name on the ESP.
func checkReproducibleMetadata(t *testing.T, f fixture, plan disk.Plan, img string) {
	t.Helper()
	root := plan.Root()
	dep := f.deploymentRel()
	order := dep + "/usr/share/order"
	if flags := regexp.MustCompile(`Flags: 0x([0-9a-f]+)`).FindStringSubmatch(debugfs(t, img, root, "stat "+dep)); flags == nil || !hasBit(flags[1], 0x10) {
		t.Errorf("the deployment root is not immutable in the reproducible image (flags %v)", flags)
	}
	for _, p := range []string{order, order + "/a00"} {
		list := debugfs(t, img, root, "ea_list "+p)
		for _, a := range []string{"user.alpha", "user.beta", "user.gamma", "trusted.delta"} {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(a) + ` \(\d+\) = "value-of-` + regexp.QuoteMeta(a) + `"$`).MatchString(list) {
				t.Errorf("%s lost its xattr %s in the reproducible image:\n%s", p, a, list)
			}
		}
	}
	if got := debugfs(t, img, root, "ea_get / user.eos-image-version"); !strings.Contains(got, "demo-amd64-amd64.260101-000000.base") {
		t.Errorf("user.eos-image-version: %q", got)
	}
	hard := debugfs(t, img, root, "stat "+order+"/hard-1")
	if !strings.Contains(hard, "Links: 3") || !strings.Contains(hard, " mtime: 0x6553f100") || !strings.Contains(hard, "crtime: 0x6553f100") {
		t.Errorf("hard-1: want 3 links and its times at the epoch (0x6553f100):\n%s", hard)
	}
	if esp, ok := plan.Part(disk.RoleESP); ok && plan.Layout.Bootloader == disk.BootSDBoot {
		cmd := exec.Command("mdir", "-b", "-i", img+"@@"+itoa(esp.Offset()), "::/ostree/"+osName+"-"+bootCsum+"/dtb")
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "/é-board-rev2.dtb\n") {
			t.Errorf("the ESP lacks dtb/é-board-rev2.dtb under its UTF-8 name (%v):\n%s", err, out)
		}
	}
}
