// Command eib builds OS images from an OSTree commit.
//
// It reads the layered configuration (package config), then either prints
// it (--show-config), explains one key (--explain SECTION:KEY) or runs the
// build (package stage). Exit codes: 0 success, 1 usage or configuration
// error, 2 build failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/engine"
	"github.com/eib-builder/eib/lib/stage"
)

// subcommands are added by other files of this package in init()
// (e.g. check-image, sign).
var subcommands []*cli.Command

// Exit codes.
const (
	exitOK         = 0
	exitUsage      = 1
	exitBuildError = 2
)

// buildError is a failure of the build itself (exit 2).
type buildError struct{ err error }

func (e buildError) Error() string { return e.err.Error() }
func (e buildError) Unwrap() error { return e.err }

// hostArch maps the kernel's machine name to an eib arch.
func hostArch(machine string) (string, error) {
	switch {
	case machine == "x86_64":
		return "amd64", nil
	case machine == "aarch64" || machine == "arm64":
		return "arm64", nil
	case len(machine) == 4 && machine[0] == 'i' && strings.HasSuffix(machine, "86"):
		return "i386", nil
	}
	return "", fmt.Errorf("cannot tell the arch to build from this host's machine type %q: give --arch (one of %s)", machine, strings.Join(SupportedArches, ", "))
}

func unameMachine() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	var b strings.Builder
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// srcDir is the eib tree: $EIB_SRCDIR, else the directory of the resolved
// executable.
func srcDir() (string, error) {
	if d := os.Getenv("EIB_SRCDIR"); d != "" {
		return filepath.Abs(d)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find the eib tree: %v (set EIB_SRCDIR)", err)
	}
	real, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("cannot find the eib tree from %s: %v (set EIB_SRCDIR)", exe, err)
	}
	return filepath.Dir(real), nil
}

// refuseBuildOptions is the Before of every subcommand: a build option
// given before the subcommand's name (eib -p demo sign FILE) would be
// parsed as the build's and silently ignored, so it is refused.
func refuseBuildOptions(ctx context.Context, cmd *cli.Command) (context.Context, error) {
	var set []string
	for _, f := range cmd.Root().Flags {
		if f.IsSet() {
			set = append(set, "--"+f.Names()[0])
		}
	}
	if len(set) > 0 {
		return ctx, usageError{fmt.Sprintf("%s given before %q: a subcommand's options come after its name (eib %s %s ...)",
			strings.Join(set, ", "), cmd.Name, cmd.Name, set[0])}
	}
	return ctx, nil
}

func newCommand(stdout io.Writer) *cli.Command {
	for _, sc := range subcommands {
		sc.Before = refuseBuildOptions
	}
	return &cli.Command{
		Name:                   "eib",
		Usage:                  "build an OS image from an OSTree commit",
		Version:                moduleVersion(),
		ArgsUsage:              "[BRANCH]",
		UseShortOptionHandling: true,
		HideHelpCommand:        true,
		Writer:                 stdout,
		Commands:               subcommands,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "localdir", Aliases: []string{"d"}, Usage: "directory of local overrides (config/, hooks/, data/)"},
			&cli.StringFlag{Name: "product", Aliases: []string{"p"}, Value: "eoscustom", Usage: "product to build"},
			&cli.StringFlag{Name: "arch", Aliases: []string{"a"}, Usage: "architecture to build: " + strings.Join(SupportedArches, ", ") + " (default: the host's)"},
			&cli.StringFlag{Name: "platform", Usage: "platform to build (default: the arch)"},
			&cli.StringFlag{Name: "personality", Aliases: []string{"P"}, Value: "base", Usage: "personality to build"},
			&cli.BoolFlag{Name: "show-config", Usage: "print the merged configuration and exit"},
			&cli.BoolFlag{Name: "show-plan", Usage: "print the build's plan (stages, directories, OSTree source, disk layout, outputs, checks, hooks) as JSON and exit"},
			&cli.BoolFlag{Name: "show-apps", Usage: "print the Flatpak apps and runtimes of the variant with their download (compressed) and installed sizes in bytes, read from the remotes' summaries, and exit (no lock, no image)"},
			&cli.StringFlag{Name: "group-by", Value: "nature", Usage: "with --show-apps: group by `runtime` (the apps under the runtime they use) or nature (apps, runtimes, extensions)"},
			&cli.Int64Flag{Name: "trim", Usage: "with --show-apps: also list the apps whose removal saves at least `BYTES` of download size"},
			&cli.StringFlag{Name: "until", Usage: "stop after `STAGE` (eib --from continues the build)"},
			&cli.StringFlag{Name: "from", Usage: "continue the build recorded in tmpdir from `STAGE` (after eib --until)"},
			&cli.StringFlag{Name: "explain", Usage: "show where one `SECTION:KEY` of the configuration comes from and exit"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "build, but do not publish"},
			&cli.BoolFlag{Name: "debug", Usage: "more verbose logging"},
			&cli.BoolFlag{Name: "use-production-ostree", Usage: "use the production OSTree repository rather than staging"},
			&cli.BoolFlag{Name: "use-production", Usage: "deprecated: same as --use-production-ostree"},
			&cli.IntFlag{Name: "lock-timeout", Value: 60, Usage: "seconds to wait for the build lock"},
		},
		OnUsageError: func(ctx context.Context, cmd *cli.Command, err error, isSubcommand bool) error {
			return err
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return run(ctx, cmd, stdout)
		},
	}
}

// usageError is a command line or configuration error (exit 1).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// selection turns the options that choose one build's configuration
// (BRANCH, --product, --arch, --platform, --personality, --localdir) into
// config.Options, shared by a build and eib lint.
func selection(cmd *cli.Command) (config.Options, error) {
	args := cmd.Args().Slice()
	if len(args) > 1 {
		return config.Options{}, usageError{fmt.Sprintf("only one BRANCH may be given, got %d: %s", len(args), strings.Join(args, " "))}
	}
	o := config.Options{
		Branch:      "master",
		Product:     cmd.String("product"),
		Arch:        cmd.String("arch"),
		Platform:    cmd.String("platform"),
		Personality: cmd.String("personality"),
		SysConfDir:  os.Getenv("EIB_SYSCONFDIR"),
	}
	if len(args) == 1 {
		o.Branch = args[0]
	}
	var err error
	if o.Arch == "" {
		if o.Arch, err = hostArch(unameMachine()); err != nil {
			return o, usageError{err.Error()}
		}
	} else if !contains(SupportedArches, o.Arch) {
		return o, usageError{fmt.Sprintf("--arch %s: not one of %s", o.Arch, strings.Join(SupportedArches, ", "))}
	}
	if o.Platform == "" {
		o.Platform = o.Arch
	}
	if o.SrcDir, err = srcDir(); err != nil {
		return o, usageError{err.Error()}
	}
	if o.LocalDir = cmd.String("localdir"); o.LocalDir != "" {
		if o.LocalDir, err = filepath.Abs(o.LocalDir); err != nil {
			return o, usageError{fmt.Sprintf("--localdir: %v", err)}
		}
		if st, err := os.Stat(o.LocalDir); err != nil || !st.IsDir() {
			return o, usageError{fmt.Sprintf("--localdir %s: not a directory", o.LocalDir)}
		}
	}
	return o, nil
}

func run(ctx context.Context, cmd *cli.Command, stdout io.Writer) error {
	opts, err := selection(cmd)
	if err != nil {
		return err
	}
	if cmd.Bool("show-config") && cmd.String("explain") != "" {
		return usageError{"--show-config and --explain cannot be used together"}
	}
	if cmd.Bool("show-plan") && (cmd.Bool("show-config") || cmd.String("explain") != "") {
		return usageError{"--show-plan cannot be used with --show-config or --explain"}
	}
	if cmd.Bool("show-apps") && (cmd.Bool("show-plan") || cmd.Bool("show-config") || cmd.String("explain") != "") {
		return usageError{"--show-apps cannot be used with --show-plan, --show-config or --explain"}
	}
	if (cmd.IsSet("group-by") || cmd.IsSet("trim")) && !cmd.Bool("show-apps") {
		return usageError{"--group-by and --trim go with --show-apps"}
	}
	if g := cmd.String("group-by"); g != "runtime" && g != "nature" {
		return usageError{fmt.Sprintf("--group-by %s: runtime or nature", g)}
	}
	if cmd.Int64("trim") < 0 {
		return usageError{fmt.Sprintf("--trim %d: must be 0 or more bytes", cmd.Int64("trim"))}
	}
	if cmd.Int("lock-timeout") < 0 {
		return usageError{fmt.Sprintf("--lock-timeout %d: must be 0 or more seconds", cmd.Int("lock-timeout"))}
	}
	useProd := cmd.Bool("use-production-ostree")
	if cmd.Bool("use-production") {
		fmt.Fprintln(os.Stderr, "eib: --use-production is deprecated; use --use-production-ostree")
		useProd = true
	}
	opts.DryRun = cmd.Bool("dry-run")
	opts.UseProductionOSTree = useProd
	loaded, err := config.Load(opts)
	if err != nil {
		return usageError{err.Error()}
	}
	if w := unknownLayer(loaded, "product", []string{opts.Product}); w != "" && cmd.IsSet("product") {
		fmt.Fprintln(os.Stderr, "eib: warning: "+w)
	}
	if w := unknownLayer(loaded, "personality", config.PersonalityPrefixes(opts.Personality)); w != "" && cmd.IsSet("personality") {
		fmt.Fprintln(os.Stderr, "eib: warning: "+w)
	}
	if cmd.Bool("show-config") {
		return loaded.Full.Write(stdout)
	}
	if ref := cmd.String("explain"); ref != "" {
		section, key, err := config.ParseKeyRef(ref)
		if err != nil {
			return usageError{err.Error()}
		}
		if err := loaded.Explain(stdout, section, key); err != nil {
			return usageError{err.Error()}
		}
		return nil
	}
	// Keys nothing reads: most likely a typo, or a part of EIB eib leaves
	// out (`eib lint` lists them with the other findings, and fails).
	for _, w := range loaded.Unread() {
		fmt.Fprintln(os.Stderr, "eib: warning: "+w.Error())
	}
	// Declare, then execute: the plan checks every stage's settings
	// before the lock and any work (a mistake there exits 1), the build
	// runs it (a failure exits 2).
	newPlan := func(loaded *config.Loaded) (*stage.Plan, error) {
		plan, err := stage.NewPlan(stage.Options{
			Loaded:      loaded,
			SrcDir:      opts.SrcDir,
			LocalDir:    opts.LocalDir,
			DryRun:      opts.DryRun,
			Debug:       cmd.Bool("debug"),
			LockFile:    os.Getenv("EIB_LOCK_FILE"),
			LockTimeout: int(cmd.Int("lock-timeout")),
			From:        cmd.String("from"),
			Until:       cmd.String("until"),
		})
		if err != nil {
			return nil, usageError{err.Error()}
		}
		return plan, nil
	}
	plan, err := newPlan(loaded)
	if err != nil {
		return err
	}
	if plan.From != "" {
		// Both halves of a build make the same outversion: --from
		// reuses the build_version of the build it continues.
		st, err := engine.ReadState(plan.TmpDir)
		if err != nil {
			return usageError{err.Error()}
		}
		if st != nil && st.BuildVersion != "" && st.BuildVersion != plan.BuildVersion {
			opts.BuildVersion = st.BuildVersion
			if loaded, err = config.Load(opts); err != nil {
				return usageError{err.Error()}
			}
			if plan, err = newPlan(loaded); err != nil {
				return err
			}
		}
		if err := engine.CheckResume(plan); err != nil && !cmd.Bool("show-plan") {
			return usageError{err.Error()}
		}
	}
	if cmd.Bool("show-apps") {
		// Like --show-plan, before the lock: it only reads the
		// remotes' summaries into a scratch installation.
		if err := plan.ShowApps(ctx, stdout, cmd.String("group-by"), cmd.Int64("trim")); err != nil {
			return buildError{err}
		}
		return nil
	}
	if cmd.Bool("show-plan") {
		data, err := plan.JSON()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", data)
		return err
	}
	if err := engine.Run(ctx, plan, loaded, plan.StageRunners()); err != nil {
		return buildError{err}
	}
	return nil
}

// unknownLayer is a warning when none of the files config/<attr>/<v>.ini
// of the srcdir or the localdir was read for values (the product; the
// personality and its prefixes, as EIB's run-build reads them): EIB builds
// any product or personality name with the other layers alone, so a
// misspelt --product or --personality goes unnoticed. "" when one was
// read. The caller checks only an option the user gave.
func unknownLayer(loaded *config.Loaded, attr string, values []string) string {
	for _, v := range values {
		rel := filepath.Join("config", attr, v+".ini")
		for _, f := range loaded.Files {
			if strings.HasSuffix(f.Path, string(filepath.Separator)+rel) {
				return ""
			}
		}
	}
	known := map[string]bool{}
	for _, dir := range []string{loaded.Options.SrcDir, loaded.Options.LocalDir} {
		if dir == "" {
			continue
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "config", attr, "*.ini"))
		for _, m := range matches {
			known[strings.TrimSuffix(filepath.Base(m), ".ini")] = true
		}
	}
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	name := values[len(values)-1]
	plural := map[string]string{"product": "products", "personality": "personalities"}[attr]
	return fmt.Sprintf("%s %q has no %s in the srcdir or the localdir: it builds with the defaults alone (%s with a file: %s)",
		attr, name, filepath.Join("config", attr, name+".ini"), plural, strings.Join(names, ", "))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// exitCode maps an error of the root command to the process exit code.
func exitCode(err error) int {
	var be buildError
	if err == nil {
		return exitOK
	}
	if errors.As(err, &be) {
		return exitBuildError
	}
	return exitUsage
}

func main() {
	// No signal handler here: until a build holds resources, SIGINT and
	// SIGTERM end eib at once, whatever it is waiting for. The build
	// (engine.Run) and check-image catch them to clean up.
	err := newCommand(os.Stdout).Run(context.Background(), os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eib: "+err.Error())
	}
	os.Exit(exitCode(err))
}
