package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Content is what goes into a planned disk besides the table.
type Content struct {
	Sysroot string // the deployed sysroot: becomes the root filesystem
	// Deployment is the deployment root (for the layout's blobs).
	Deployment string
	// Immutable lists paths (relative to the sysroot, "/"-rooted) that get
	// the immutable flag back in the image: the deployment roots.
	Immutable []string
	// Version is written as the user.eos-image-version xattr of the root
	// directory ("" = none).
	Version string
	// ESP and Firmware are the files of the FAT partitions.
	ESP, Firmware []File
	// Raw are bytes written last at byte offsets (GRUB's boot.img and
	// core.img).
	Raw []Raw
	// Epoch >= 0 makes the image reproducible: fixed filesystem times
	// (SOURCE_DATE_EPOCH), hash seed and invariant FAT. -1 = not.
	Epoch int64
	// Log receives progress lines (nil = none).
	Log func(format string, args ...any)
}

// Raw is data written at a byte offset of the disk.
type Raw struct {
	What   string // for messages, e.g. "GRUB core.img"
	Offset int64
	Data   []byte
}

// Reproducible reports whether the image must be byte-for-byte repeatable.
func (c Content) Reproducible() bool { return c.Epoch >= 0 }

func (c Content) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// Assemble writes the disk image img for plan from files: a sparse file of
// the plan's size, the partition table (sfdisk), the resize marker, each
// filesystem at its partition's offset, the blobs and raw writes, then
// checks the root filesystem with e2fsck -fn. Nothing is mounted and no
// loop device is used. On error the partial image is removed.
func Assemble(ctx context.Context, plan Plan, c Content, img string) (err error) {
	if c.Sysroot == "" {
		return fmt.Errorf("assembling %s: no sysroot given", img)
	}
	blobs, err := readBlobs(plan, c)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("creating the disk image: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("closing %s: %w", img, cerr)
		}
		if err != nil {
			os.Remove(img)
		}
	}()
	if err := f.Truncate(plan.Bytes()); err != nil {
		return fmt.Errorf("sizing %s to %d bytes: %w", img, plan.Bytes(), err)
	}
	c.logf("disk image %s: %s label, %d bytes (%d MiB), %d partitions", img, plan.Layout.Label, plan.Bytes(), plan.Bytes()/MiB, len(plan.Partitions))
	if err := plan.WriteTable(ctx, img); err != nil {
		return err
	}
	if plan.Layout.MBRResize {
		if _, err := f.WriteAt([]byte{MBRResizeMarker}, MBRResizeOffset); err != nil {
			return fmt.Errorf("writing the resize marker into the MBR of %s: %w", img, err)
		}
	}
	if err := makeFilesystems(ctx, img, plan, c); err != nil {
		return err
	}
	for _, r := range append(blobs, c.Raw...) {
		if err := checkRaw(plan, r); err != nil {
			return err
		}
		if _, err := f.WriteAt(r.Data, r.Offset); err != nil {
			return fmt.Errorf("writing %s at byte %d of %s: %w", r.What, r.Offset, img, err)
		}
		c.logf("wrote %s (%d bytes) at sector %d", r.What, len(r.Data), r.Offset/Sector)
	}
	began := time.Now()
	if err := Fsck(ctx, img, plan.Root()); err != nil {
		return err
	}
	c.logf("e2fsck -fn of the root filesystem: clean (%.1f s)", time.Since(began).Seconds())
	return nil
}

// makeFilesystems makes the filesystem of each partition of plan inside
// img. The FAT partitions (ESP, firmware: mkfs.vfat and mtools, each its
// own process on its own byte range of the file) are made while
// mkfs.ext4 -d populates the root, which takes the most time; each tool
// writes only inside its partition, so the bytes are those of one after
// the other. The first error to happen is returned, after the other tools
// ended (it cancels them).
func makeFilesystems(ctx context.Context, img string, plan Plan, c Content) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var first error
	make1 := func(i int) {
		if ctx.Err() != nil {
			return // an error ended the others (or the caller cancelled: below)
		}
		pl := plan.Partitions[i]
		began := time.Now()
		var err error
		switch pl.FS {
		case FSExt4:
			err = makeExt4(ctx, img, pl, plan.Layout.Ext4Features, plan.Layout.RootGrows(), c)
		case FSVFAT:
			files := c.ESP
			if pl.Role == RoleFirmware {
				files = c.Firmware
			}
			err = makeVFAT(ctx, img, pl, files, c)
		default:
			return
		}
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			cancel()
			return
		}
		c.logf("partition %d (%s, %s) done in %.1f s", pl.Number, pl.Role, pl.FS, time.Since(began).Seconds())
	}
	var wg sync.WaitGroup
	for i, pl := range plan.Partitions {
		if pl.FS == FSVFAT {
			wg.Add(1)
			go func() {
				defer wg.Done()
				make1(i)
			}()
		}
	}
	for i, pl := range plan.Partitions {
		if pl.FS != FSVFAT {
			make1(i)
		}
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return fmt.Errorf("making the filesystems of %s: %w", img, ctx.Err())
	}
	return first
}

// readBlobs reads the layout's raw blobs from the deployment.
func readBlobs(plan Plan, c Content) ([]Raw, error) {
	var raws []Raw
	for _, b := range plan.Layout.Blobs {
		p := filepath.Join(c.Deployment, b.File)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("platform %s needs %s from the deployment: %w", plan.Layout.Platform, b.File, err)
		}
		raws = append(raws, Raw{What: b.File, Offset: b.Sector * Sector, Data: data})
	}
	return raws, nil
}

// checkRaw refuses raw data that would overwrite the partition table or a
// partition other than the BIOS boot partition.
func checkRaw(plan Plan, r Raw) error {
	start, end := r.Offset, r.Offset+int64(len(r.Data))
	tableEnd := int64(Sector) // the MBR: only its boot code may be written
	if plan.Layout.Label == GPT {
		tableEnd = 34 * Sector
	}
	if start == 0 && end <= 440 {
		return nil // boot code area of the MBR
	}
	if start < tableEnd {
		return fmt.Errorf("%s (%d bytes at byte %d) would overwrite the partition table", r.What, len(r.Data), r.Offset)
	}
	for _, pl := range plan.Partitions {
		if start < pl.Offset()+pl.Bytes() && end > pl.Offset() {
			if pl.Role == RoleBIOSBoot && start >= pl.Offset() {
				if end <= pl.Offset()+pl.Bytes() {
					continue
				}
				return fmt.Errorf("%s (%d bytes) does not fit in partition %d (%s, %d bytes)",
					r.What, len(r.Data), pl.Number, pl.Role, pl.Bytes())
			}
			return fmt.Errorf("%s (%d bytes at sector %d) overlaps partition %d (%s, sectors %d-%d)",
				r.What, len(r.Data), r.Offset/Sector, pl.Number, pl.Role, pl.Start, pl.Start+pl.Size-1)
		}
	}
	return nil
}
