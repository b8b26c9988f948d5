// Package stage declares a build: NewPlan resolves the Plan (the stages
// of buildscript, the directories, the lock) and validates the settings of
// every stage that will run (validate.go) before anything on the host is
// touched; Plan.StageRunners constructs those stages with the settings it
// resolved. Package engine executes the plan.
//
// The stages (ostree, image, check, manifest, publish, and the error stage
// run when one fails) read the results of the earlier stages from the
// build (build.Results) and append their own.
package stage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// Options are what cmd/eib hands to NewPlan.
type Options struct {
	Loaded   *config.Loaded
	SrcDir   string
	LocalDir string
	DryRun   bool
	Debug    bool
	// LockFile is the build lock; "": the engine takes lock.Path()
	// (EIB_LOCK_FILE, else /var/lock/eib.lock).
	LockFile    string
	LockTimeout int // seconds; 0: fail at once when another build holds the lock

	// From and Until run a part of the stages (--from, --until): from
	// STAGE (continuing the build recorded in ${tmpdir}/state.json) and
	// until STAGE (included); "" for the first and the last.
	From, Until string

	// Terminal receives the concise log (default os.Stdout).
	Terminal io.Writer

	// Known reports the stage names buildscript may list; nil: Known,
	// the stages of this package (a test of the engine adds its own,
	// and runs them with engine.Run).
	Known func(name string) bool
}

// StateFileName is the file in tmpdir where the engine records, after
// each stage, the results the later stages read (--until, --from).
const StateFileName = "state.json"

// BuildscriptName is the file listing the stages, in <localdir> (wins) or
// <srcdir>.
const BuildscriptName = "buildscript"

// Plan is everything a build will do, resolved from the options and the
// config before anything on the host is touched: which stages run, which
// directories are recreated and cleaned, which lock is taken.
type Plan struct {
	SrcDir      string   `json:"srcdir"`
	LocalDir    string   `json:"localdir,omitempty"`
	Buildscript string   `json:"buildscript"` // the buildscript file read
	Stages      []string `json:"stages"`      // in order
	// Skipped names stages of Stages that will not run, with the reason.
	Skipped map[string]string `json:"skipped"`

	CacheDir    string `json:"cachedir"`
	BuildDir    string `json:"builddir,omitempty"`
	TmpDir      string `json:"tmpdir"`
	OutDir      string `json:"outdir"`
	ManifestDir string `json:"manifestdir"`
	ContentDir  string `json:"contentdir"`
	CheckoutDir string `json:"checkout,omitempty"` // [ostree] checkout, "" when not configured
	// BuildVersion is [build] build_version (SOURCE_DATE_EPOCH, else the
	// time the configuration was loaded); OutVersion is made from it.
	BuildVersion string `json:"build_version"`
	OutVersion   string `json:"outversion"`

	// Recreate lists the directories deleted and made again, empty.
	Recreate []string `json:"recreate"`
	// Keep lists the directories made if missing but kept (caches).
	Keep []string `json:"keep"`
	// CleanRoots are the directories under which leftovers (processes,
	// mounts, loop devices) are removed before and after the build.
	CleanRoots []string `json:"clean_roots"`

	LogFile        string `json:"log"`           // ${tmpdir}/build.txt
	ConfigFile     string `json:"tmpconfig"`     // [build] tmpconfig, default ${tmpdir}/config.ini
	FullConfigFile string `json:"tmpfullconfig"` // [build] tmpfullconfig, default ${tmpdir}/fullconfig.ini
	StateFile      string `json:"state"`         // ${tmpdir}/state.json (--until, --from)

	// What validate resolved from the settings of the stages that run
	// (nil: no stage that runs reads them).
	OSTree *PlanOSTree `json:"ostree,omitempty"`
	Layout *PlanLayout `json:"layout,omitempty"`
	Image  *PlanImage  `json:"image,omitempty"`
	Check  *PlanCheck  `json:"check,omitempty"`
	// Flatpak is what the image stage preinstalls (nil: nothing).
	Flatpak *PlanFlatpak `json:"flatpak,omitempty"`
	// Hooks are the hook files of every group that will run, in order.
	Hooks map[string][]string `json:"hooks"`

	LockFile    string        `json:"-"`
	LockTimeout time.Duration `json:"-"`

	DryRun bool `json:"dry_run"`
	Debug  bool `json:"-"`

	// From and Until select the stages of this run (--from, --until);
	// "" for the first and the last.
	From  string `json:"-"`
	Until string `json:"-"`

	term    io.Writer // where the concise log goes (default os.Stdout)
	secrets []string  // the private values, masked in JSON

	// The settings validate read, as the stages use them (settings.go).
	settings resolvedSettings
}

// NewPlan resolves the plan of a build and validates the settings of every
// stage it will run (validate), without taking the lock or touching the
// host: an error of NewPlan is a configuration error (eib exits 1 on it),
// and names the file, the line or the config key at fault.
func NewPlan(o Options) (*Plan, error) {
	if o.Loaded == nil || o.Loaded.Full == nil || o.Loaded.Public == nil {
		return nil, errors.New("build engine: no configuration loaded")
	}
	cfg := o.Loaded.Full
	p := &Plan{
		SrcDir:   o.SrcDir,
		LocalDir: o.LocalDir,
		DryRun:   o.DryRun,
		Debug:    o.Debug,
		From:     o.From,
		Until:    o.Until,
		Skipped:  map[string]string{},
		Hooks:    map[string][]string{},
		secrets:  o.Loaded.Secrets,
		term:     o.Terminal,
	}
	if p.SrcDir == "" {
		return nil, errors.New("build engine: no srcdir")
	}
	var err error
	if p.SrcDir, err = filepath.Abs(p.SrcDir); err != nil {
		return nil, err
	}
	if p.LocalDir != "" {
		if p.LocalDir, err = filepath.Abs(p.LocalDir); err != nil {
			return nil, err
		}
	}

	// The directories are path settings (config.Reader.Path: absolute,
	// cleaned); a configuration made without config/defaults.ini may lack
	// the optional ones.
	r := cfg.Read()
	get := func(section, key string, required bool) string {
		if !r.Has(section, key) {
			if required && r.Err() == nil {
				r.Reject(section, key, "not set")
			}
			return ""
		}
		v := r.Path(section, key)
		if required && v == "" {
			r.Reject(section, key, "empty")
		}
		return v
	}
	for _, d := range []struct {
		dst      *string
		sec, key string
		required bool
	}{
		{&p.CacheDir, "build", "cachedir", true},
		{&p.BuildDir, "build", "builddir", false},
		{&p.TmpDir, "build", "tmpdir", true},
		{&p.OutDir, "build", "outdir", true},
		{&p.ManifestDir, "build", "manifestdir", true},
		{&p.ContentDir, "build", "contentdir", true},
		{&p.CheckoutDir, "ostree", "checkout", false},
	} {
		*d.dst = get(d.sec, d.key, d.required)
	}
	p.OutVersion = r.String("build", "outversion")
	p.BuildVersion = r.String("build", "build_version")
	if err := r.Err(); err != nil {
		return nil, err
	}

	p.Recreate = nonEmpty(p.TmpDir, p.OutDir, p.ManifestDir, p.CheckoutDir)
	p.Keep = nonEmpty(p.ContentDir)
	p.CleanRoots = nonEmpty(p.BuildDir, p.TmpDir, p.OutDir, p.ManifestDir, p.CheckoutDir, p.ContentDir)
	if err := p.checkRecreate(); err != nil {
		return nil, err
	}
	p.LogFile = filepath.Join(p.TmpDir, "build.txt")
	p.StateFile = filepath.Join(p.TmpDir, StateFileName)
	// [build] tmpconfig and tmpfullconfig name them (hooks read them as
	// EIB_TMPCONFIG and EIB_TMPFULLCONFIG); unset: in tmpdir.
	for _, f := range []struct {
		dst       *string
		key, name string
	}{
		{&p.ConfigFile, "tmpconfig", "config.ini"},
		{&p.FullConfigFile, "tmpfullconfig", "fullconfig.ini"},
	} {
		*f.dst = get("build", f.key, false)
		if err := r.Err(); err != nil {
			return nil, err
		}
		if *f.dst == "" {
			*f.dst = filepath.Join(p.TmpDir, f.name)
		}
	}

	p.LockFile = o.LockFile
	p.LockTimeout = time.Duration(o.LockTimeout) * time.Second

	// <localdir>/buildscript wins when it exists; a buildscript that is
	// not a regular file (a FIFO would block) is an error naming it.
	var script []byte
	var found bool
	for _, dir := range []string{p.LocalDir, p.SrcDir} {
		if dir == "" {
			continue
		}
		p.Buildscript = filepath.Join(dir, BuildscriptName)
		if script, found, err = config.ReadRegular(p.Buildscript, "the buildscript"); err != nil || found {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("buildscript: %s: no such file", p.Buildscript)
	}
	f := bytes.NewReader(script)
	known := o.Known
	if known == nil {
		known = Known
	}
	if p.Stages, err = ParseBuildscript(f, p.Buildscript, known); err != nil {
		return nil, err
	}
	if p.DryRun {
		for _, s := range p.Stages {
			if s == "publish" {
				p.Skipped[s] = "--dry-run"
			}
		}
	}
	if err := p.checkRange(); err != nil {
		return nil, err
	}
	if err := p.validate(o.Loaded); err != nil {
		return nil, err
	}
	return p, nil
}

// checkRange checks --from and --until: stages of the buildscript, in
// this order.
func (p *Plan) checkRange() error {
	at := map[string]int{}
	for i, s := range p.Stages {
		at[s] = i
	}
	for _, o := range []struct{ opt, stage string }{{"--from", p.From}, {"--until", p.Until}} {
		if _, ok := at[o.stage]; o.stage != "" && !ok {
			return fmt.Errorf("%s %s: not a stage of %s (%s)", o.opt, o.stage, p.Buildscript, strings.Join(p.Stages, ", "))
		}
	}
	if p.From != "" && p.Until != "" && at[p.Until] < at[p.From] {
		return fmt.Errorf("--until %s: comes before --from %s in %s", p.Until, p.From, p.Buildscript)
	}
	return nil
}

// checkRecreate refuses to delete a directory that holds the sources,
// the localdir or the caches (a misconfigured outdir = ${cachedir} would
// otherwise wipe the content cache).
func (p *Plan) checkRecreate() error {
	protected := map[string]string{
		"srcdir": p.SrcDir, "localdir": p.LocalDir,
		"[build] cachedir": p.CacheDir, "[build] contentdir": p.ContentDir,
	}
	names := make([]string, 0, len(protected))
	for n := range protected {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, d := range p.Recreate {
		if d == "/" {
			return fmt.Errorf("refusing to recreate /: check the [build] and [ostree] directory keys")
		}
		for _, n := range names {
			if keep := protected[n]; keep != "" && under(keep, d) {
				return fmt.Errorf("refusing to recreate %s at every build: it holds the %s %s", d, n, keep)
			}
		}
	}
	return nil
}

// under reports whether path is root or below it (both clean, absolute).
func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

func nonEmpty(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// ParseBuildscript reads the stage names of a buildscript: one per line,
// blank lines and "#" comments ignored. An unknown or repeated stage is an
// error naming the file and line.
func ParseBuildscript(r io.Reader, file string, known func(string) bool) ([]string, error) {
	var stages []string
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case len(fields) > 1:
			return nil, fmt.Errorf("%s:%d: %q: one stage name per line", file, n, strings.TrimSpace(line))
		}
		name := fields[0]
		if !known(name) {
			return nil, fmt.Errorf("%s:%d: unknown stage %q (known stages: %s)", file, n, name, strings.Join(Names(), ", "))
		}
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("%s:%d: stage %q already listed on line %d", file, n, name, prev)
		}
		seen[name] = n
		stages = append(stages, name)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return stages, nil
}

// Terminal is where the concise log of the build goes (Options.Terminal,
// default os.Stdout).
func (p *Plan) Terminal() io.Writer {
	if p.term == nil {
		return os.Stdout
	}
	return p.term
}

// NewBuild is the build of the plan before anything ran: its configuration
// and options, no log, no hook runner, no results.
func (p *Plan) NewBuild(loaded *config.Loaded) *build.Build {
	return &build.Build{
		Config:   loaded.Full,
		Public:   loaded.Public,
		SrcDir:   p.SrcDir,
		LocalDir: p.LocalDir,
		DryRun:   p.DryRun,
		Debug:    p.Debug,
	}
}

// String describes the plan, one fact per line (logged with --debug).
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "buildscript %s: %s\n", p.Buildscript, strings.Join(p.Stages, " "))
	for _, s := range p.Stages {
		if why, ok := p.Skipped[s]; ok {
			fmt.Fprintf(&b, "stage %s skipped (%s)\n", s, why)
		}
	}
	fmt.Fprintf(&b, "recreate: %s\n", strings.Join(p.Recreate, " "))
	fmt.Fprintf(&b, "keep: %s\n", strings.Join(p.Keep, " "))
	fmt.Fprintf(&b, "clean leftovers under: %s\n", strings.Join(p.CleanRoots, " "))
	fmt.Fprintf(&b, "lock: %s (timeout %s)\n", p.LockFile, p.LockTimeout)
	fmt.Fprintf(&b, "log: %s", p.LogFile)
	return b.String()
}
