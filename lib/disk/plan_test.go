package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestRootSizeAddsFivePercentOrOneGiB(t *testing.T) {
	for _, row := range []struct{ usage, want int64 }{
		{0, GiB},
		{10 * GiB, 11 * GiB},        // 5 % would be 0.5 GiB: the 1 GiB minimum wins
		{40 * GiB, 42 * GiB},        // 5 % of 40 GiB = 2 GiB
		{1000, (1000 + GiB) &^ 511}, // rounded down to a sector
		{30*GiB + 7, (30*GiB + 7 + (30*GiB+7)*5/100) &^ 511},
	} {
		if got := RootSize(row.usage); got != row.want {
			t.Errorf("RootSize(%d) = %d, want %d", row.usage, got, row.want)
		}
	}
}

func TestMaxSizeExceededNamesBothNumbers(t *testing.T) {
	l, err := ForPlatform(Params{Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(l, 2*GiB, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan(l, 2*GiB, plan.Bytes()-1)
	if err == nil {
		t.Fatal("no error with max_size one byte too small")
	}
	for _, want := range []string{strconv.FormatInt(plan.Bytes(), 10), strconv.FormatInt(plan.Bytes()-1, 10), "max_size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := NewPlan(l, 2*GiB, plan.Bytes()); err != nil {
		t.Errorf("max_size equal to the image: %v", err)
	}
}

func TestPlanPartitionsFitTheirRequest(t *testing.T) {
	l, _ := ForPlatform(Params{Arch: "amd64"})
	for _, root := range []int64{GiB, GiB + 512, GiB + 4097} {
		plan, err := NewPlan(l, root, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := plan.Root()
		if r.Bytes() < root || r.Size%8 != 0 {
			t.Errorf("root %d bytes asked, got %d sectors", root, r.Size)
		}
		if end := r.Start + r.Size + gptTailSectors; end > plan.Sectors {
			t.Errorf("root ends at %d, backup GPT needs up to %d", end, plan.Sectors)
		}
	}
}

// usedByMkfs makes an ext4 of 64 MiB from dir (mkfs.ext4 -d, 4 KiB
// blocks, eib's features) and returns its used blocks and used inodes.
func usedByMkfs(t *testing.T, dir string) (blocks, inodes int64) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal,metadata_csum", "-d", dir, img, "16384")
	cmd.Env = append(os.Environ(), "LC_ALL=C", "E2FSPROGS_FAKE_TIME=1700000000")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d %s: %v\n%s", dir, err, out)
	}
	out, err := exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h %s: %v", img, err)
	}
	field := func(name string) int64 {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)$`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("dumpe2fs -h: no %s in\n%s", name, out)
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		return n
	}
	return field("Block count") - field("Free blocks"), field("Inode count") - field("Free inodes")
}

// TestMeasureIsWhatMkfsExt4Takes compares Measure of a tree (hardlinks, a
// directory of several blocks, files of odd sizes, short and long
// symlinks, a fifo, a character device when run as root, empty
// directories) with the blocks and inodes that mkfs.ext4 -d takes for it,
// beyond those of an empty file system: Measure may count the root
// directory's block, which the empty one already has, and no more; its
// inodes are those mkfs.ext4 -d takes and the root directory.
func TestMeasureIsWhatMkfsExt4Takes(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "dumpe2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps (make test does)", tool)
		}
	}
	dir := t.TempDir()
	write := func(rel string, n int) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 1) // no zero 4 KiB block: mkfs.ext4 -d would leave a hole
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("big", 300000)
	for i := 0; i < 5; i++ {
		if err := os.Link(filepath.Join(dir, "big"), filepath.Join(dir, "link"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 150; i++ {
		write(filepath.Join("many", strings.Repeat("n", 40)+strconv.Itoa(i)), i*100)
	}
	write("one-byte", 1)
	write("empty", 0)
	write("exactly-a-block", 4096)
	if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper", "deepest"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("short", filepath.Join(dir, "short-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("long/", 20), filepath.Join(dir, "long-link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Inodes: the root, big (6 names), many/ and its 150 files, one-byte,
	// empty, exactly-a-block, sub/deeper/deepest, 2 symlinks, the fifo.
	want := int64(1 + 1 + 151 + 3 + 3 + 2 + 1)
	if os.Geteuid() == 0 {
		if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
			t.Fatal(err)
		}
		want++
	}

	got, err := Measure(dir)
	if err != nil {
		t.Fatal(err)
	}
	treeBlocks, treeInodes := usedByMkfs(t, dir)
	emptyBlocks, emptyInodes := usedByMkfs(t, t.TempDir())
	taken := (treeBlocks - emptyBlocks) * ext4Block
	t.Logf("Measure %+v; mkfs.ext4 -d took %d bytes and %d inodes", got, taken, treeInodes-emptyInodes)
	if got.Blocks < taken || got.Blocks > taken+ext4Block {
		t.Errorf("Measure: %d bytes (%d blocks); mkfs.ext4 -d took %d bytes (%d blocks) for the tree", got.Blocks, got.Blocks/ext4Block, taken, taken/ext4Block)
	}
	if got.Blocks > taken+int64(300000) {
		t.Errorf("Measure: %d bytes: hardlinks counted more than once", got.Blocks)
	}
	if got.Inodes != want || got.Inodes-1 != treeInodes-emptyInodes {
		t.Errorf("Measure: %d inodes; want %d, and mkfs.ext4 -d took %d besides the root directory", got.Inodes, want, treeInodes-emptyInodes)
	}
	if u, err := Usage(dir); err != nil || u != got.Blocks+got.Inodes*256 {
		t.Errorf("Usage = %d, %v; want the blocks and 256 bytes per inode, %d", u, err, got.Blocks+got.Inodes*256)
	}
}

// TestRootInodesGivesTheTreeAMargin checks the inode count of root file
// systems: a tree's inodes, ext4's reserved ones and lost+found, and a
// margin of 5 % or one inode per 16 KiB of free space, at least one per
// 16 KiB of the whole file system when it grows on first boot.
func TestRootInodesGivesTheTreeAMargin(t *testing.T) {
	tiny := Tree{Blocks: 2 * MiB, Inodes: 70000} // empty files and short symlinks
	huge := Tree{Blocks: 9 * GiB, Inodes: 30}    // a few huge files
	big := Tree{Blocks: 10 * GiB, Inodes: 3000000}
	for _, row := range []struct {
		name  string
		tree  Tree
		fs    int64
		grows bool
		want  int64
	}{
		// RootSize leaves 1 GiB free in these: 65536 inodes at 16 KiB.
		{"tiny: 1 GiB free gives 65536 more", tiny, RootSize(tiny.Bytes()), false, 70000 + 10 + 65536},
		{"tiny, growing: the tree needs more than one per 16 KiB", tiny, RootSize(tiny.Bytes()), true, 70000 + 10 + 65536},
		{"huge: the tree and the free space's", huge, RootSize(huge.Bytes()), false, 30 + 10 + 65536},
		{"huge, growing: one per 16 KiB of all", huge, RootSize(huge.Bytes()), true, (10*GiB + 30*256) / 16384},
		{"3 million: 5 % of the tree beats the free space's", big, RootSize(big.Bytes()), false, 3000000 + 10 + 150000},
		{"nothing free: 5 %", Tree{Blocks: 0, Inodes: 1000}, 1000 * 256, false, 1000 + 10 + 50},
		{"smaller than the tree: no negative margin", Tree{Blocks: MiB, Inodes: 100}, MiB, false, 100 + 10 + 5},
	} {
		if got := RootInodes(row.tree, row.fs, row.grows); got != row.want {
			t.Errorf("%s: RootInodes(%+v, %d, %v) = %d, want %d", row.name, row.tree, row.fs, row.grows, got, row.want)
		}
	}
}

func TestRootGrowsWithRootfsResize(t *testing.T) {
	for _, p := range []Params{{Arch: "amd64"}, {Arch: "amd64", PartitionTable: DOS}, {Arch: "arm64", Platform: "rpi"}} {
		for _, resize := range []bool{false, true} {
			p.RootfsResize = resize
			l, err := ForPlatform(p)
			if err != nil {
				t.Fatal(err)
			}
			if l.RootGrows() != resize {
				t.Errorf("%+v: RootGrows() = %v", p, l.RootGrows())
			}
		}
	}
}

func TestSeededIDsRepeatAndDiffer(t *testing.T) {
	a, b := SeededIDs("x"), SeededIDs("y")
	if a.UUID("disk") != SeededIDs("x").UUID("disk") {
		t.Error("same seed, different UUIDs")
	}
	if a.UUID("disk") == b.UUID("disk") || a.UUID("disk") == a.UUID("root") {
		t.Error("different seeds or purposes, same UUID")
	}
	if RandomIDs().UUID("disk") == RandomIDs().UUID("disk") {
		t.Error("random UUIDs repeat")
	}
	if u := a.UUID("disk"); len(u) != 36 || u[14] != '8' {
		t.Errorf("derived UUID %s is not a version 8 UUID", u)
	}
}

func TestPlanStringShowsEveryPartition(t *testing.T) {
	l, _ := ForPlatform(Params{Arch: "arm64", Platform: "pinebookpro", PartitionTable: DOS, RootfsResize: true})
	plan, err := NewPlan(l, GiB, 0)
	if err != nil {
		t.Fatal(err)
	}
	plan.AssignIDs(SeededIDs("x"))
	s := plan.String()
	for _, want := range []string{"arm64/pinebookpro: dos label", "p1 root      start    32768", "type 83", `ext4 "ostree"`,
		"raw /usr/lib/u-boot/pinebook-pro-rk3399/idbloader.img at sector 64", "u-boot.itb at sector 16384", "MBR byte 498 = 0xdd"} {
		if !strings.Contains(s, want) {
			t.Errorf("plan description lacks %q:\n%s", want, s)
		}
	}
}
