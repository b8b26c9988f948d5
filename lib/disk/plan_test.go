package disk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// TestUsageCountsHardlinksOnceLikeDu compares Usage with du.
func TestUsageCountsHardlinksOnceLikeDu(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 300000)
	for i := range big {
		big[i] = byte(i)
	}
	if err := os.WriteFile(filepath.Join(dir, "a"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "link"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Usage(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("du", "-s", "--block-size=1", dir).Output()
	if err != nil {
		t.Skipf("du: %v", err)
	}
	want, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if got != want {
		t.Errorf("Usage = %d, du says %d", got, want)
	}
	if got > 2*int64(len(big)) {
		t.Errorf("Usage = %d: hardlinks counted more than once", got)
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
