package disk_test

import (
	"os/exec"
	"path/filepath"
	"strings"
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
