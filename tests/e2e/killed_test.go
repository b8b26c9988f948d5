package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/cgroup"
	"github.com/eib-builder/eib/tests/harness"
)

// bg is an eib build running in the background.
type bg struct {
	cmd  *exec.Cmd
	out  *harness.LockedBuffer
	done chan struct{} // closed once it has exited and been reaped
}

// startBuild starts the demo build in the background, with env (KEY=VALUE)
// added to its environment.
func (p *project) startBuild(ctx context.Context, env ...string) *bg {
	p.T.Helper()
	b := &bg{cmd: p.buildCommand(ctx), out: &harness.LockedBuffer{}, done: make(chan struct{})}
	b.cmd.Env = append(b.cmd.Env, env...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		p.T.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	return b
}

// waitUntil polls cond every 10 ms until it holds; at timeout, or when
// the build exits first, the test fails with the build's output.
func (b *bg) waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-b.done:
			t.Fatalf("waiting for %s: the build ended:\n%s", what, tail(b.out.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s passed:\n%s", what, timeout, tail(b.out.String(), 40))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill9 SIGKILLs eib (no cleanup of its own can run) and waits until it
// is reaped.
func (b *bg) kill9() {
	_ = b.cmd.Process.Kill()
	<-b.done
}

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i:], ") Z")
}

// cmdline is a process's command line, for a message.
func cmdline(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
}

// outFiles lists the files in the outdir.
func (p *project) outFiles() []string {
	ents, _ := os.ReadDir(p.Outdir())
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// killPoint is one point of a build at which TestKilledBuildLeavesNothingToTheNext
// SIGKILLs eib.
type killPoint struct {
	name string
	// image is INI text for the [image] section of the localdir's
	// config/defaults.ini, hooks its hook files (path in the localdir ->
	// content; a .chroot hook is made executable).
	image string
	hooks map[string]string
	// env is added to the environment of both builds.
	env []string
	// reached reports whether the killed build is at the point.
	reached func(k *killRun) bool
	// outlives are command names (/proc/PID/comm) of processes the point
	// leaves running after eib's death: at least one must be there, and
	// the next build must log the kill of each. Other processes of the
	// killed build may end on their own before the next build starts.
	outlives []string
	// after checks the state the kill left, before the next build.
	after func(t *testing.T, k *killRun)
}

// killRun is a killPoint's run: the killed build and its cgroup.
type killRun struct {
	t     *testing.T
	p     *project
	b     *bg
	group string // the killed build's cgroup directory, once it entered it
}

// procs lists the processes (not zombies) in the killed build's cgroup and
// its child groups, eib's own included; none before eib entered it.
func (k *killRun) procs() []int {
	if k.group == "" {
		// The "0::" line is the cgroup v2 one (there are others on a
		// hybrid hierarchy).
		data, _ := os.ReadFile("/proc/" + strconv.Itoa(k.b.cmd.Process.Pid) + "/cgroup")
		var rel string
		for _, line := range strings.Split(string(data), "\n") {
			if r, ok := strings.CutPrefix(line, "0::"); ok {
				rel = r
			}
		}
		if !strings.HasPrefix(filepath.Base(rel), "eib-") {
			return nil
		}
		mnt, err := cgroup.Mount()
		if err != nil {
			k.t.Fatal(err)
		}
		k.group = filepath.Join(mnt, rel)
	}
	pids, err := (&cgroup.Group{Path: k.group}).Procs()
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(pids, func(pid int) bool { return !running(pid) })
}

// named is the processes of procs whose command name is one of names, or
// starts with a name ending in "*".
func (k *killRun) named(names ...string) []int {
	var found []int
	for _, pid := range k.procs() {
		if commIs(pid, names) {
			found = append(found, pid)
		}
	}
	return found
}

func commIs(pid int, names []string) bool {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	comm := strings.TrimSpace(string(data))
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(comm, p) || comm == n {
			return comm != ""
		}
	}
	return false
}

// running names a command among the killed build's processes.
func runningNamed(names ...string) func(k *killRun) bool {
	return func(k *killRun) bool { return len(k.named(names...)) > 0 }
}

// bigHook puts 64 MiB of random bytes into the deployment's /var: mkfs.ext4
// copies them into the image, and the compressed image is as large, so
// that the mkfs and the copy to the publish destination last long enough
// to be caught (hundreds of ms, where the test polls every 10 ms).
const bigHook = `head -c 64M /dev/urandom > "${OSTREE_VAR:?}/big"` + "\n"

// TestKilledBuildLeavesNothingToTheNext SIGKILLs eib at each point of a
// demo build (killPoint) in turn: in an image hook, a .chroot image hook,
// mkfs.ext4 of the image, the xz compression of the image outputs (an
// external xz, [image] compression = xz), the QEMU boot of the check
// stage, and the publish to a local directory once its staging copy
// .<outversion>.inprogress exists. After each, the next build with the
// same lock must succeed; it logs the kill of every process of the killed
// build that was still there (at least those of outlives, by pid), no
// process of the killed build runs after it, no mount or loop device is
// left (the project's cleanup), and the publish directory holds exactly
// one release, its own, whose SHA256SUMS verifies and lists all of it and
// nothing else (no staging copy left either).
func TestKilledBuildLeavesNothingToTheNext(t *testing.T) {
	needDemo(t)
	points := []killPoint{
		{
			// The hook waits for a sleep and started a setsid daemon
			// that would write into the next build's outdir 5 s later.
			name:  "hook",
			image: "hooks_add = 90-hang\n",
			hooks: map[string]string{"hooks/image/90-hang": `if [ -e "$EIB_LOCALDIR/hang" ]; then
  setsid sh -c 'sleep 5; touch "$EIB_OUTDIR/stray"' </dev/null >/dev/null 2>&1 &
  sleep 600 &
  touch "$EIB_LOCALDIR/ready"
  wait
fi
`},
			reached: func(k *killRun) bool {
				_, err := os.Stat(filepath.Join(k.p.Local, "ready"))
				return err == nil && len(k.named("sleep")) >= 2
			},
			outlives: []string{"sleep", "sh"},
		},
		{
			// The demo OS has busybox's sh and sleep, no bash.
			name:  "chroot hook",
			image: "hooks_add = 90-hang.chroot\n",
			hooks: map[string]string{"hooks/image/90-hang.chroot": "#!/bin/sh\nif [ -e /tmp/eib-local/hang ]; then sleep 600; fi\n"},
			// bwrap --die-with-parent: the sandbox dies with eib.
			reached: runningNamed("sleep"),
		},
		{
			name:    "mkfs",
			image:   "hooks_add = 80-big\n",
			hooks:   map[string]string{"hooks/image/80-big": bigHook},
			reached: runningNamed("mkfs.ext4", "mke2fs"),
		},
		{
			name:    "compression",
			image:   "compression = xz\n",
			reached: runningNamed("xz"),
		},
		{
			name:    "boot",
			reached: runningNamed("qemu-system-*"),
		},
		{
			// Both builds have one outversion (SOURCE_DATE_EPOCH): the
			// next build must clean the killed one's staging copy.
			name:  "publish",
			image: "hooks_add = 80-big\n",
			hooks: map[string]string{"hooks/image/80-big": bigHook},
			env:   []string{"SOURCE_DATE_EPOCH=1700000000"},
			reached: func(k *killRun) bool {
				staging, _ := filepath.Glob(filepath.Join(k.p.pubs, ".*.inprogress"))
				return len(staging) > 0
			},
			after: func(t *testing.T, k *killRun) {
				staging, _ := filepath.Glob(filepath.Join(k.p.pubs, ".*.inprogress"))
				if len(staging) != 1 || len(publishedEntries(k.p)) != 1 {
					t.Fatalf("the build was not killed while publishing: %s holds %v", k.p.pubs, publishedEntries(k.p))
				}
			},
		},
	}
	for _, pt := range points {
		t.Run(strings.ReplaceAll(pt.name, " ", "-"), func(t *testing.T) {
			killAndRebuild(t, pt)
		})
	}
}

// killAndRebuild runs pt: a demo build killed at the point, then the next
// build, and checks what the second found and left.
func killAndRebuild(t *testing.T, pt killPoint) {
	p := newDemoProject(t, "[check]\nfirmware = bios\n\n[image]\n"+pt.image)
	for rel, content := range pt.hooks {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".chroot") {
			mode = 0o755
		}
		p.Write(rel, content, mode)
	}
	hang := p.Write("hang", "", 0o644) // only the killed build hangs in its hook
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	k := &killRun{t: t, p: p}
	k.b = p.startBuild(ctx, pt.env...)
	eib := k.b.cmd.Process.Pid
	k.b.waitUntil(t, pt.name, 15*time.Minute, func() bool { return pt.reached(k) })
	before := k.procs()
	held := describe(before, eib)
	k.b.kill9()
	// What the kernel kills with eib (PR_SET_PDEATHSIG) goes within
	// milliseconds; what is left then stays until it ends on its own.
	time.Sleep(300 * time.Millisecond)
	left := k.procs()
	t.Logf("killed eib (pid %d) at %s: its cgroup held %s; after the kill: %s", eib, pt.name, held, describe(left, eib))
	all := append(slices.Clone(before), left...)
	defer func() {
		for _, pid := range all {
			if pid != eib && running(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}()
	var outliving []int
	for _, pid := range left {
		if commIs(pid, pt.outlives) {
			outliving = append(outliving, pid)
		}
	}
	if len(pt.outlives) > 0 && len(outliving) == 0 {
		t.Fatalf("no process %v of the killed build outlived it: the test would prove nothing", pt.outlives)
	}
	if pt.after != nil {
		pt.after(t, k)
	}
	if err := os.Remove(hang); err != nil {
		t.Fatal(err)
	}

	// The next build.
	cmd := p.buildCommand(ctx)
	cmd.Env = append(cmd.Env, pt.env...)
	log, code := p.combined(cmd)
	if code != 0 {
		t.Fatalf("the build after one killed at %s exited %d:\n%s", pt.name, code, tail(log, 60))
	}
	killed := map[int]bool{}
	for _, line := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(line, "killing leftover process "); ok {
			t.Log("next build: " + line)
			pid, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil || !slices.Contains(left, pid) {
				t.Errorf("the next build killed a process that was not left by the killed build (%v): %s", left, line)
			}
			killed[pid] = true
		}
		if strings.Contains(line, "still ran") {
			t.Errorf("the next build left a process of its own: %s", line)
		}
	}
	for _, pid := range outliving {
		if !killed[pid] {
			t.Errorf("the next build did not log the kill of process %d (%s) of the killed build", pid, cmdline(pid))
		}
	}
	for _, pid := range all {
		if pid != eib && running(pid) {
			t.Errorf("process %d (%s) of the build killed at %s still runs after the next build", pid, cmdline(pid), pt.name)
		}
	}
	if _, err := os.Stat(k.group); err == nil {
		t.Errorf("the cgroup %s is still there after the next build", k.group)
	}
	checkRelease(t, p)
}

// describe lists pids (but eib's) with their command lines, for a log.
func describe(pids []int, eib int) string {
	var s []string
	for _, pid := range pids {
		if pid != eib {
			s = append(s, strconv.Itoa(pid)+" ("+cmdline(pid)+")")
		}
	}
	if len(s) == 0 {
		return "no other process"
	}
	return strings.Join(s, ", ")
}

// publishedEntries lists the names in the publish directory.
func publishedEntries(p *project) []string {
	ents, _ := os.ReadDir(p.pubs)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// checkRelease checks the publish directory after the last build: one
// complete release and nothing else; sha256sum -c verifies its
// SHA256SUMS, which lists every file of it but SHA256SUMS(.asc) and only
// files named after its outversion; the outdir holds only those files.
func checkRelease(t *testing.T, p *project) {
	t.Helper()
	ents := publishedEntries(p)
	if len(ents) != 1 || strings.HasPrefix(ents[0], ".") {
		t.Fatalf("the publish directory %s holds %v, want one release", p.pubs, ents)
	}
	ov := ents[0]
	dir := filepath.Join(p.pubs, ov)
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c in %s: %v\n%s", dir, err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{"SHA256SUMS": true, "SHA256SUMS.asc": true}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Errorf("%s/SHA256SUMS: line %q", dir, line)
			continue
		}
		name := strings.TrimPrefix(f[1], "*")
		if !strings.HasPrefix(name, ov+".") {
			t.Errorf("%s/SHA256SUMS lists %s, not a file of the release %s", dir, name, ov)
		}
		listed[name] = true
	}
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if !listed[f.Name()] {
			t.Errorf("the release %s holds %s, which its SHA256SUMS does not list", dir, f.Name())
		}
	}
	for _, f := range p.outFiles() {
		if !listed[f] {
			t.Errorf("the outdir %s holds %s, which the release does not list", p.Outdir(), f)
		}
	}
}
