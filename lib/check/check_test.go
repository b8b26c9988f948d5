package check

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check/checktest"
)

const testMarker = "EIB-TEST-BOOT-OK"

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func boot(dir, img string, fw Firmware, timeout time.Duration) Boot {
	return Boot{
		Image:     img,
		Firmware:  fw,
		Marker:    regexp.MustCompile(testMarker),
		Timeout:   timeout,
		MemoryMiB: 256,
		LogPath:   filepath.Join(dir, "boot-"+string(fw)+".log"),
		WorkDir:   dir,
	}
}

func TestBootSeesMarkerAndLeavesImageUntouched(t *testing.T) {
	for _, fw := range []Firmware{BIOS, UEFI} {
		t.Run(string(fw), func(t *testing.T) {
			dir := t.TempDir()
			script := checktest.Script([]string{"line one", testMarker}, "halt")
			img := checktest.BIOSImage(t, dir, script)
			if fw == UEFI {
				img = checktest.UEFIImage(t, dir, script)
			}
			before := fileSum(t, img)
			res, err := Run(context.Background(), boot(dir, img, fw, 60*time.Second))
			if err != nil {
				t.Fatalf("boot failed: %v", err)
			}
			if res.Status != StatusOK || res.Elapsed <= 0 || res.Accel == "" {
				t.Fatalf("result %+v: want ok with a time to marker and an accelerator", res)
			}
			log, err := os.ReadFile(res.LogPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(log, []byte("line one")) || !bytes.Contains(log, []byte(testMarker)) {
				t.Fatalf("console log %s lacks the printed lines:\n%s", res.LogPath, log)
			}
			if fileSum(t, img) != before {
				t.Fatalf("the boot modified the image %s", img)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "boot-*-*")); len(left) != 0 {
				t.Fatalf("work files left behind: %v", left)
			}
			t.Logf("%s: marker after %.2f s (%s)", fw, res.Elapsed.Seconds(), res.Accel)
		})
	}
}

func TestMarkerNeverSeenFailsAfterTimeoutWithTailAndNoQEMULeft(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := 1; i <= 40; i++ {
		lines = append(lines, "console line "+strings.Repeat("x", i%3)+string(rune('A'+i%26)))
	}
	img := checktest.BIOSImage(t, dir, checktest.Script(append(lines, "last line before the wait"), "sleep 3600"))
	start := time.Now()
	res, err := Run(context.Background(), boot(dir, img, BIOS, 3*time.Second))
	took := time.Since(start)
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *check.Error", err)
	}
	if res.Status != StatusFailed || !strings.Contains(res.Reason, "not seen within 3s") {
		t.Fatalf("result %+v: want failed, not seen within 3s", res)
	}
	if took < 3*time.Second || took > time.Minute {
		t.Fatalf("the check took %s, want the 3 s timeout", took)
	}
	if len(res.Tail) != tailLines || res.Tail[len(res.Tail)-1] != "last line before the wait" {
		t.Fatalf("tail has %d lines ending %q, want %d ending with the last console line",
			len(res.Tail), res.Tail[len(res.Tail)-1], tailLines)
	}
	msg := err.Error()
	for _, want := range []string{"bios firmware", "not seen within", res.LogPath, "  | last line before the wait", "last 30 console lines (bios)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if left := checktest.QEMUProcesses(t, dir); len(left) != 0 {
		t.Fatalf("qemu still running after the timeout: %v", left)
	}
}

func TestGuestPowerOffBeforeMarkerFails(t *testing.T) {
	dir := t.TempDir()
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{"booting something else"}, "halt"))
	res, err := Run(context.Background(), boot(dir, img, BIOS, 60*time.Second))
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *check.Error", err)
	}
	if !strings.Contains(res.Reason, "ended before the marker") || !slices.Contains(res.Tail, "booting something else") {
		t.Fatalf("result %+v: want 'ended before the marker' with the console tail", res)
	}
}

func TestCancelKillsQEMU(t *testing.T) {
	dir := t.TempDir()
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{"waiting"}, "sleep 3600"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the emulator is up.
		for i := 0; i < 200 && len(checktest.QEMUProcesses(t, dir)) == 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err := Run(ctx, boot(dir, img, BIOS, time.Minute))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Minute {
		t.Fatalf("cancel took %s", time.Since(start))
	}
	if left := checktest.QEMUProcesses(t, dir); len(left) != 0 {
		t.Fatalf("qemu still running after cancel: %v", left)
	}
}

func TestCompressedImagesBoot(t *testing.T) {
	dir := t.TempDir()
	img := checktest.BIOSImage(t, dir, checktest.Script([]string{testMarker}, "halt"))
	want := fileSum(t, img)
	for _, c := range []struct{ suffix, tool string }{{".gz", "gzip"}, {".xz", "xz"}, {".zst", "zstd"}} {
		t.Run(c.suffix, func(t *testing.T) {
			checktest.Need(t, c.tool)
			comp := img + c.suffix
			out, err := exec.Command("sh", "-c", c.tool+` -c "$1" > "$2"`, "sh", img, comp).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v %s", c.tool, err, out)
			}
			if !IsCompressed(comp) {
				t.Fatalf("IsCompressed(%s) = false", comp)
			}
			work := t.TempDir()
			raw, remove, err := PrepareImage(context.Background(), comp, work)
			if err != nil {
				t.Fatal(err)
			}
			if fileSum(t, raw) != want {
				t.Fatalf("expanded %s differs from the original image", comp)
			}
			res, err := Run(context.Background(), boot(work, raw, BIOS, 60*time.Second))
			if err != nil || res.Status != StatusOK {
				t.Fatalf("boot of expanded %s: %+v %v", comp, res, err)
			}
			if err := remove(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(raw); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("expanded copy %s not removed", raw)
			}
		})
	}
}

func TestPrepareImageReportsCorruptInput(t *testing.T) {
	checktest.Need(t, "zstd")
	dir := t.TempDir()
	bad := filepath.Join(dir, "broken.img.zst")
	if err := os.WriteFile(bad, []byte("not zstd at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := PrepareImage(context.Background(), bad, dir)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("err = %v, want an error naming the file and zstd", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.raw")); len(left) != 0 {
		t.Fatalf("partial output left: %v", left)
	}
}

func TestPrepareImageExpandsSparsely(t *testing.T) {
	checktest.Need(t, "zstd")
	dir := t.TempDir()
	img := filepath.Join(dir, "big.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), 64<<20-3)
	f.Close()
	if out, err := exec.Command("zstd", "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v %s", err, out)
	}
	raw, remove, err := PrepareImage(context.Background(), img+".zst", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	if fileSum(t, raw) != fileSum(t, img) {
		t.Fatal("expanded image differs")
	}
	var st os.FileInfo
	if st, err = os.Stat(raw); err != nil {
		t.Fatal(err)
	}
	used := st.Sys().(*syscall.Stat_t).Blocks * 512
	if st.Size() != 64<<20 || used > 1<<20 {
		t.Fatalf("expanded %d bytes using %d bytes on disk, want 64 MiB using less than 1 MiB", st.Size(), used)
	}
}

func TestAArch64BootsWithAAVMF(t *testing.T) {
	checktest.Need(t, "qemu-system-aarch64")
	if _, err := findFlash(aavmfPairs, "qemu-efi-aarch64"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	img := checktest.ShellImage(t, dir, "echo "+testMarker, "reset -s")
	res, err := Run(context.Background(), boot(dir, img, AArch64UEFI, 120*time.Second))
	if err != nil || res.Status != StatusOK {
		t.Fatalf("aarch64 boot: %+v %v", res, err)
	}
	t.Logf("aarch64-uefi: marker after %.2f s", res.Elapsed.Seconds())
}

func TestAArch64WithoutEmulatorIsSkippedWithReason(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no qemu-system-aarch64 to be found
	dir := t.TempDir()
	res, err := Run(context.Background(), boot(dir, filepath.Join(dir, "none.img"), AArch64UEFI, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusSkipped || !strings.Contains(res.Reason, "qemu-system-aarch64 not found") || !strings.Contains(res.Reason, "qemu-system-arm") {
		t.Fatalf("result %+v: want skipped, naming the missing emulator and its package", res)
	}
}

func TestRunAllInParallelKeepsOrderAndResults(t *testing.T) {
	dir := t.TempDir()
	bt := []Boot{
		boot(dir, checktest.BIOSImage(t, dir, checktest.Script([]string{"bios says hello", testMarker}, "halt")), BIOS, 120*time.Second),
		boot(dir, checktest.UEFIImage(t, dir, checktest.Script([]string{"uefi says hello", testMarker}, "halt")), UEFI, 120*time.Second),
	}
	var mu sync.Mutex
	var logged []string
	for i := range bt {
		bt[i].CPUs = 1 // as AtOnce gives two boots on an idle 2-CPU host
		bt[i].Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			logged = append(logged, fmt.Sprintf(format, args...))
		}
	}
	results, errs := RunAll(context.Background(), bt, true, nil)
	if len(logged) != 2 || !strings.Contains(logged[0], "; 1 vCPU, ") || !strings.Contains(logged[1], "; 1 vCPU, ") {
		t.Errorf("want both boots logged with 1 vCPU: %q", logged)
	}
	if len(results) != 2 || len(errs) != 2 {
		t.Fatalf("%d results and %d errors, want 2 of each", len(results), len(errs))
	}
	for i, want := range []string{"bios says hello", "uefi says hello"} {
		if errs[i] != nil || results[i].Status != StatusOK || results[i].Firmware != bt[i].Firmware {
			t.Fatalf("boot %d: %+v, %v: want ok with %s firmware", i, results[i], errs[i], bt[i].Firmware)
		}
		log, err := os.ReadFile(bt[i].LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(log, []byte(want)) || !bytes.Contains(log, []byte(testMarker)) {
			t.Fatalf("console log %s lacks %q and the marker:\n%s", bt[i].LogPath, want, log)
		}
	}
	if left := checktest.QEMUProcesses(t, dir); len(left) != 0 {
		t.Fatalf("qemu still running: %v", left)
	}
}

// A failed boot stops the boots after it at once, as a loop that stops at
// the first failure would not have started them: they are dropped from the
// results, with their console logs.
func TestRunAllInParallelStopsAtFirstFailure(t *testing.T) {
	dir := t.TempDir()
	bt := []Boot{
		boot(dir, checktest.BIOSImage(t, dir, checktest.Script([]string{"booting something else"}, "halt")), BIOS, 120*time.Second),
		boot(dir, checktest.UEFIImage(t, dir, checktest.Script([]string{"waiting"}, "sleep 3600")), UEFI, 120*time.Second),
	}
	start := time.Now()
	results, errs := RunAll(context.Background(), bt, true, nil)
	took := time.Since(start)
	if len(results) != 1 || len(errs) != 1 {
		t.Fatalf("%d results, want only the failed first boot's", len(results))
	}
	var be *Error
	if !errors.As(errs[0], &be) || !strings.Contains(results[0].Reason, "ended before the marker") {
		t.Fatalf("first boot: %+v, %v: want its failure", results[0], errs[0])
	}
	if took > 60*time.Second {
		t.Fatalf("RunAll took %s: the second boot was not cancelled", took)
	}
	if _, err := os.Stat(bt[1].LogPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dropped boot's console log %s is still there (%v)", bt[1].LogPath, err)
	}
	if left := checktest.QEMUProcesses(t, dir); len(left) != 0 {
		t.Fatalf("qemu still running: %v", left)
	}
}

// IdleCPUs sees a busy CPU: with one goroutine spinning, at most
// NumCPU - 0.5 CPUs are idle (0.5: other work of the host may idle less,
// never more).
func TestIdleCPUsSeesABusyCPU(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
		}
	}()
	time.Sleep(20 * time.Millisecond)
	idle, err := IdleCPUs(ctx, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if max := float64(runtime.NumCPU()) - 0.5; idle < 0 || idle > max {
		t.Fatalf("%.2f CPUs idle with one of %d busy, want 0 to %.1f", idle, runtime.NumCPU(), max)
	}
	if at, _, why := AtOnce(ctx, runtime.NumCPU()); at || !strings.HasPrefix(why, "one after the other (") || !strings.Contains(why, "CPUs idle over") {
		t.Fatalf("AtOnce(%d) with a CPU busy: %v (%s), want one after the other", runtime.NumCPU(), at, why)
	}
}

// Boots run at once when about one CPU per boot is idle, with no more
// vCPUs in all than idle CPUs (at least 1 each, at most DefaultCPUs).
func TestSplitNeverOvercommitsTheIdleCPUs(t *testing.T) {
	for _, c := range []struct {
		n    int
		idle float64
		at   bool
		each int
	}{
		{1, 8, false, DefaultCPUs},
		{2, 0.3, false, DefaultCPUs},
		{2, 1.4, false, DefaultCPUs},
		{2, 1.6, true, 1},
		{2, 2.0, true, 1},
		{2, 3.4, true, 1},
		{2, 3.6, true, 2},
		{2, 16, true, 2},
		{3, 3.0, true, 1},
	} {
		if at, each := split(c.n, c.idle); at != c.at || each != c.each {
			t.Errorf("split(%d boots, %.1f idle CPUs) = %v, %d vCPUs each; want %v, %d", c.n, c.idle, at, each, c.at, c.each)
		}
	}
}

// All reports each result in the order of the boots as soon as it and
// those before it are known: one after the other, before the next boot
// starts; at the same time, the first boot's when it ends, although the
// second ended before it.
func TestAllReportsEachResultWhenKnown(t *testing.T) {
	for _, parallel := range []bool{false, true} {
		var mu sync.Mutex
		var events []string
		note := func(e string) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
		}
		fake := Runner(func(_ context.Context, b Boot) (Result, error) {
			note("start " + string(b.Firmware))
			if b.Firmware == BIOS {
				time.Sleep(300 * time.Millisecond)
			}
			note("end " + string(b.Firmware))
			return Result{Firmware: b.Firmware, Status: StatusOK}, nil
		})
		bts := []Boot{{Firmware: BIOS}, {Firmware: UEFI}}
		results, _ := fake.All(context.Background(), bts, parallel, func(i int, r Result, err error) {
			note(fmt.Sprintf("report %d %s", i, r.Firmware))
		})
		want := "start bios, end bios, report 0 bios, start uefi, end uefi, report 1 uefi"
		if parallel {
			want = "start uefi, end uefi, end bios, report 0 bios, report 1 uefi"
		}
		got := strings.Join(events, ", ")
		if parallel {
			got = strings.Replace(got, "start bios, ", "", 1) // it starts with uefi, in either order
		}
		if got != want || len(results) != 2 {
			t.Errorf("at once %v: events %q, want %q", parallel, got, want)
		}
	}
}
