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

// AtOnce decides whether n boots run at the same time: yes when the host
// has, over IdleWindow, about one idle CPU per boot (idle CPUs >= n - 0.5,
// from /proc/stat's idle and iowait time), else one after the other. A
// TCG boot keeps one CPU busy: on an idle 2-CPU build host two boots at
// once take the time of the longer one, but on a host that other builds
// or tests keep busy they only take CPU from those, and from each other.
// The description, for the build log, says how and why: "at the same time
// (1.9 of 2 CPUs idle over 250ms)". Where /proc/stat cannot be read, boots
// run at once when NumCPU >= n.
func AtOnce(ctx context.Context, n int) (bool, string) {
	cpus := runtime.NumCPU()
	if n < 2 {
		return false, "alone"
	}
	var at bool
	var why string
	if idle, err := IdleCPUs(ctx, IdleWindow); err != nil {
		at, why = cpus >= n, fmt.Sprintf("%d CPUs, idle time unknown: %v", cpus, err)
	} else {
		at, why = idle >= float64(n)-0.5, fmt.Sprintf("%.1f of %d CPUs idle over %s", idle, cpus, IdleWindow)
	}
	if at {
		return true, "at the same time (" + why + ")"
	}
	return false, "one after the other (" + why + ")"
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
