package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/check"
)

// checkImageRun is one eib check-image run in this process with bootImage
// replaced by fake (nil: a boot must not happen), under a TMPDIR of its
// own. It returns the exit status eib would have (cli.Exit's code, as
// urfave/cli's HandleExitCoder exits with, else main's exitCode), the
// output and error message, and how many boots were asked for.
func checkImageRun(t *testing.T, fake func(context.Context, check.Boot) (check.Result, error), args ...string) (code int, out string, boots int) {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv(check.AccelEnv, "")
	saved := bootImage
	defer func() { bootImage = saved }()
	var mu sync.Mutex // the boots of both firmwares may run at the same time
	bootImage = func(ctx context.Context, b check.Boot) (check.Result, error) {
		mu.Lock()
		boots++
		mu.Unlock()
		if fake == nil {
			t.Errorf("a boot was started for %s (want a refusal before QEMU)", b.Name)
			return check.Result{}, errors.New("no boot in this test")
		}
		return fake(ctx, b)
	}
	var buf bytes.Buffer
	cmd := newCommand(&buf)
	cmd.ErrWriter = &buf
	// No os.Exit from urfave/cli: the error comes back to look at.
	cmd.ExitErrHandler = func(context.Context, *cli.Command, error) {}
	done := make(chan error, 1)
	go func() {
		done <- cmd.Run(context.Background(), append([]string{"eib", "check-image", "--accel", "tcg"}, args...))
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("eib check-image %v did not return", args)
	}
	var ec cli.ExitCoder
	switch {
	case err == nil:
		code = exitOK
	case errors.As(err, &ec):
		code = ec.ExitCode()
	default:
		code = exitCode(err)
	}
	if err != nil {
		buf.WriteString(err.Error())
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "eib-check-*"))
	if len(left) != 0 {
		t.Errorf("eib check-image %v left %v", args, left)
	}
	return code, buf.String(), boots
}

// testDisk makes a 4 MiB GPT disk with an EFI system partition.
func testDisk(t *testing.T, dir string) string {
	return sfdiskDisk(t, filepath.Join(dir, "disk.img"), 4<<20, "label: gpt\nsize=1MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=linux\n")
}

// sfdiskDisk writes a disk file of size bytes at path, partitioned by the
// sfdisk script.
func sfdiskDisk(t *testing.T, path string, size int, script string) string {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk (make deps installs fdisk): %v\n%s", err, out)
	}
	return path
}

func compressed(t *testing.T, tool, src, dst string) string {
	t.Helper()
	if out, err := exec.Command("sh", "-c", tool+` -c "$1" > "$2"`, "sh", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", tool, err, out)
	}
	return dst
}

func TestCheckImageRefusesWhatIsNoDiskBeforeBooting(t *testing.T) {
	dir := t.TempDir()
	disk := testDisk(t, dir)
	random := filepath.Join(dir, "random.img")
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7919 + i/251)
	}
	os.WriteFile(random, b, 0o644)
	empty := filepath.Join(dir, "empty.img")
	os.WriteFile(empty, nil, 0o644)
	fifo := filepath.Join(dir, "pipe.img")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	const notDisk = "not a disk image: no MBR or GPT partition table, and not gz/xz/zst/qcow2"
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"random", random, []string{notDisk}},
		{"bzip2 of a disk", compressed(t, "bzip2", disk, disk+".bz2"), []string{notDisk, "bzip2"}},
		{"missing", filepath.Join(dir, "nothere.img"), []string{"no such file"}},
		{"empty", empty, []string{"not a disk image: an empty file"}},
		{"directory", dir, []string{"not a disk image: a directory"}},
		{"FIFO", fifo, []string{"not a disk image: a FIFO"}},
		{"gzip of random", compressed(t, "gzip", random, random+".gz"), []string{"not a disk image: gzip data whose content has no MBR or GPT partition table"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, boots := checkImageRun(t, nil, "--firmware", "both", tc.path)
			if code != exitUsage || boots != 0 {
				t.Errorf("exit %d after %d boots, want %d before any boot:\n%s", code, boots, exitUsage, out)
			}
			for _, w := range append([]string{"eib check-image: " + tc.path + ": "}, tc.want...) {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "expanding") {
				t.Errorf("refused input was expanded:\n%s", out)
			}
		})
	}
}

func TestCheckImageBootsAGzippedDiskFromAnExpandedCopy(t *testing.T) {
	dir := t.TempDir()
	disk := testDisk(t, dir)
	want, _ := os.ReadFile(disk)
	// Named like a raw image: the content says gzip.
	gz := compressed(t, "gzip", disk, filepath.Join(dir, "build.img"))
	var booted []string
	code, out, boots := checkImageRun(t, func(_ context.Context, b check.Boot) (check.Result, error) {
		got, err := os.ReadFile(b.Image)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("booted %s: %v; want the expanded disk", b.Image, err)
		}
		if !strings.HasPrefix(b.Image, os.Getenv("TMPDIR")+"/eib-check-") {
			t.Errorf("expanded into %s, not under $TMPDIR", b.Image)
		}
		booted = append(booted, string(b.Firmware))
		return check.Result{Status: check.StatusOK, Accel: "tcg", Elapsed: time.Second, LogPath: b.LogPath}, nil
	}, gz)
	if code != exitOK || boots != 1 || len(booted) != 1 || booted[0] != "uefi" {
		t.Fatalf("exit %d, boots %v; want 0 after one uefi boot (the disk has an ESP only):\n%s", code, booted, out)
	}
	if !strings.Contains(out, "expanding "+gz+" (gz)") || !strings.Contains(out, "uefi: ok, marker after 1.0 s") {
		t.Errorf("output:\n%s", out)
	}
}

func TestCheckImageBootsQCOW2AsItIs(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img (make deps): %v %s", err, out)
	}
	code, out, boots := checkImageRun(t, func(_ context.Context, b check.Boot) (check.Result, error) {
		if b.Image != img {
			t.Errorf("booted %s, want the qcow2 file itself", b.Image)
		}
		return check.Result{Status: check.StatusOK, Accel: "tcg"}, nil
	}, "--firmware", "bios", img)
	if code != exitOK || boots != 1 {
		t.Fatalf("exit %d after %d boots:\n%s", code, boots, out)
	}
}

func TestCheckImageFailedBootExitsTwoAndCleansUp(t *testing.T) {
	disk := testDisk(t, t.TempDir())
	code, out, _ := checkImageRun(t, func(_ context.Context, b check.Boot) (check.Result, error) {
		res := check.Result{Image: b.Name, Firmware: b.Firmware, Status: check.StatusFailed, Reason: "marker not seen", LogPath: b.LogPath}
		os.WriteFile(b.LogPath, []byte("console\n"), 0o644)
		return res, &check.Error{Result: res}
	}, disk)
	if code != exitBuildError || !strings.Contains(out, "boot check failed") {
		t.Fatalf("exit %d, want %d with the failure:\n%s", code, exitBuildError, out)
	}
	if strings.Contains(out, "boot-uefi.log") {
		t.Errorf("output names a console log removed with the temporary directory:\n%s", out)
	}

	// With --log-dir the logs stay, and are named.
	logs := filepath.Join(t.TempDir(), "logs")
	code, out, _ = checkImageRun(t, func(_ context.Context, b check.Boot) (check.Result, error) {
		res := check.Result{Image: b.Name, Firmware: b.Firmware, Status: check.StatusFailed, Reason: "marker not seen", LogPath: b.LogPath}
		os.WriteFile(b.LogPath, []byte("console\n"), 0o644)
		return res, &check.Error{Result: res}
	}, "--log-dir", logs, disk)
	if code != exitBuildError || !strings.Contains(out, filepath.Join(logs, "boot-uefi.log")) {
		t.Fatalf("exit %d, want %d naming the log in %s:\n%s", code, exitBuildError, logs, out)
	}
	if _, err := os.Stat(filepath.Join(logs, "boot-uefi.log")); err != nil {
		t.Errorf("--log-dir log: %v", err)
	}
}

func TestCheckImageSignalEndsTheBootAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	disk := testDisk(t, dir)
	gz := compressed(t, "gzip", disk, disk+".gz")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			code, out, boots := checkImageRun(t, func(ctx context.Context, b check.Boot) (check.Result, error) {
				// The boot is under way: the expanded copy is there.
				if _, err := os.Stat(b.Image); err != nil {
					t.Errorf("expanded copy: %v", err)
				}
				syscall.Kill(os.Getpid(), sig)
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
					t.Errorf("%s did not cancel the boot", sig)
				}
				return check.Result{Status: check.StatusFailed, Reason: "interrupted"}, ctx.Err()
			}, gz)
			said := map[syscall.Signal]string{syscall.SIGINT: "eib check-image: interrupt signal received: ", syscall.SIGTERM: "eib check-image: terminated signal received: "}[sig]
			if code != exitBuildError || boots != 1 || !strings.Contains(out, said) {
				t.Fatalf("exit %d after %d boots, want %d (interrupted):\n%s", code, boots, exitBuildError, out)
			}
		})
	}
}

// quietDisk makes a 16 MiB GPT disk whose ext4 partition holds one boot
// loader entry with quiet kernel arguments and no console=ttyS0.
func quietDisk(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "boot", "loader", "entries"), 0o755); err != nil {
		t.Fatal(err)
	}
	entry := "title OS\nlinux /vmlinuz\noptions root=LABEL=ostree rw quiet splash\n"
	if err := os.WriteFile(filepath.Join(root, "boot", "loader", "entries", "ostree-1.conf"), []byte(entry), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "quiet.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader("label: gpt\nstart=2048, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=4096, type=linux\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-d", root, "-E", "offset="+strconv.Itoa(4096*512), img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return img
}

// By default check-image boots a throw-away copy whose entry has
// console=ttyS0,115200; --serial-console off boots the image itself.
func TestCheckImageSerialConsole(t *testing.T) {
	dir := t.TempDir()
	img := quietDisk(t, dir)
	want, _ := os.ReadFile(img)
	var booted string
	fake := func(_ context.Context, b check.Boot) (check.Result, error) {
		booted = b.Image
		out, err := exec.Command("debugfs", "-R", "cat /boot/loader/entries/ostree-1.conf", b.Image+"?offset="+strconv.Itoa(4096*512)).Output()
		if err != nil {
			t.Errorf("debugfs on %s: %v", b.Image, err)
		}
		if strings.Contains(string(out), "console=ttyS0,115200") != (b.Image != img) {
			t.Errorf("booted %s with entry:\n%s", b.Image, out)
		}
		return check.Result{Status: check.StatusOK, Accel: "tcg", Elapsed: time.Second, LogPath: b.LogPath}, nil
	}
	code, out, _ := checkImageRun(t, fake, "--firmware", "uefi", img)
	if code != exitOK || booted == img || !strings.HasPrefix(booted, os.Getenv("TMPDIR")) {
		t.Errorf("exit %d, booted %s; want 0 and a copy:\n%s", code, booted, out)
	}
	if !strings.Contains(out, "check boot: added console=ttyS0,115200 to 1 boot entries of a throw-away copy (the image is unchanged") {
		t.Errorf("output:\n%s", out)
	}
	if got, _ := os.ReadFile(img); !bytes.Equal(got, want) {
		t.Error("the image changed")
	}
	code, out, _ = checkImageRun(t, fake, "--firmware", "uefi", "--serial-console", "off", img)
	if code != exitOK || booted != img || strings.Contains(out, "check boot:") {
		t.Errorf("--serial-console off: exit %d, booted %s; want 0 and the image itself:\n%s", code, booted, out)
	}
	code, out, boots := checkImageRun(t, nil, "--serial-console", "on", img)
	if code != exitUsage || boots != 0 || !strings.Contains(out, "--serial-console on: must be auto or off") {
		t.Errorf("--serial-console on: exit %d after %d boots:\n%s", code, boots, out)
	}
}

// An image with a BIOS boot partition and an ESP boots with both
// firmwares: at the same time when check.AtOnce says the host has the idle
// CPUs, else one after
// the other; either way the results are printed in the firmwares' order.
func TestCheckImageBootsBothFirmwaresAtTheSameTime(t *testing.T) {
	dir := t.TempDir()
	img := sfdiskDisk(t, filepath.Join(dir, "both.img"), 8<<20,
		"label: gpt\nsize=1MiB, type=21686148-6449-6E6F-744E-656564454649\nsize=2MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=linux\n")
	saved := bootsAtOnce
	defer func() { bootsAtOnce = saved }()
	for _, parallel := range []bool{true, false} {
		bootsAtOnce = func(_ context.Context, n int) (bool, int, string) {
			if n != 2 {
				t.Errorf("asked about %d boots, want 2", n)
			}
			return parallel, 1, fmt.Sprintf("at once: %v", parallel)
		}
		var running, most atomic.Int32
		code, out, boots := checkImageRun(t, func(ctx context.Context, b check.Boot) (check.Result, error) {
			if b.CPUs != 1 {
				t.Errorf("%s boot with %d vCPUs, want the 1 bootsAtOnce gave", b.Firmware, b.CPUs)
			}
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(500 * time.Millisecond) // long enough for the other boot to start, if it runs at the same time
			running.Add(-1)
			if b.Firmware == check.BIOS {
				time.Sleep(100 * time.Millisecond) // finishes last, printed first
			}
			return check.Result{Status: check.StatusOK, Accel: "tcg", Elapsed: time.Second, LogPath: b.LogPath}, nil
		}, "--serial-console", "off", img)
		if code != exitOK || boots != 2 {
			t.Fatalf("exit %d after %d boots, want 0 after 2:\n%s", code, boots, out)
		}
		if want := map[bool]int32{true: 2, false: 1}[parallel]; most.Load() != want {
			t.Fatalf("at once %v: at most %d boots ran at the same time, want %d:\n%s", parallel, most.Load(), want, out)
		}
		bios, uefi := strings.Index(out, "bios: ok"), strings.Index(out, "uefi: ok")
		if bios < 0 || uefi < bios || !strings.Contains(out, fmt.Sprintf("booting with 2 firmwares at once: %v\n", parallel)) {
			t.Fatalf("want the decision, then bios: ok, then uefi: ok:\n%s", out)
		}
	}
}
