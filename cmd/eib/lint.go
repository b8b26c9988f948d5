package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/stage"
)

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:      "lint",
		Usage:     "report what the configuration has that EIB accepts silently but is likely a mistake",
		ArgsUsage: "[BRANCH]",
		Description: "Loads the configuration of one build (the same options as a build) and prints\n" +
			"one line per finding (FILE:LINE: [SECTION] KEY: what): what a build refuses\n" +
			"before it starts (the schema, the plan's checks: trusted keys, pull URL,\n" +
			"signing key, hooks, layout, publish destinations), schema keys without a\n" +
			"_required, _values or _type suffix, unknown _type and _required values,\n" +
			"references that cannot be resolved, and keys that neither eib nor any hook\n" +
			"reads (named with the part of EIB they belong to when eib does not implement\n" +
			"it). Exit status: 0 nothing found, 1 findings or a configuration error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "localdir", Aliases: []string{"d"}, Usage: "directory of local overrides, as for a build"},
			&cli.StringFlag{Name: "product", Aliases: []string{"p"}, Value: "eoscustom", Usage: "product, as for a build"},
			&cli.StringFlag{Name: "arch", Aliases: []string{"a"}, Usage: "architecture, as for a build (default: the host's)"},
			&cli.StringFlag{Name: "platform", Usage: "platform, as for a build (default: the arch)"},
			&cli.StringFlag{Name: "personality", Aliases: []string{"P"}, Value: "base", Usage: "personality, as for a build"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return lintCommand(cmd, os.Stdout)
		},
	})
}

// lintCommand is `eib lint`: the findings on stdout, exit 1 when there is
// any.
func lintCommand(cmd *cli.Command, stdout io.Writer) error {
	fail := func(format string, args ...any) error {
		return cli.Exit("eib lint: "+fmt.Sprintf(format, args...), exitUsage)
	}
	opts, err := selection(cmd)
	if err != nil {
		return fail("%v", err)
	}
	// The schema's violations are findings too: all in one round.
	opts.KeepSchemaViolations = true
	loaded, err := config.Load(opts)
	if err != nil {
		return fail("%v", err)
	}
	findings, err := loaded.Lint()
	if err != nil {
		return fail("%v", err)
	}
	var b strings.Builder
	for _, f := range findings {
		b.WriteString(f.Error() + "\n")
	}
	n := len(findings)
	// What the build's plan refuses before it starts (stage.NewPlan's
	// validation: trusted keys, signing key, hooks, layout, publish
	// destinations...), but for what the schema already said of the
	// same line.
	for _, err := range planErrors(loaded, opts) {
		if !saidOf(loaded.SchemaViolations, err) {
			b.WriteString(err.Error() + "\n")
			n++
		}
	}
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return fail("%v", err)
	}
	if n > 0 {
		return cli.Exit(fmt.Sprintf("eib lint: %d finding(s)", n), exitUsage)
	}
	return nil
}

// planErrors are the errors of the build's plan for loaded, one per
// configuration mistake.
func planErrors(loaded *config.Loaded, opts config.Options) []error {
	_, err := stage.NewPlan(stage.Options{Loaded: loaded, SrcDir: opts.SrcDir, LocalDir: opts.LocalDir})
	if err == nil {
		return nil
	}
	var many interface{ Unwrap() []error }
	if errors.As(err, &many) {
		return many.Unwrap()
	}
	return []error{err}
}

// saidOf tells whether err is about a line one of the schema violations
// is about (it starts with the same "FILE:LINE:").
func saidOf(violations []*config.Error, err error) bool {
	for _, v := range violations {
		if v.File != "" && strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d:", v.File, v.Line)) {
			return true
		}
	}
	return false
}
