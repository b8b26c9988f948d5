// Package stage runs a build: the stages named in buildscript, in order,
// the error stage on failure, and the one cleanup path.
//
// Execute first resolves a Plan (stages, directories, lock) and validates
// the settings of its stages (validate.go), failing before touching the
// host if anything is wrong; then it takes the lock,
// removes what an earlier build left under the build directories,
// recreates them, writes config.ini and fullconfig.ini, runs the stages,
// runs the error stage when one fails, and always runs the cleanup.
package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/lock"
)

// registry holds every stage by name; each stage file registers itself in
// an init function: func init() { Register(ostreeStage{}) }.
var registry = map[string]build.Stage{}

// Register makes a stage available to buildscript.
func Register(s build.Stage) { registry[s.Name()] = s }

// Options are what cmd/eib hands to Execute.
type Options struct {
	Loaded      *config.Loaded
	SrcDir      string
	LocalDir    string
	DryRun      bool
	Debug       bool
	LockFile    string // default /var/lock/eib.lock (EIB_LOCK_FILE overrides)
	LockTimeout int    // seconds; 0: fail at once when another build holds the lock

	// From and Until run a part of the stages (--from, --until): from
	// STAGE (continuing the build recorded in ${tmpdir}/state.json) and
	// until STAGE (included); "" for the first and the last.
	From, Until string

	// Terminal receives the concise log (default os.Stdout).
	Terminal io.Writer
}

// Execute plans the build (NewPlan: an error there is a configuration
// error) and runs it (Plan.Execute: an error there is a build failure).
func Execute(ctx context.Context, o Options) error {
	p, err := NewPlan(o)
	if err != nil {
		return err
	}
	return p.Execute(ctx, o.Loaded)
}

// Execute runs the planned build with the loaded configuration. The
// returned error, if any, is the one final line to print; the process
// exits 2 on it.
func (p *Plan) Execute(ctx context.Context, loaded *config.Loaded) (err error) {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	term := p.term
	if term == nil {
		term = os.Stdout
	}
	log := buildlog.New(term, p.Debug, loaded.Secrets)
	program, _ := os.Executable()
	b := p.newBuild(loaded)
	b.Plan = p
	b.Log, b.Hooks = log, &hooks.Runner{Program: program}
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

	var state *State
	var results *StageResults
	if p.From != "" {
		// Continue the recorded build: its directories (the image, the
		// deployment, the outputs, the state) are kept.
		st, err := ReadState(p.TmpDir)
		if err != nil {
			return err
		}
		if state, results, err = p.resume(st); err != nil {
			return err
		}
		results.restore(b)
	} else if state, err = p.newState(); err != nil {
		return err
	}
	if err := p.prepare(log); err != nil {
		return err
	}
	b.Defer("remove leftovers under the build dirs", func() error {
		return hostclean.Clean(p.CleanRoots, log.Printf)
	})
	if err := p.writeConfigs(loaded); err != nil {
		return err
	}
	return p.runStages(ctx, b, log, state)
}

// prepare cleans what an earlier build left, recreates the build
// directories and opens the log file. A build continued with --from keeps
// its directories and appends to its log.
func (p *Plan) prepare(log *buildlog.Log) error {
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
func (p *Plan) writeConfigs(loaded *config.Loaded) error {
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
func (p *Plan) runStages(ctx context.Context, b *build.Build, log *buildlog.Log, state *State) error {
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
		err := runStage(ctx, registry[name], b)
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		d := time.Since(start)
		status := "ok"
		if err != nil {
			status = err.Error()
		}
		b.AddTiming(build.Timing{Stage: name, Seconds: d.Seconds(), Status: status, Started: start})
		if err != nil {
			log.Printf("stage %s: failed after %.1fs: %v", name, d.Seconds(), err)
			return p.fail(ctx, b, log, name, err)
		}
		log.Printf("stage %s: done in %.1fs", name, d.Seconds())
		if err := p.saveState(state, name, b); err != nil {
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
func runStage(ctx context.Context, s build.Stage, b *build.Build) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %s panicked: %v", s.Name(), r)
		}
	}()
	return s.Run(ctx, b)
}

// fail records the failure, runs the error stage and builds the final line.
func (p *Plan) fail(ctx context.Context, b *build.Build, log *buildlog.Log, stage string, err error) error {
	b.FailedStage = stage
	var he *build.HookError
	if errors.As(err, &he) {
		b.FailedHook = he.Group + "/" + he.Hook
		err = he.Err // the final line names the hook once
	}
	where := "stage " + stage
	if b.FailedHook != "" {
		where += ", hook " + b.FailedHook
	}
	if ctx.Err() != nil {
		log.SetStage("")
		return fmt.Errorf("build interrupted in %s (log: %s): %w", where, p.LogFile, ctx.Err())
	}
	b.SetEnv("EIB_ERROR_STAGE", stage)
	b.SetEnv("EIB_ERROR_HOOK", b.FailedHook)
	b.SetEnv("EIB_ERROR_LOG", p.LogFile)
	b.FailedLog = p.LogFile
	log.SetStage(ErrorStageName)
	b.Stage = ErrorStageName
	start := time.Now()
	eerr := runStage(ctx, errorStage{}, b)
	status := "ok"
	if eerr != nil {
		status = eerr.Error()
		log.Printf("error stage failed too: %v", eerr)
	}
	b.AddTiming(build.Timing{Stage: ErrorStageName, Seconds: time.Since(start).Seconds(), Status: status, Started: start})
	log.SetStage("")
	return fmt.Errorf("build failed in %s: %v (log: %s)", where, err, p.LogFile)
}

// newBuild is the build of the plan before anything ran: its configuration
// and options, no log, no hook runner (validate uses it as it is).
func (p *Plan) newBuild(loaded *config.Loaded) *build.Build {
	return &build.Build{
		Config:   loaded.Full,
		Public:   loaded.Public,
		SrcDir:   p.SrcDir,
		LocalDir: p.LocalDir,
		DryRun:   p.DryRun,
		Debug:    p.Debug,
	}
}
