// Package engine runs a planned build (a *stage.Plan): it takes the
// lock, removes what an earlier build left under the build directories,
// recreates them, writes config.ini and fullconfig.ini, runs the stages of
// the plan in order, records the results (build.Results) after each in
// ${tmpdir}/state.json (--until, --from), runs the error stage when one
// fails, and always runs the one cleanup.
//
// The engine knows no stage: it runs the build.Stage values it is given
// by name (Plan.StageRunners), each constructed with the settings the plan
// validated, and imports no domain package.
//
// Every process of a build is held in the cgroup v2 group of its lock
// (package cgroup): the next build with the same lock kills what a killed
// one left, and the cleanup kills what is still running at the end.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/cgroup"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/lock"
	"github.com/eib-builder/eib/lib/stage"
)

// Run runs the planned build p with the loaded configuration; runners
// are the stages by name (p.StageRunners(): every stage of p that runs,
// and the error stage under stage.ErrorStageName). The returned error, if
// any, is the one final line to print (eib exits 2 on it).
func Run(ctx context.Context, p *stage.Plan, loaded *config.Loaded, runners map[string]build.Stage) (err error) {
	// The first SIGINT or SIGTERM cancels the build, which then cleans up
	// and runs no error stage; once it is caught the default action is
	// back, so a second one ends eib at once (the next build with this
	// lock kills and removes what is left).
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	if p.LockFile == "" {
		p.LockFile = lock.Path()
	}
	log := buildlog.New(p.Terminal(), p.Debug, loaded.Secrets)
	program, _ := os.Executable()
	b := p.NewBuild(loaded)
	runner := &hooks.Runner{Program: program}
	b.Log, b.Hooks = log, runner
	b.SetEnv("EIB_PROGRAM", program)
	for _, line := range strings.Split(p.String(), "\n") {
		log.Debugf("plan: %s", line)
	}

	// The lock is the first resource and the last released.
	l, err := lock.Acquire(ctx, p.LockFile, 0)
	if err != nil && p.LockTimeout > 0 {
		log.Printf("waiting up to %s for the lock %s, held by %s", p.LockTimeout, p.LockFile, lock.Holder(p.LockFile))
		l, err = lock.Acquire(ctx, p.LockFile, p.LockTimeout)
	}
	if err != nil {
		return err
	}
	b.Defer("release lock "+p.LockFile, l.Release)
	defer func() {
		if cerr := b.Cleanup(); cerr != nil && err == nil {
			err = fmt.Errorf("cleanup failed: %w (log: %s)", cerr, p.LogFile)
		}
		if err != nil {
			log.Filef("%v", err) // cmd/eib prints it on the terminal
		} else {
			log.Printf("build finished")
		}
		log.Close()
	}()
	// Before anything else can touch the build directories: what a killed
	// build with this lock left running goes, then this build's processes
	// are held in the group (every child inherits it).
	if runner.Cgroup, err = enterCgroup(b, p.LockFile, log); err != nil {
		return err
	}

	var state *State
	var results *StageResults
	if p.From != "" {
		// Continue the recorded build: its directories (the image, the
		// deployment, the outputs, the state) are kept.
		st, err := ReadState(p.TmpDir)
		if err != nil {
			return err
		}
		if state, results, err = resume(p, st); err != nil {
			return err
		}
		results.restore(b)
	} else if state, err = newState(p); err != nil {
		return err
	}
	if err := prepare(p, log); err != nil {
		return err
	}
	b.Defer("remove leftovers under the build dirs", func() error {
		return hostclean.Clean(p.CleanRoots, log.Printf)
	})
	if err := writeConfigs(p, loaded); err != nil {
		return err
	}
	return runStages(ctx, p, b, log, state, runners)
}

// prepare cleans what an earlier build left, recreates the build
// directories and opens the log file. A build continued with --from keeps
// its directories and appends to its log.
func prepare(p *stage.Plan, log *buildlog.Log) error {
	if err := hostclean.Clean(p.CleanRoots, log.Printf); err != nil {
		return fmt.Errorf("cleaning up after an earlier build: %w", err)
	}
	if p.From != "" {
		return log.AppendFile(p.LogFile)
	}
	for _, d := range p.Recreate {
		if err := hostclean.RemoveAll(d, log.Debugf); err != nil {
			return err
		}
	}
	for _, d := range append(append([]string(nil), p.Recreate...), p.Keep...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating build directory: %w", err)
		}
	}
	return log.OpenFile(p.LogFile)
}

// writeConfigs writes ${tmpdir}/config.ini (public) and fullconfig.ini
// (with private values, mode 0600).
func writeConfigs(p *stage.Plan, loaded *config.Loaded) error {
	for _, f := range []struct {
		path, header string
		cfg          *config.Config
		mode         os.FileMode
	}{
		{p.ConfigFile, "# Configuration for " + p.OutVersion, loaded.Public, 0o644},
		{p.FullConfigFile, "# Full configuration for " + p.OutVersion, loaded.Full, 0o600},
	} {
		out, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, f.mode)
		if err != nil {
			return fmt.Errorf("writing config: %w", err)
		}
		_, err = fmt.Fprintln(out, f.header)
		if err == nil {
			err = f.cfg.Write(out)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	return nil
}

// runStages runs the stages in order (from p.From, until p.Until),
// recording the results after each in the state file; on failure it runs
// the error stage (unless interrupted) and returns the final line naming
// stage and hook.
func runStages(ctx context.Context, p *stage.Plan, b *build.Build, log *buildlog.Log, state *State, runners map[string]build.Stage) error {
	started := p.From == ""
	for _, name := range p.Stages {
		if !started && name != p.From {
			continue
		}
		started = true
		log.SetStage(name)
		if why, ok := p.Skipped[name]; ok {
			log.Printf("stage %s skipped (%s)", name, why)
			continue
		}
		b.Stage = name
		log.Printf("stage %s: start", name)
		start := time.Now()
		err := runStage(ctx, name, runners[name], b)
		if err == nil && context.Cause(ctx) != nil {
			err = context.Cause(ctx)
		}
		d := time.Since(start)
		status := "ok"
		if err != nil {
			status = err.Error()
		}
		b.AddTiming(build.Timing{Stage: name, Seconds: d.Seconds(), Status: status, Started: start})
		if err != nil {
			log.Printf("stage %s: failed after %.1fs: %v", name, d.Seconds(), err)
			return fail(ctx, p, b, log, name, err, runners[stage.ErrorStageName])
		}
		log.Printf("stage %s: done in %.1fs", name, d.Seconds())
		if err := saveState(p, state, name, b); err != nil {
			return err
		}
		if name == p.Until {
			log.SetStage("")
			log.Printf("stopping after stage %s (--until); continue with eib --from STAGE", name)
			break
		}
	}
	log.SetStage("")
	return nil
}

// runStage runs one stage, turning a panic into an error so that the
// error stage and the cleanup still run.
// A stage without a runner (none given for a stage the plan runs) fails.
func runStage(ctx context.Context, name string, s build.Stage, b *build.Build) (err error) {
	if s == nil {
		return fmt.Errorf("stage %s: no runner for it (engine.Run needs Plan.StageRunners)", name)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %s panicked: %v", name, r)
		}
	}()
	return s.Run(ctx, b)
}

// fail records the failure, runs the error stage and builds the final line.
func fail(ctx context.Context, p *stage.Plan, b *build.Build, log *buildlog.Log, failed string, err error, errStage build.Stage) error {
	b.FailedStage = failed
	var he *build.HookError
	if errors.As(err, &he) {
		b.FailedHook = he.Group + "/" + he.Hook
		err = he.Err // the final line names the hook once
	}
	where := "stage " + failed
	if b.FailedHook != "" {
		where += ", hook " + b.FailedHook
	}
	if ctx.Err() != nil {
		log.SetStage("")
		return fmt.Errorf("build interrupted in %s (log: %s): %w", where, p.LogFile, context.Cause(ctx))
	}
	b.SetEnv("EIB_ERROR_STAGE", failed)
	b.SetEnv("EIB_ERROR_HOOK", b.FailedHook)
	b.SetEnv("EIB_ERROR_LOG", p.LogFile)
	b.FailedLog = p.LogFile
	log.SetStage(stage.ErrorStageName)
	b.Stage = stage.ErrorStageName
	start := time.Now()
	eerr := runStage(ctx, stage.ErrorStageName, errStage, b)
	status := "ok"
	if eerr != nil {
		status = eerr.Error()
		log.Printf("error stage failed too: %v", eerr)
	}
	b.AddTiming(build.Timing{Stage: stage.ErrorStageName, Seconds: time.Since(start).Seconds(), Status: status, Started: start})
	log.SetStage("")
	return fmt.Errorf("build failed in %s: %v (log: %s)", where, err, p.LogFile)
}

// cgroupName is the name of the build group of the lock file lockFile:
// its base name (characters other than letters, digits, '.', '_' and '-'
// replaced by '_') and the first 12 hex digits of the SHA-256 of its
// absolute path, so that two lock files never share a group and every
// build with the same lock finds the group of the one before.
func cgroupName(lockFile string) string {
	abs, err := filepath.Abs(lockFile)
	if err != nil {
		abs = lockFile
	}
	base := []byte(filepath.Base(abs))
	for i, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			base[i] = '_'
		}
	}
	if len(base) > 64 {
		base = base[:64]
	}
	sum := sha256.Sum256([]byte(abs))
	return string(base) + "-" + hex.EncodeToString(sum[:6])
}

// createCgroup is cgroup.Create (a test makes it fail).
var createCgroup = cgroup.Create

// enterCgroup holds the build's processes in the cgroup v2 group of the
// lock file (package cgroup; called with the lock held). Processes an
// earlier build with the same lock left there (it was killed) are logged
// and killed first; then eib enters the group, so that every process the
// build starts is in it, and a cleanup step registered at once (run just
// before the lock is released) moves eib out, logs and kills whatever is
// still in the group and removes it. Without a writable cgroup2
// hierarchy it logs why and returns nil: processes are then only
// followed by their process groups. An error is a leftover it could not
// kill.
func enterCgroup(b *build.Build, lockFile string, log *buildlog.Log) (*cgroup.Group, error) {
	g, err := createCgroup(cgroupName(lockFile))
	if err != nil {
		log.Printf("processes of this build are not held in a cgroup (%v): only their process groups are killed, so a process that calls setsid or outlives a killed eib is not found", err)
		return nil, nil
	}
	pids, err := g.Procs()
	if err != nil {
		return nil, fmt.Errorf("cleaning up after an earlier build: %w", err)
	}
	for _, pid := range pids {
		if pid == os.Getpid() {
			// Started from within the group (by a process of the earlier
			// build): killing the group would kill eib.
			return nil, fmt.Errorf("eib runs inside the cgroup %s of the build with lock %s; run it from outside", g.Path, lockFile)
		}
	}
	for _, pid := range pids {
		log.Printf("killing leftover process %d (%s) of an earlier build (killed) with this lock", pid, cgroup.Cmdline(pid))
	}
	if err := g.Kill(); err != nil {
		return nil, fmt.Errorf("cleaning up after an earlier build: %w", err)
	}
	// Its child groups (of the hooks it ran) go with it.
	if err := g.Remove(); err != nil {
		return nil, fmt.Errorf("cleaning up after an earlier build: %w", err)
	}
	if g, err = createCgroup(cgroupName(lockFile)); err == nil {
		err = g.Enter()
	}
	if err != nil {
		log.Printf("processes of this build are not held in a cgroup (%v): only their process groups are killed, so a process that calls setsid or outlives a killed eib is not found", err)
		if g != nil {
			_ = g.Remove()
		}
		return nil, nil
	}
	log.Debugf("processes of this build are held in cgroup %s", g.Path)
	b.Defer("kill the build's processes (cgroup "+g.Path+")", func() error {
		if err := g.Leave(); err != nil {
			// Killing the group now would kill eib too.
			return err
		}
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		for _, pid := range pids {
			log.Printf("process %d (%s) of the build still ran at the end: killed", pid, cgroup.Cmdline(pid))
		}
		if err := g.Kill(); err != nil {
			return err
		}
		return g.Remove()
	})
	return g, nil
}
