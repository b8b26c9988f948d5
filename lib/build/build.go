// Package build holds the state of one eib build: its configuration, its
// directories, the environment handed to hooks, the log, the results that
// stages pass to one another, and the single cleanup path that releases every
// resource a stage acquired (mounts, processes, temporary files, the lock),
// in reverse order, on success, failure and signal alike.
//
// Stages (package stage) and the domain packages (ostree, disk, boot,
// output, check, manifest) only see a *Build; they never release a resource
// by hand on an error path: they register it with Defer right after
// acquiring it.
package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/config"
)

// Stage is one step of the build named in buildscript.
type Stage interface {
	Name() string
	Run(ctx context.Context, b *Build) error
}

// Logger is the build log (see package buildlog). Printf lines go to the
// terminal and the log file; Debugf lines go to the log file and, with
// --debug, the terminal.
type Logger interface {
	Printf(format string, args ...any)
	Debugf(format string, args ...any)
}

// HookRunner runs one hook group (package hooks). root is the install root
// for *.chroot hooks ("" = none: chroot hooks are skipped with a log line).
type HookRunner interface {
	RunGroup(ctx context.Context, b *Build, group, root string) error
}

// Build is the state of one build.
type Build struct {
	// Config is the full configuration (private files included); Public
	// is the configuration without private files (what may be published).
	Config *config.Config
	Public *config.Config

	SrcDir   string // the eib tree (config/, hooks/, helpers/, data/, lib/eib.sh)
	LocalDir string // --localdir, absolute, "" when not given
	DryRun   bool
	Debug    bool

	Log   Logger
	Hooks HookRunner

	// Results that one stage hands to the next (b.OSTree, b.Images ...);
	// the engine persists them after each stage.
	Results

	// Failure context for the error stage.
	FailedStage, FailedHook string
	// FailedLog is the masked build log (EIB_ERROR_LOG) the error stage
	// publishes.
	FailedLog string

	// Stage is the name of the stage running now (set by the engine).
	Stage string

	mu       sync.Mutex
	extraEnv map[string]string
	cleanups []cleanup
}

// Results are what the stages of a build hand to the later stages: each
// stage reads the results of the earlier ones and appends its own. The
// engine records them, as JSON with these field names, after every stage
// (${tmpdir}/state.json), and a build continued with --from starts from
// them.
type Results struct {
	OSTree     OSTreeInfo `json:"ostree"`     // set by the ostree stage
	Deployment Deployment `json:"deployment"` // set by the image stage
	Images     []Image    `json:"images"`     // appended by the image stage (disk step), for its output step
	// Artifacts are the records of every file the build wrote into
	// outdir (and the raw images, Path ""), appended by the image,
	// check, manifest and publish stages; files hooks wrote into outdir
	// are recorded too (Format "hook"). They are what the manifest
	// lists, what SHA256SUMS is written from, what the check stage boots
	// and the only files the publish stage publishes.
	Artifacts []artifact.Record `json:"artifacts"`
	Boots     []BootResult      `json:"boots"`   // appended by the check stage
	Timings   []Timing          `json:"timings"` // appended by the engine, one per stage and hook
	// Flatpaks are the Flatpak refs the image stage installed, as
	// "remote:ref" -> commit (nil: it installed none, or did not run);
	// the plan hash of the manifest takes them instead of the remotes'
	// summaries, which may have moved on since.
	Flatpaks map[string]string `json:"flatpaks,omitempty"`
}

// OSTreeInfo describes the commit being built (set by the ostree stage).
type OSTreeInfo struct {
	RepoDir   string // the cache repo
	Remote    string
	PullURL   string
	Ref       string
	RefDeploy string
	Commit    string // checksum of the pulled commit
	Version   string // the commit's "version" metadata, if any
	DeployURL string
	OS        string
}

// Deployment describes the deployed sysroot (set by the image stage).
type Deployment struct {
	Sysroot string // the sysroot directory (ostree:checkout)
	Path    string // the deployment directory (OSTREE_DEPLOYMENT)
	VarDir  string // the OS var directory (OSTREE_VAR)
	Kargs   string
}

// Image is one raw disk image produced by the image stage.
type Image struct {
	Name     string // e.g. "disk"; "" for the main image
	Path     string // raw image file
	Arch     string
	Platform string
	Size     int64
	// Firmware lists the firmware interfaces the image boots with
	// ("bios", "uefi"; disk.Layout.Firmware): the boot check uses those.
	Firmware []string
}

// BootResult is the outcome of one boot check.
type BootResult struct {
	Image      string
	Firmware   string  // "bios", "uefi", "aarch64-uefi"
	Result     string  // "ok", "failed", "skipped"
	Seconds    float64 // time to marker
	Reason     string  // why it failed or was skipped
	ConsoleLog string
	// Accel is the QEMU accelerator of the boot that decided the result
	// ("kvm" or "tcg"); AccelReason says why it was chosen, and
	// Fallback, when not empty, why a KVM boot was abandoned and the
	// boot retried under TCG.
	Accel       string
	AccelReason string
	Fallback    string
	// CPUs is the guest's vCPUs (QEMU -smp; 0 for a skipped boot);
	// AtOnce, whether it booted at the same time as the image's other
	// firmwares (check.AtOnce).
	CPUs   int
	AtOnce bool
}

// Timing records how long a stage or hook took.
type Timing struct {
	Stage   string
	Hook    string // "" for the stage itself
	Seconds float64
	Status  string // "ok" or the error
	Started time.Time
}

type cleanup struct {
	name string
	fn   func() error
}

// SetEnv sets a variable for all later hooks (e.g. OSTREE_DEPLOYMENT).
func (b *Build) SetEnv(key, value string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.extraEnv == nil {
		b.extraEnv = map[string]string{}
	}
	b.extraEnv[key] = value
}

// ExtraEnv returns the variables set with SetEnv as KEY=VALUE, sorted.
func (b *Build) ExtraEnv() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var env []string
	for k, v := range b.extraEnv {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// AddTiming records how long a stage or hook took.
func (b *Build) AddTiming(t Timing) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Timings = append(b.Timings, t)
}

// Environ returns the environment of stages and hooks: the host
// environment, then every EIB_* variable of the full config, then the
// variables set with SetEnv; a later entry replaces an earlier one of the
// same name. The result is sorted.
func (b *Build) Environ() ([]string, error) {
	var cfgEnv []string
	if b.Config != nil {
		var err error
		if cfgEnv, err = b.Config.Env(); err != nil {
			return nil, fmt.Errorf("config environment: %w", err)
		}
	}
	return MergeEnv(os.Environ(), cfgEnv, b.ExtraEnv()), nil
}

// MergeEnv merges KEY=VALUE lists; later lists win. The result is sorted.
func MergeEnv(lists ...[]string) []string {
	m := map[string]string{}
	for _, l := range lists {
		for _, kv := range l {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				continue
			}
			m[k] = v
		}
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// HookError is the error of a hook that failed (or was missing); a
// HookRunner returns it, possibly wrapped, so the engine can name the hook
// in its final line and in EIB_ERROR_HOOK.
type HookError struct {
	Group string // hook group, e.g. "image"
	Hook  string // hook name, e.g. "50-hostname"
	Path  string // the file run, "" when missing
	Err   error
}

func (e *HookError) Error() string {
	return fmt.Sprintf("hook %s/%s: %v", e.Group, e.Hook, e.Err)
}

func (e *HookError) Unwrap() error { return e.Err }

// Defer registers a release function for a resource just acquired. All
// registered functions run in reverse order in Cleanup.
func (b *Build) Defer(name string, fn func() error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, cleanup{name, fn})
}

// CleanupMark returns a mark for CleanupTo.
func (b *Build) CleanupMark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.cleanups)
}

// CleanupTo releases, in reverse order, everything registered after mark
// (e.g. the mounts of the image hooks, torn down before the disk is made).
// It goes on after an error and returns all errors joined.
func (b *Build) CleanupTo(mark int) error {
	var errs []error
	for {
		b.mu.Lock()
		if len(b.cleanups) <= mark {
			b.mu.Unlock()
			break
		}
		c := b.cleanups[len(b.cleanups)-1]
		b.cleanups = b.cleanups[:len(b.cleanups)-1]
		b.mu.Unlock()
		if err := c.fn(); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", c.name, err))
			if b.Log != nil {
				b.Log.Printf("cleanup %s failed: %v", c.name, err)
			}
		} else if b.Log != nil {
			b.Log.Debugf("cleanup %s", c.name)
		}
	}
	return errors.Join(errs...)
}

// Cleanup releases everything registered with Defer.
func (b *Build) Cleanup() error { return b.CleanupTo(0) }

// ErrNotImplemented is wrapped by stages that a later change will provide.
var ErrNotImplemented = errors.New("not implemented yet")

// Dir returns a build directory from the [build] section (tmpdir, outdir,
// manifestdir, contentdir, cachedir ...): a path setting of
// config.KeysRead or config.BuildKeys, read with config.Reader.Path (an
// absolute path, cleaned). Its error names the file, section and key; an
// empty or unset directory is one ("[build] tmpdir: not set").
func (b *Build) Dir(key string) (string, error) {
	r := b.Config.Read()
	v := r.Path("build", key)
	if r.Err() == nil && v == "" {
		r.Reject("build", key, "not set")
	}
	return v, r.Err()
}
