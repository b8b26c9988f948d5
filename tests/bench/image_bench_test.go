// Package bench compares eib's image step with EIB's method and with the
// bare compressor. It is a benchmark, not a timed test:
//
//	sudo go test -run '^$' -bench ImageStep -benchtime 1x ./tests/bench
//
// (-v also logs each run's steps: the assembly's, the floor's, the
// method's.)
//
// EIB_BENCH_SYSROOT names a deployed sysroot to use (e.g. the demo build's
// ostree checkout); by default the sysroot's deployment is made of the
// host's /usr/bin, /usr/sbin and /usr/lib/x86_64-linux-gnu (about 1 GiB,
// hardlinked, with a second hardlink per file as ostree's repo objects);
// EIB_BENCH_SIZE=small leaves out /usr/lib/x86_64-linux-gnu (about
// 360 MiB), to compare eib's peak RSS at two image sizes.
//
// With -benchtime Nx each variant runs N times, interleaved (eib-zst,
// eib-gz, floor, EIB's method, then again), and each reports its minimum:
// the machine is shared, and the minimum is the run least disturbed.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
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
	srcs := []string{"/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"}
	if os.Getenv("EIB_BENCH_SIZE") == "small" {
		srcs = srcs[:2]
	}
	for _, src := range srcs {
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

// vlogf logs one run's steps with -v only: without it, a benchmark's log
// is cut after 10 lines, and the summary BenchmarkImageStep logs last
// must stay.
func vlogf(b *testing.B, format string, args ...any) {
	b.Helper()
	if testing.Verbose() {
		b.Logf(format, args...)
	}
}

// eibStep runs eib's image step on sysroot into work/eib and work/out-<comp>:
// the layout and plan, GRUB (boot.Prepare), the assembly from files, then
// one pass of compression + both sha256 + both signatures. It returns the
// plan, the seconds to the assembled raw image and the total seconds.
func eibStep(b *testing.B, ctx context.Context, sysroot, dep, work string, comp output.Compression, signer sign.Signer) (disk.Plan, float64, float64) {
	for _, d := range []string{"eib", "out-" + string(comp)} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
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
	planned := seconds(start)
	setup, err := boot.Prepare(ctx, plan, boot.Options{Sysroot: sysroot, Deployment: dep, TmpDir: filepath.Join(work, "eib"), Timeout: 1})
	if err != nil {
		b.Fatal(err)
	}
	vlogf(b, "eib-%s: usage and plan %.2f s, GRUB (boot.Prepare) %.2f s", comp, planned, seconds(start)-planned)
	rel, _ := filepath.Rel(sysroot, dep)
	img := filepath.Join(work, "eib", "bench.img")
	err = disk.Assemble(ctx, plan, disk.Content{Sysroot: sysroot, Deployment: dep, Immutable: []string{"/" + rel},
		Version: "bench", ESP: setup.ESP, Raw: setup.Raw, Epoch: -1, Log: func(f string, a ...any) {
			vlogf(b, "eib-%s: assemble: %s", comp, fmt.Sprintf(f, a...))
		}}, img)
	if err != nil {
		b.Fatal(err)
	}
	assembled := seconds(start)
	res, err := output.Image{Raw: img, OutDir: filepath.Join(work, "out-"+string(comp)), Name: "bench.img",
		Compression: comp, Signer: signer}.Write(ctx)
	if err != nil {
		b.Fatal(err)
	}
	total := seconds(start)
	vlogf(b, "eib-%s: usage %d MiB, image %d MiB: assembled in %.2f s, outputs in %.2f s (%d MiB %s), total %.2f s",
		comp, usage/disk.MiB, plan.Bytes()/disk.MiB, assembled, total-assembled, res.Compressed.Size/disk.MiB, comp, total)
	os.RemoveAll(filepath.Join(work, "eib"))
	os.RemoveAll(filepath.Join(work, "out-"+string(comp)))
	return plan, assembled, total
}

// floorStep is the physical floor of the image step: mkfs.ext4 -d of the
// sysroot into the root partition's place in a sparse file of the plan's
// size (the same block size, offset and -E options as eib, and eatmydata
// as eib uses it when installed), then the bare `zstd -T0 -3` on that
// file, nothing else. It returns the mkfs seconds, the compressor's
// seconds on a cold image (its holes read for the first time, as a script
// would) and on a warm one (read once untimed first: the compressor's best
// case, which the floor ratio uses).
func floorStep(b *testing.B, sysroot, work string, plan disk.Plan) (mkfs, cold, warm float64) {
	dir := filepath.Join(work, "floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "floor.img")
	root := plan.Root()
	args := []string{"mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "ostree",
		"-E", "offset=" + strconv.FormatInt(root.Offset(), 10) + ",nodiscard,assume_storage_prezeroed=1",
		"-d", sysroot, img, strconv.FormatInt(root.Bytes()/4096, 10)}
	if _, err := exec.LookPath("eatmydata"); err == nil {
		args = append([]string{"eatmydata"}, args...)
	}
	start := time.Now()
	run(b, "truncate", "-s", strconv.FormatInt(plan.Bytes(), 10), img)
	run(b, args[0], args[1:]...)
	mkfs = seconds(start)
	out := filepath.Join(dir, "floor.img.zst")
	start = time.Now()
	run(b, "sh", "-c", `zstd -q -3 -T0 -f -c "$1" > "$2"`, "sh", img, out)
	cold = seconds(start)
	run(b, "sh", "-c", `cat "$1" > /dev/null`, "sh", img)
	start = time.Now()
	run(b, "sh", "-c", `zstd -q -3 -T0 -f -c "$1" > "$2"`, "sh", img, out)
	warm = seconds(start)
	vlogf(b, "floor: mkfs.ext4 -d %.2f s, zstd -T0 -3 %.2f s cold, %.2f s warm", mkfs, cold, warm)
	return mkfs, cold, warm
}

// methodStep runs eib-method.sh (EIB's method, gz with pigz) for the same
// table and partition sizes as plan.
func methodStep(b *testing.B, sysroot, dep, work, gnupg, keyID string, plan disk.Plan) float64 {
	out := filepath.Join(work, "method-out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(out)
	script := filepath.Join(work, "sfdisk.txt")
	if err := os.WriteFile(script, []byte(plan.SfdiskScript()), 0o644); err != nil {
		b.Fatal(err)
	}
	esp, ok := plan.Part(disk.RoleESP)
	if !ok {
		b.Fatal("the amd64 layout has no ESP")
	}
	root := plan.Root()
	img := filepath.Join(work, "method.img")
	defer os.Remove(img)
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	start := time.Now()
	run(b, "./eib-method.sh", sysroot, dep, img, i64(plan.Bytes()), i64(esp.Offset()), i64(esp.Bytes()),
		i64(root.Offset()), i64(root.Bytes()), script, out, gnupg, keyID)
	s := seconds(start)
	vlogf(b, "eib-method (pigz): %.2f s", s)
	return s
}

// peakRSS returns this process's peak resident set (eib's image step runs
// in it) and the largest of its waited-for children's (mkfs.ext4, zstd,
// debugfs, e2fsck...), in MiB.
func peakRSS() (self, children float64) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = float64(ru.Maxrss) / 1024 // KiB on Linux
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return self, float64(ru.Maxrss) / 1024
}

// BenchmarkImageStep times, on one sysroot, interleaved: eib's image step
// with zst (its default) and with gz, the floor (floorStep) and EIB's
// method with pigz (eib-method.sh), and reports each one's minimum over the
// iterations, the ratios eib-zst/floor, eib-method/eib-gz and
// eib-method/eib-zst, and eib's peak RSS during its image steps.
func BenchmarkImageStep(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (loop device and mount for EIB's method)")
	}
	harness.Need(b, "losetup", "mount", "rsync", "pigz", "zstd", "gpg", "sha256sum", "mkfs.ext4", "mkfs.vfat",
		"setfattr", "chattr", "grub-mkimage")
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

	best := func(p *float64, v float64) {
		if *p == 0 || v < *p {
			*p = v
		}
	}
	var zst, gz, method, floor, floorCold, zstAsm float64
	var rssSelf, rssChildren, sysMiB float64
	var rawBytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		work := filepath.Join(dir, "run"+strconv.Itoa(i))
		if err := os.MkdirAll(work, 0o755); err != nil {
			b.Fatal(err)
		}
		plan, asm, t := eibStep(b, ctx, sysroot, dep, work, output.Zstd, signer)
		best(&zst, t)
		best(&zstAsm, asm)
		_, _, t = eibStep(b, ctx, sysroot, dep, work, output.Gzip, signer)
		best(&gz, t)
		if i == 0 {
			// Before the floor and EIB's method run children of their own.
			rssSelf, rssChildren = peakRSS()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			sysMiB = float64(ms.Sys) / disk.MiB
		}
		rawBytes = plan.Bytes()
		mkfs, cold, warm := floorStep(b, sysroot, work, plan)
		best(&floor, mkfs+warm)
		best(&floorCold, mkfs+cold)
		best(&method, methodStep(b, sysroot, dep, work, gnupg, key.Fingerprint, plan))
		os.RemoveAll(work)
	}
	b.StopTimer()
	b.Logf("minimum of %d interleaved run(s): eib-zst %.2f s (assembled in %.2f s), eib-gz %.2f s, eib-method (pigz) %.2f s, floor %.2f s (%.2f s with a cold image)",
		b.N, zst, zstAsm, gz, method, floor, floorCold)
	b.Logf("ratios: eib-zst/floor %.2f (%.2f against the cold floor), eib-method/eib-gz %.2f, eib-method/eib-zst %.2f",
		zst/floor, zst/floorCold, method/gz, method/zst)
	b.Logf("peak RSS during eib's image steps: eib process %.0f MiB (Go runtime Sys %.0f MiB), largest child %.0f MiB; image %d MiB",
		rssSelf, sysMiB, rssChildren, rawBytes/disk.MiB)
	b.ReportMetric(zst, "eib-zst-s")
	b.ReportMetric(gz, "eib-gz-s")
	b.ReportMetric(method, "eib-method-s")
	b.ReportMetric(floor, "floor-s")
	b.ReportMetric(zst/floor, "eib-zst/floor")
	b.ReportMetric(method/gz, "eib-method/eib-gz")
	b.ReportMetric(method/zst, "eib-method/eib-zst")
	b.ReportMetric(rssSelf, "eib-rss-MiB")
	b.ReportMetric(rssChildren, "child-rss-MiB")
	b.ReportMetric(float64(rawBytes)/disk.MiB, "image-MiB")
}
