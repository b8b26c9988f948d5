package disk_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/disk"
)

const rootBytes = 64 * disk.MiB

type wantPart struct {
	start, size int64
	typ, attrs  string
}

// TestLayoutsAsSfdiskReadsThem builds every layout into a real image and
// compares `sfdisk --json` of the file with EIB's starts, sizes, types and
// attributes, the MBR resize marker and the u-boot blob offsets.
func TestLayoutsAsSfdiskReadsThem(t *testing.T) {
	needTools(t, "grub-mkimage")
	// 64 MiB root = 131072 sectors; on gpt the root takes the rest of a
	// disk rounded up to MiB after the backup GPT (+2048-33, in 4 KiB).
	const gptRoot, dosRoot = 133080, 131072
	rows := []struct {
		name      string
		p         disk.Params
		label     string
		parts     []wantPart
		marker    bool
		blobs     map[int64]string // sector -> file under usr/lib/u-boot/pinebook-pro-rk3399
		biosStart int64            // where GRUB's core.img goes (0 = no GRUB BIOS)
	}{
		{name: "amd64 gpt resize", p: disk.Params{Arch: "amd64", Platform: "amd64", RootfsResize: true}, label: "gpt",
			parts: []wantPart{
				{2048, 126976, disk.TypeESP, ""},
				{129024, 2048, disk.TypeBIOSBoot, ""},
				{131072, gptRoot, disk.TypeRootX86_64, "GUID:55"}},
			biosStart: 129024},
		{name: "amd64 gpt", p: disk.Params{Arch: "amd64", Platform: "amd64", PartitionTable: disk.GPT}, label: "gpt",
			parts: []wantPart{
				{2048, 126976, disk.TypeESP, ""},
				{129024, 2048, disk.TypeBIOSBoot, ""},
				{131072, gptRoot, disk.TypeRootX86_64, ""}},
			biosStart: 129024},
		{name: "i386 gpt", p: disk.Params{Arch: "i386", RootfsResize: true}, label: "gpt",
			parts: []wantPart{
				{2048, 126976, disk.TypeESP, ""},
				{129024, 2048, disk.TypeBIOSBoot, ""},
				{131072, gptRoot, disk.TypeRootX86_64, "GUID:55"}},
			biosStart: 129024},
		{name: "amd64 dos resize", p: disk.Params{Arch: "amd64", PartitionTable: disk.DOS, RootfsResize: true}, label: "dos",
			parts: []wantPart{
				{2048, 126976, "ef", ""},
				{129024, dosRoot, "83", ""}},
			marker: true, biosStart: 1},
		{name: "amd64 sdboot", p: disk.Params{Arch: "amd64", SDBoot: true, RootfsResize: true}, label: "gpt",
			parts: []wantPart{
				{2048, 1024000, disk.TypeESP, ""},
				{1026048, gptRoot, disk.TypeRootX86_64, "GUID:55"}}},
		{name: "arm64 gpt", p: disk.Params{Arch: "arm64", RootfsResize: true}, label: "gpt",
			parts: []wantPart{{2048, gptRoot, disk.TypeRootARM64, "GUID:55"}}},
		{name: "arm64 pinebookpro", p: disk.Params{Arch: "arm64", Platform: "pinebookpro", PartitionTable: disk.DOS, RootfsResize: true},
			label: "dos", parts: []wantPart{{32768, dosRoot, "83", ""}}, marker: true,
			blobs: map[int64]string{64: "idbloader.img", 16384: "u-boot.itb"}},
		{name: "arm64 rpi", p: disk.Params{Arch: "arm64", Platform: "rpi"}, label: "gpt",
			parts: []wantPart{
				{2048, 1048576, disk.TypeBasicData, ""},
				{1050624, gptRoot, disk.TypeRootARM64, ""}}},
		{name: "arm64 rpi dos", p: disk.Params{Arch: "arm64", Platform: "rpi", PartitionTable: disk.DOS}, label: "dos",
			parts: []wantPart{
				{2048, 1048576, "c", ""},
				{1050624, dosRoot, "83", ""}}},
	}
	for _, row := range rows {
		t.Run(strings.ReplaceAll(row.name, " ", "_"), func(t *testing.T) {
			f := newSysroot(t, t.TempDir())
			blobData := map[int64][]byte{}
			for sector, name := range row.blobs {
				data := randomBytes(t, 70000+int(sector))
				blobData[sector] = data
				p := filepath.Join(f.deployment, "usr/lib/u-boot/pinebook-pro-rk3399", name)
				sh(t, "chattr", "-i", f.deployment)
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
				must(t, os.WriteFile(p, data, 0o644))
				sh(t, "chattr", "+i", f.deployment)
			}
			plan, img := build(t, f, row.p, rootBytes, disk.RandomIDs(), -1, nil)
			tab := readTable(t, img)
			if tab.PartitionTable.Label != row.label {
				t.Errorf("label %q, want %q", tab.PartitionTable.Label, row.label)
			}
			got := tab.PartitionTable.Partitions
			if row.marker {
				// The marker is the type byte of an empty fourth entry.
				row.parts = append(row.parts, wantPart{0, 0, "dd", ""})
			}
			if len(got) != len(row.parts) {
				t.Fatalf("%d partitions, want %d: %+v", len(got), len(row.parts), got)
			}
			for i, w := range row.parts {
				g := got[i]
				if g.Start != w.start || g.Size != w.size || !strings.EqualFold(g.Type, w.typ) || g.Attrs != w.attrs {
					t.Errorf("partition %d: start %d size %d type %s attrs %q; want start %d size %d type %s attrs %q",
						i+1, g.Start, g.Size, g.Type, g.Attrs, w.start, w.size, w.typ, w.attrs)
				}
			}
			st, err := os.Stat(img)
			must(t, err)
			if st.Size() != plan.Bytes() || st.Size()%disk.MiB != 0 {
				t.Errorf("image is %d bytes, plan says %d (want whole MiB)", st.Size(), plan.Bytes())
			}
			mbr := readAt(t, img, 0, 512)
			if gotMarker := mbr[disk.MBRResizeOffset] == disk.MBRResizeMarker; gotMarker != row.marker {
				t.Errorf("MBR byte %d = %#x, want the 0xdd resize marker: %v", disk.MBRResizeOffset, mbr[disk.MBRResizeOffset], row.marker)
			}
			if mbr[510] != 0x55 || mbr[511] != 0xaa {
				t.Errorf("MBR signature %x, want 55aa", mbr[510:])
			}
			for sector, data := range blobData {
				if got := readAt(t, img, sector*disk.Sector, len(data)); !bytes.Equal(got, data) {
					t.Errorf("blob at sector %d differs from the deployment's file", sector)
				}
			}
			if row.biosStart > 0 {
				if got := binary.LittleEndian.Uint64(mbr[0x5c:]); got != uint64(row.biosStart) {
					t.Errorf("boot.img kernel sector %d, want %d", got, row.biosStart)
				}
				if mbr[0x66] != 0x90 || mbr[0x67] != 0x90 {
					t.Errorf("boot.img drive check %x, want 9090", mbr[0x66:0x68])
				}
				core := readAt(t, img, row.biosStart*disk.Sector, 512)
				if got := binary.LittleEndian.Uint64(core[500:]); got != uint64(row.biosStart+1) {
					t.Errorf("core.img first blocklist starts at %d, want %d", got, row.biosStart+1)
				}
			}
		})
	}
}

// TestUnsupportedLayoutsFailBeforeAnyWork checks the errors name what is
// wrong.
func TestUnsupportedLayoutsFailBeforeAnyWork(t *testing.T) {
	for _, row := range []struct {
		p    disk.Params
		want []string
	}{
		{disk.Params{Arch: "amd64", Platform: "pinebookpro"}, []string{`"amd64"`, `"pinebookpro"`}},
		{disk.Params{Arch: "sparc", Platform: "sun4u"}, []string{`"sparc"`, `"sun4u"`}},
		{disk.Params{Arch: "arm64", Platform: "pinebookpro", PartitionTable: disk.GPT}, []string{"partition_table = gpt", "pinebookpro"}},
		{disk.Params{Arch: "arm64", SDBoot: true}, []string{"sdboot", `"arm64"`}},
		{disk.Params{Arch: "amd64", PartitionTable: "apm"}, []string{"partition_table = apm"}},
	} {
		_, err := disk.ForPlatform(row.p)
		if err == nil {
			t.Errorf("%+v: no error", row.p)
			continue
		}
		for _, w := range row.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not name %s", row.p, err, w)
			}
		}
	}
}

// TestSmallESPOnALargeDisk guards against mkfs.vfat choosing the FAT size
// from the whole disk file (it then refuses a 62 MiB FAT32).
func TestSmallESPOnALargeDisk(t *testing.T) {
	needTools(t, "grub-mkimage", "minfo")
	f := newSysroot(t, t.TempDir())
	plan, img := build(t, f, disk.Params{Arch: "amd64"}, 3*disk.GiB, disk.RandomIDs(), -1, nil)
	esp, _ := plan.Part(disk.RoleESP)
	cmd := exec.Command("minfo", "-i", img+"@@"+itoa(esp.Offset()), "::")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("minfo of the ESP: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "FAT16") && !strings.Contains(string(out), "fat_bits=16") {
		t.Errorf("the 62 MiB ESP is not FAT16:\n%s", out)
	}
}

// rootFeatures returns the feature list dumpe2fs -h reads from the root
// filesystem of img, sorted.
func rootFeatures(t *testing.T, img string, root disk.Placed) []string {
	t.Helper()
	out := sh(t, "dumpe2fs", "-h", img+"?offset="+itoa(root.Offset()))
	m := regexp.MustCompile(`Filesystem features:\s+(.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no features in dumpe2fs -h:\n%s", out)
	}
	f := strings.Fields(m[1])
	sort.Strings(f)
	return f
}

// TestRootExt4FeaturesAreEIBsOnEveryArch: EIB's stages/eib_image makes the
// root with `mke2fs -t ext4 -O dir_index` on every arch since commits
// 43003e7 and f934a3b (January 2026): 64bit on arm64 too (resize2fs on first
// boot can grow the root past 16 TiB) and huge_file left on. The amd64 and
// arm64 roots of a built image carry the same features.
func TestRootExt4FeaturesAreEIBsOnEveryArch(t *testing.T) {
	needTools(t, "grub-mkimage", "dumpe2fs")
	got := map[string][]string{}
	for _, p := range []disk.Params{{Arch: "amd64"}, {Arch: "arm64"}, {Arch: "arm64", Platform: "rpi"}} {
		name := p.Arch + "/" + p.Platform
		f := newSysroot(t, t.TempDir())
		plan, img := build(t, f, p, rootBytes, disk.RandomIDs(), -1, nil)
		got[name] = rootFeatures(t, img, plan.Root())
		have := map[string]bool{}
		for _, feat := range got[name] {
			have[feat] = true
		}
		for _, want := range []string{"64bit", "huge_file", "dir_index", "extent", "has_journal", "flex_bg"} {
			if !have[want] {
				t.Errorf("%s: root filesystem lacks %s: %v", name, want, got[name])
			}
		}
	}
	amd, arm := strings.Join(got["amd64/"], " "), strings.Join(got["arm64/"], " ")
	if amd != arm || arm != strings.Join(got["arm64/rpi"], " ") {
		t.Errorf("root filesystem features differ between arches:\n amd64 %s\n arm64 %s\n arm64/rpi %s", amd, arm, strings.Join(got["arm64/rpi"], " "))
	}
	for _, p := range []disk.Params{{Arch: "amd64"}, {Arch: "i386"}, {Arch: "arm64"}, {Arch: "arm64", Platform: "pinebookpro", PartitionTable: disk.DOS}} {
		l, err := disk.ForPlatform(p)
		must(t, err)
		if l.Ext4Features != "dir_index" {
			t.Errorf("%s/%s: mkfs.ext4 -O %q, want EIB's dir_index", p.Arch, p.Platform, l.Ext4Features)
		}
	}
}
