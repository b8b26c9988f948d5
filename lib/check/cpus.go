package check

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// IdleWindow is how long AtOnce watches the host's CPUs before it decides.
const IdleWindow = 250 * time.Millisecond

// AtOnce decides how n boots run: at the same time when the host has,
// over IdleWindow, about one idle CPU per boot (idle CPUs >= n - 0.5, from
// /proc/stat's idle and iowait time), else one after the other. Boots at
// the same time get DefaultCPUs vCPUs each when the idle CPUs cover them
// all, else fewer (at least 1): the guests' vCPUs never outnumber the idle
// CPUs, because under TCG a guest whose vCPU threads wait for a host CPU
// stalls on its own spinlocks (measured here: the Debian demo's two boots
// at once took 61 and 65 s with 2 vCPUs each on 2 CPUs, 48 and 35 s with 1
// each; one after the other 38 + 32 s). A TCG boot keeps a CPU busy: on a
// host that other builds or tests keep busy, boots at once would only take
// CPU from those, and from each other.
//
// It returns whether the boots run at once, the vCPUs of each boot (Boot.CPUs),
// and, for the build log, how and why: "at the same time, 1 vCPU each (1.9
// of 2 CPUs idle over 250ms)". Where /proc/stat cannot be read, the host's
// CPU count stands for its idle CPUs.
func AtOnce(ctx context.Context, n int) (bool, int, string) {
	cpus := runtime.NumCPU()
	if n < 2 {
		return false, DefaultCPUs, "alone"
	}
	idle, err := IdleCPUs(ctx, IdleWindow)
	why := fmt.Sprintf("%.1f of %d CPUs idle over %s", idle, cpus, IdleWindow)
	if err != nil {
		idle, why = float64(cpus), fmt.Sprintf("%d CPUs, idle time unknown: %v", cpus, err)
	}
	at, each := split(n, idle)
	if !at {
		return false, each, "one after the other (" + why + ")"
	}
	unit := "vCPUs"
	if each == 1 {
		unit = "vCPU"
	}
	return true, each, fmt.Sprintf("at the same time, %d %s each (%s)", each, unit, why)
}

// split is AtOnce's rule for n boots on a host with idle CPUs idle:
// whether they run at once, and each one's vCPUs.
func split(n int, idle float64) (bool, int) {
	if n < 2 || idle < float64(n)-0.5 {
		return false, DefaultCPUs
	}
	return true, min(DefaultCPUs, max(1, int(idle+0.5)/n))
}

// IdleCPUs returns how many of the host's CPUs were idle, on average, over
// window: the growth of /proc/stat's idle + iowait time over that of all
// its times, times the number of CPUs (proc(5)).
func IdleCPUs(ctx context.Context, window time.Duration) (float64, error) {
	idle0, total0, err := procStatCPU()
	if err != nil {
		return 0, err
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	idle1, total1, err := procStatCPU()
	if err != nil {
		return 0, err
	}
	if total1 <= total0 {
		return 0, fmt.Errorf("/proc/stat: no CPU time passed in %s", window)
	}
	return float64(idle1-idle0) / float64(total1-total0) * float64(runtime.NumCPU()), nil
}

// procStatCPU reads the "cpu" line of /proc/stat: idle + iowait, and the
// sum of all fields, in clock ticks.
func procStatCPU() (idle, total uint64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat: empty")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q is not the cpu totals", sc.Text())
	}
	// user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already counted in user.
	for i, s := range fields[1:] {
		if i >= 8 {
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return idle, total, nil
}
