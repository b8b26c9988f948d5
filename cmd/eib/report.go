package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/report"
)

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:      "report",
		Usage:     "summarize one run of the matrix: variants, result, time, image size, log",
		ArgsUsage: "RUNDIR",
		Description: "Reads RUNDIR/<variant>/result.json (what `eib farm run` left and Buildbot\n" +
			"uploaded) and prints a table; --html FILE writes the same as a web page whose\n" +
			"links are relative to RUNDIR. Exit status: 0 when every variant succeeded or was\n" +
			"already published, 2 when one failed, 1 for a usage error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "html", Usage: "write the HTML page to `FILE`"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return reportCommand(cmd, cmd.Root().Writer)
		},
	})
}

func reportCommand(cmd *cli.Command, stdout io.Writer) error {
	fail := func(format string, args ...any) error {
		return cli.Exit("eib report: "+fmt.Sprintf(format, args...), exitUsage)
	}
	if cmd.NArg() != 1 {
		return fail("want one RUNDIR, got %d arguments", cmd.NArg())
	}
	r, err := report.Read(cmd.Args().First())
	if err != nil {
		return fail("%v", err)
	}
	if err := r.WriteText(stdout); err != nil {
		return fail("%v", err)
	}
	if out := cmd.String("html"); out != "" {
		f, err := os.Create(out)
		if err != nil {
			return fail("%v", err)
		}
		err = r.WriteHTML(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail("%s: %v", out, err)
		}
	}
	if failed := r.Failed(); len(failed) > 0 {
		return cli.Exit(fmt.Sprintf("eib report: %d variant(s) failed: %s", len(failed), strings.Join(failed, ", ")), exitBuildError)
	}
	return nil
}
