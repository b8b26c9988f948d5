package stage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/boot"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/disk"
	"github.com/eib-builder/eib/lib/ostree"
)

// diskSettings are the [build] and [image] keys that shape the disk image.
type diskSettings struct {
	params       disk.Params
	maxSize      int64 // 0 = no limit
	reproducible bool
	// epoch is SOURCE_DATE_EPOCH; -1 = not set: not reproducible, or
	// (reproducible) the commit's date, which resolveEpoch reads.
	epoch      int64
	outversion string
	tmpdir     string
	timeout    int
}

// readDiskSettings reads the disk image's keys and SOURCE_DATE_EPOCH; it
// only reads the configuration (the plan checks it before any work).
func readDiskSettings(b *build.Build) (diskSettings, error) {
	s := diskSettings{epoch: -1}
	r := b.Config.Read()
	s.params.Arch = r.String("build", "arch")
	s.params.Platform = r.String("build", "platform")
	s.params.PartitionTable = disk.Label(r.Enum("image", "partition_table"))
	s.params.SDBoot = r.Bool("image", "sdboot")
	s.params.RootfsResize = r.Bool("image", "rootfs_resize")
	s.reproducible = r.Bool("image", "reproducible")
	if s.maxSize = r.Int("image", "max_size"); s.maxSize < 0 {
		r.Reject("image", "max_size", "%d: not a number of bytes (leave it empty for no limit)", s.maxSize)
	}
	s.timeout = int(r.Seconds("image", "bootloader_timeout") / time.Second)
	s.outversion = r.String("build", "outversion")
	s.tmpdir = r.Path("build", "tmpdir")
	if err := r.Err(); err != nil {
		return s, err
	}
	// The same reading of SOURCE_DATE_EPOCH as the default build_version's.
	if t, ok, err := config.SourceDateEpoch(os.Getenv(config.SourceDateEpochVar)); err != nil {
		return s, err
	} else if ok {
		s.epoch = t.Unix()
	}
	return s, nil
}

// resolveEpoch sets the epoch of a reproducible build without
// SOURCE_DATE_EPOCH: the commit's own date, the same for every build of it.
func (s *diskSettings) resolveEpoch(ctx context.Context, b *build.Build) {
	if s.epoch < 0 && s.reproducible {
		s.epoch = commitEpoch(ctx, b)
	}
}

// diskLayout is the layout of the configured arch, platform and [image]
// keys (disk.ForPlatform), its error naming the key at fault: [build] arch
// or platform (the layouts eib knows), then [image] partition_table, then
// [image] sdboot, each tried with the keys before it only.
func diskLayout(b *build.Build, s diskSettings) (disk.Layout, error) {
	p := s.params
	steps := []struct {
		section, key, value string
		params              disk.Params
	}{
		{"build", "arch", p.Arch, disk.Params{Arch: p.Arch}},
		{"build", "platform", p.Platform, disk.Params{Arch: p.Arch, Platform: p.Platform}},
		{"image", "partition_table", string(p.PartitionTable), disk.Params{Arch: p.Arch, Platform: p.Platform, PartitionTable: p.PartitionTable}},
		{"image", "sdboot", fmt.Sprint(p.SDBoot), p},
	}
	for _, st := range steps {
		if st.key == "platform" {
			// A board may boot from one partition table only: the
			// platform is known when it is laid out with either.
			dos := st.params
			dos.PartitionTable = disk.DOS
			if _, err := disk.ForPlatform(dos); err == nil {
				continue
			}
		}
		if _, err := disk.ForPlatform(st.params); err != nil {
			if !strings.HasPrefix(err.Error(), "["+st.section+"] "+st.key) {
				err = fmt.Errorf("[%s] %s = %s: %w", st.section, st.key, st.value, err)
			}
			return disk.Layout{}, keyErr(b, st.section, st.key, err)
		}
	}
	return disk.ForPlatform(p)
}

// commitEpoch returns the date of the commit being built (0 when it cannot
// be read: still the same for every build).
func commitEpoch(ctx context.Context, b *build.Build) int64 {
	if b.OSTree.RepoDir == "" || b.OSTree.Commit == "" {
		return 0
	}
	out, err := ostree.Open(b.OSTree.RepoDir).Show(ctx, b.OSTree.Commit)
	if err != nil {
		return 0
	}
	return showDate(out)
}

// showDate returns the Date: line of `ostree show` in seconds (0 if none).
func showDate(show string) int64 {
	for _, line := range strings.Split(show, "\n") {
		if v, ok := strings.CutPrefix(line, "Date:"); ok {
			if t, err := time.Parse("2006-01-02 15:04:05 -0700", strings.TrimSpace(v)); err == nil {
				return t.Unix()
			}
		}
	}
	return 0
}

// makeDiskImages turns the deployed sysroot (b.Deployment) into the disk
// image of the configured layout, appends it to b.Images, and writes its
// outputs with writeImageOutputs; s and out are the settings the plan
// resolved (readDiskSettings, readOutputSettings).
func makeDiskImages(ctx context.Context, b *build.Build, s diskSettings, out outputSettings) error {
	// The layout first: an unsupported arch/platform fails before any work
	// (the plan checked it before the build began).
	layout, err := diskLayout(b, s)
	if err != nil {
		return err
	}
	s.resolveEpoch(ctx, b)
	if b.Deployment.Sysroot == "" || b.Deployment.Path == "" {
		return fmt.Errorf("disk image: no deployed sysroot (the image stage deploys the OS first)")
	}
	start := time.Now()
	usage, err := disk.Usage(b.Deployment.Sysroot)
	if err != nil {
		return err
	}
	plan, err := disk.NewPlan(layout, disk.RootSize(usage), s.maxSize)
	if err != nil {
		return err
	}
	if s.epoch >= 0 {
		plan.AssignIDs(disk.SeededIDs(s.outversion + "\x00" + b.OSTree.Commit))
		b.Log.Printf("reproducible image: identifiers from the outversion and commit, times at %d", s.epoch)
		if now := time.Now().Unix(); s.epoch > now {
			// Times are clamped to the epoch, not raised to it.
			b.Log.Printf("warning: SOURCE_DATE_EPOCH %d is %d s in the future: the files this build made keep their own times, so another build will not give the same bytes", s.epoch, s.epoch-now)
		}
	} else {
		plan.AssignIDs(disk.RandomIDs())
	}
	b.Log.Debugf("disk plan %s", plan)
	b.Log.Printf("disk layout %s/%s: %s label, sysroot uses %d MiB, root partition %d MiB, image %d MiB, boot loader %s",
		layout.Arch, layout.Platform, layout.Label, usage/disk.MiB, plan.Root().Bytes()/disk.MiB, plan.Bytes()/disk.MiB, layout.Bootloader)

	work := filepath.Join(s.tmpdir, "disk")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	b.Defer("remove "+work, func() error { return os.RemoveAll(work) })
	setup, err := boot.Prepare(ctx, plan, boot.Options{
		Sysroot:    b.Deployment.Sysroot,
		Deployment: b.Deployment.Path,
		Kargs:      b.Deployment.Kargs,
		TmpDir:     work,
		Timeout:    s.timeout,
		Log:        b.Log.Printf,
	})
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(b.Deployment.Sysroot, b.Deployment.Path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("disk image: the deployment %s is not inside the sysroot %s", b.Deployment.Path, b.Deployment.Sysroot)
	}
	img := filepath.Join(s.tmpdir, s.outversion+".img")
	err = disk.Assemble(ctx, plan, disk.Content{
		Sysroot:    b.Deployment.Sysroot,
		Deployment: b.Deployment.Path,
		Immutable:  []string{"/" + filepath.ToSlash(rel)},
		Version:    s.outversion,
		ESP:        setup.ESP,
		Firmware:   setup.Firmware,
		Raw:        setup.Raw,
		Epoch:      s.epoch,
		Log:        b.Log.Printf,
	}, img)
	if err != nil {
		return err
	}
	b.Log.Printf("disk image %s: %d MiB in %.1f s", img, plan.Bytes()/disk.MiB, time.Since(start).Seconds())
	image := build.Image{Path: img, Arch: layout.Arch, Platform: layout.Platform, Size: plan.Bytes(), Firmware: layout.Firmware}
	b.Images = append(b.Images, image)
	return writeImageOutputs(ctx, b, image, out)
}
