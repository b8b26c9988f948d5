// Package bench compares eib's image step with EIB's method and with the
// bare compressor. It is a benchmark, not a timed test:
//
//	sudo go test -run '^$' -bench ImageStep -benchtime 1x ./tests/bench
//
// EIB_BENCH_SYSROOT names a deployed sysroot to use (e.g. the demo build's
// ostree checkout); by default the sysroot's deployment is made of the
// host's /usr/bin, /usr/sbin and /usr/lib/x86_64-linux-gnu (about 1 GiB,
// hardlinked, with a second hardlink per file as ostree's repo objects).
package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/boot"
	"github.com/eib-builder/eib/lib/disk"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
	"github.com/eib-builder/eib/tests/harness"
)

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// sysroot returns the sysroot and deployment to image.
func sysroot(tb testing.TB) (string, string) {
	if s := os.Getenv("EIB_BENCH_SYSROOT"); s != "" {
		deps, _ := filepath.Glob(filepath.Join(s, "ostree", "deploy", "*", "deploy", "*.0"))
		if len(deps) == 0 {
			tb.Fatalf("EIB_BENCH_SYSROOT=%s has no ostree/deploy/*/deploy/*.0", s)
		}
		return s, deps[0]
	}
	s := filepath.Join(tb.TempDir(), "sysroot")
	csum := strings.Repeat("ab", 32)
	dep := filepath.Join(s, "ostree", "deploy", "bench", "deploy", csum+".0")
	kdir := filepath.Join(s, "boot", "ostree", "bench-"+csum)
	for _, d := range []string{filepath.Join(dep, "usr", "lib"), kdir, filepath.Join(s, "boot", "loader", "entries"),
		filepath.Join(s, "ostree", "repo", "objects")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, src := range []string{"/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"} {
		dst := filepath.Join(dep, strings.TrimPrefix(filepath.Dir(src), "/"))
		if exec.Command("cp", "-al", src, dst).Run() != nil {
			run(tb, "cp", "-a", src, dst)
		}
	}
	run(tb, "cp", "-al", filepath.Join(dep, "usr"), filepath.Join(s, "ostree", "repo", "objects"))
	for _, f := range []string{"vmlinuz-6.1.0", "initramfs-6.1.0.img"} {
		if err := os.WriteFile(filepath.Join(kdir, f), make([]byte, 8<<20), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	entry := "title Bench\nversion 1\noptions root=LABEL=ostree console=ttyS0\nlinux /ostree/bench-" + csum +
		"/vmlinuz-6.1.0\ninitrd /ostree/bench-" + csum + "/initramfs-6.1.0.img\n"
	if err := os.WriteFile(filepath.Join(s, "boot", "loader", "entries", "ostree-1-bench.conf"), []byte(entry), 0o644); err != nil {
		tb.Fatal(err)
	}
	return s, dep
}

func seconds(start time.Time) float64 { return time.Since(start).Seconds() }

// BenchmarkImageStep times, on one sysroot: eib's image step (layout,
// GRUB, assembly from files, then one pass of zstd + sha256 + signatures),
// EIB's method (eib-method.sh: loop device, mkfs, rsync -aHAX, pigz,
// sha256sum, gpg in turn) and the bare compressors on eib's raw image.
func BenchmarkImageStep(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (loop device and mount for EIB's method)")
	}
	harness.Need(b, "losetup", "mount", "rsync", "pigz", "zstd", "gpg", "sha256sum", "mkfs.ext4", "grub-mkimage")
	ctx := context.Background()
	sysroot, dep := sysroot(b)
	dir := b.TempDir()
	b.Cleanup(func() { harness.AssertNoLeftovers(b, dir) })
	key := signtest.NewKey(b, dir, "")
	keyFile := key.Secret
	gnupg, err := os.MkdirTemp("/tmp", "eib-bench-gpg.")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run()
		os.RemoveAll(gnupg)
	}()
	run(b, "gpg", "--batch", "--quiet", "--homedir", gnupg, "--import", keyFile)
	signer, err := sign.New(sign.Options{KeyFile: keyFile}, nil)
	if err != nil {
		b.Fatal(err)
	}

	var eib, method, zstd, pigz float64
	var rawBytes int64
	for i := 0; i < b.N; i++ {
		work := filepath.Join(dir, "run"+strconv.Itoa(i))
		for _, d := range []string{"eib", "eib-out", "method-out", "comp"} {
			if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		// eib's image step.
		start := time.Now()
		usage, err := disk.Usage(sysroot)
		if err != nil {
			b.Fatal(err)
		}
		layout, _ := disk.ForPlatform(disk.Params{Arch: "amd64", RootfsResize: true})
		plan, err := disk.NewPlan(layout, disk.RootSize(usage), 0)
		if err != nil {
			b.Fatal(err)
		}
		plan.AssignIDs(disk.RandomIDs())
		setup, err := boot.Prepare(ctx, plan, boot.Options{Sysroot: sysroot, Deployment: dep, TmpDir: filepath.Join(work, "eib"), Timeout: 1})
		if err != nil {
			b.Fatal(err)
		}
		rel, _ := filepath.Rel(sysroot, dep)
		img := filepath.Join(work, "eib", "bench.img")
		err = disk.Assemble(ctx, plan, disk.Content{Sysroot: sysroot, Deployment: dep, Immutable: []string{"/" + rel},
			Version: "bench", ESP: setup.ESP, Raw: setup.Raw, Epoch: -1}, img)
		if err != nil {
			b.Fatal(err)
		}
		assembled := seconds(start)
		res, err := output.Image{Raw: img, OutDir: filepath.Join(work, "eib-out"), Name: "bench.img",
			Compression: "zst", Signer: signer}.Write(ctx)
		if err != nil {
			b.Fatal(err)
		}
		eib += seconds(start)
		rawBytes = plan.Bytes()
		b.Logf("eib: usage %d MiB, image %d MiB: assembled in %.1f s, outputs in %.1f s (%d MiB zst)",
			usage/disk.MiB, rawBytes/disk.MiB, assembled, seconds(start)-assembled, res.Compressed.Size/disk.MiB)

		// The bare compressors on the finished raw image (the limit),
		// given their best case: the image is read once untimed first,
		// because the first read of a fresh sparse file's holes costs
		// the kernel about 2 s per GiB, which eib's pass skips (SEEK_HOLE)
		// and which would otherwise be charged to the compressor.
		run(b, "sh", "-c", `cat "$1" > /dev/null`, "sh", img)
		start = time.Now()
		run(b, "sh", "-c", `zstd -q -3 -T0 -c "$1" > "$2"`, "sh", img, filepath.Join(work, "comp", "bench.img.zst"))
		zstd += seconds(start)
		start = time.Now()
		run(b, "sh", "-c", `pigz -c "$1" > "$2"`, "sh", img, filepath.Join(work, "comp", "bench.img.gz"))
		pigz += seconds(start)

		// EIB's method on the same table and root size.
		script := filepath.Join(work, "sfdisk.txt")
		if err := os.WriteFile(script, []byte(plan.SfdiskScript()), 0o644); err != nil {
			b.Fatal(err)
		}
		root := plan.Root()
		start = time.Now()
		run(b, "./eib-method.sh", sysroot, filepath.Join(work, "method.img"), strconv.FormatInt(plan.Bytes(), 10),
			strconv.FormatInt(root.Offset(), 10), strconv.FormatInt(root.Bytes(), 10), script,
			filepath.Join(work, "method-out"), gnupg, key.Fingerprint)
		method += seconds(start)
		os.RemoveAll(work)
	}
	n := float64(b.N)
	b.ReportMetric(eib/n, "eib-s")
	b.ReportMetric(method/n, "eib-method-s")
	b.ReportMetric(zstd/n, "zstd-s")
	b.ReportMetric(pigz/n, "pigz-s")
	b.ReportMetric(method/eib, "method/eib")
	b.ReportMetric(eib/zstd, "eib/zstd")
	b.ReportMetric(float64(rawBytes)/disk.MiB, "image-MiB")
}
