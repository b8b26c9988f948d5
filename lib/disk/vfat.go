package disk

import (
	"context"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
)

// File is a file to put on a FAT partition.
type File struct {
	Dest string // path on the partition, "/"-separated, e.g. "EFI/BOOT/BOOTX64.EFI"
	Src  string // file on the host
}

// mtoolsLocale is the locale of mkfs.vfat and mtools. mtools turns a
// file name into its FAT short name and VFAT long name through the
// locale's character set: under C, "é.dtb" becomes "_(C).dtb", under a
// UTF-8 locale it stays itself (measured with mtools 4.0.32), so the host's
// locale would change the ESP's bytes. C.UTF-8 (built into glibc since
// 2.35) keeps UTF-8 names; ASCII names are the same under every locale.
const mtoolsLocale = "C.UTF-8"

// makeVFAT creates the FAT filesystem of pl inside img with mkfs.vfat
// --offset and copies files onto it with mtools (nothing is mounted).
func makeVFAT(ctx context.Context, img string, pl Placed, files []File, c Content) error {
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL="+mtoolsLocale)
	// The FAT size is chosen here: mkfs.vfat would pick it from the size
	// of the whole disk file and fail on a small ESP of a large disk.
	fat := "16"
	if pl.Bytes() >= 256*MiB {
		fat = "32"
	}
	args := []string{"-F", fat, "-n", pl.FSLabel, "--offset=" + strconv.FormatInt(pl.Start, 10)}
	if pl.FSUUID != "" {
		args = append(args, "-i", pl.FSUUID)
	}
	if c.Reproducible() {
		args = append(args, "--invariant")
		env = append(env, fmt.Sprintf("SOURCE_DATE_EPOCH=%d", c.Epoch))
	}
	args = append(args, img, strconv.FormatInt(pl.Bytes()/1024, 10))
	c.logf("%s: mkfs.vfat into partition %d (%d MiB at byte %d), %d files", pl.Role, pl.Number, pl.Bytes()/MiB, pl.Offset(), len(files))
	if _, err := run(ctx, nil, env, "mkfs.vfat", args...); err != nil {
		return fmt.Errorf("creating the %s filesystem: %w", pl.Role, err)
	}
	fsArg := fmt.Sprintf("%s@@%d", img, pl.Offset())
	files = append([]File(nil), files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Dest < files[j].Dest })
	made := map[string]bool{}
	for _, f := range files {
		dest := strings.Trim(path.Clean("/"+f.Dest), "/")
		if dest == "" {
			return fmt.Errorf("%s: empty destination for %s", pl.Role, f.Src)
		}
		var dirs []string
		for d := path.Dir(dest); d != "." && !made[d]; d = path.Dir(d) {
			dirs = append([]string{d}, dirs...)
			made[d] = true
		}
		for _, d := range dirs {
			if _, err := run(ctx, nil, env, "mmd", "-i", fsArg, "::/"+d); err != nil {
				return fmt.Errorf("%s: making directory %s: %w", pl.Role, d, err)
			}
		}
		if _, err := run(ctx, nil, env, "mcopy", "-o", "-i", fsArg, f.Src, "::/"+dest); err != nil {
			return fmt.Errorf("%s: copying %s to %s: %w", pl.Role, f.Src, dest, err)
		}
	}
	return nil
}
