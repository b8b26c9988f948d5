package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/matrix"
	"github.com/eib-builder/eib/lib/stage"
)

// matrixFlags are the options that choose the matrix, shared by eib matrix
// and eib farm.
func matrixFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "localdir", Aliases: []string{"d"}, Usage: "directory of local overrides, as for a build (its config/matrix.ini wins)"},
		&cli.StringFlag{Name: "matrix", Usage: "the matrix `FILE` (default: config/matrix.ini of the localdir, else of the srcdir)"},
	}
}

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:  "matrix",
		Usage: "list the variants of the matrix file, with their plan hashes and what is not published yet",
		Description: "Prints the variants of the matrix (config/matrix.ini; see README) as a table, or\n" +
			"as JSON with --json. --hash adds each variant's plan hash (its configuration,\n" +
			"the OSTree commit its ref points at in the remote's summary, its hook and data\n" +
			"files, eib itself). --changed --published DIR|URL lists only the variants whose\n" +
			"plan hash no published release has yet. --names prints one name per line.\n" +
			"Exit status: 0, or 1 for a usage or configuration error.",
		Flags: append(matrixFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "names", Usage: "print the variants' names only, one a line"},
			&cli.BoolFlag{Name: "hash", Usage: "compute each variant's plan hash (reads each remote's summary)"},
			&cli.BoolFlag{Name: "changed", Usage: "only the variants with no published release of their plan hash (needs --published)"},
			&cli.StringFlag{Name: "published", Usage: "where releases are published: a `DIR` ([publish] dir) or the URL serving it"},
			&cli.StringSliceFlag{Name: "variant", Usage: "only this variant `NAME` (repeatable)"},
		),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return matrixCommand(ctx, cmd, cmd.Root().Writer)
		},
	})
}

// matrixRow is one variant as eib matrix prints it.
type matrixRow struct {
	Name string `json:"name"`
	matrix.Variant
	Args      []string `json:"args"`
	PlanHash  string   `json:"plan_hash,omitempty"`
	Changed   *bool    `json:"changed,omitempty"`
	Published string   `json:"published,omitempty"` // the release with the same hash
}

// loadMatrix reads the matrix the options name, with the srcdir and the
// absolute localdir.
func loadMatrix(cmd *cli.Command) (*matrix.Matrix, string, string, error) {
	src, err := srcDir()
	if err != nil {
		return nil, "", "", err
	}
	local := cmd.String("localdir")
	if local != "" {
		if local, err = filepath.Abs(local); err != nil {
			return nil, "", "", err
		}
		if st, err := os.Stat(local); err != nil || !st.IsDir() {
			return nil, "", "", fmt.Errorf("--localdir %s: not a directory", local)
		}
	}
	file := cmd.String("matrix")
	if file == "" {
		if file, err = matrix.Find(src, local); err != nil {
			return nil, "", "", err
		}
	}
	m, err := matrix.Load(file)
	return m, src, local, err
}

// variantPlan loads the configuration and the plan of variant v.
func variantPlan(v matrix.Variant, src, local string) (*config.Loaded, *stage.Plan, error) {
	opts := config.Options{SrcDir: src, LocalDir: local, SysConfDir: os.Getenv("EIB_SYSCONFDIR"),
		Product: v.Product, Branch: v.Branch, Arch: v.Arch, Platform: v.Platform, Personality: v.Personality}
	loaded, err := config.Load(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("variant %s: %w", v.Name(), err)
	}
	plan, err := stage.NewPlan(stage.Options{Loaded: loaded, SrcDir: src, LocalDir: local})
	if err != nil {
		return nil, nil, fmt.Errorf("variant %s: %w", v.Name(), err)
	}
	return loaded, plan, nil
}

// variantHash computes v's plan hash and the pattern of its outversions.
func variantHash(ctx context.Context, v matrix.Variant, src, local string) (string, *stage.Plan, error) {
	loaded, plan, err := variantPlan(v, src, local)
	if err != nil {
		return "", nil, err
	}
	b := plan.NewBuild(loaded)
	commit, err := stage.RemoteCommit(ctx, b)
	if err != nil {
		return "", nil, fmt.Errorf("variant %s: %w", v.Name(), err)
	}
	in, err := stage.HashInputs(ctx, b, commit)
	if err != nil {
		return "", nil, fmt.Errorf("variant %s: %w", v.Name(), err)
	}
	return in.Sum(), plan, nil
}

func matrixCommand(ctx context.Context, cmd *cli.Command, stdout io.Writer) error {
	fail := func(format string, args ...any) error {
		return cli.Exit("eib matrix: "+fmt.Sprintf(format, args...), exitUsage)
	}
	if cmd.NArg() > 0 {
		return fail("no arguments expected, got %s", strings.Join(cmd.Args().Slice(), " "))
	}
	changed, where := cmd.Bool("changed"), cmd.String("published")
	if changed && where == "" {
		return fail("--changed needs --published DIR|URL")
	}
	if cmd.Bool("json") && cmd.Bool("names") {
		return fail("--json and --names cannot be used together")
	}
	m, src, local, err := loadMatrix(cmd)
	if err != nil {
		return fail("%v", err)
	}
	vs, err := m.Select(cmd.StringSlice("variant"))
	if err != nil {
		return fail("%v", err)
	}
	hash := cmd.Bool("hash") || changed || where != ""
	var pub *matrix.Published
	if where != "" {
		pub = matrix.NewPublished(where)
	}
	var rows []matrixRow
	for _, v := range vs {
		row := matrixRow{Name: v.Name(), Variant: v, Args: v.Args()}
		if hash {
			sum, plan, err := variantHash(ctx, v, src, local)
			if err != nil {
				return fail("%v", err)
			}
			row.PlanHash = sum
			if pub != nil {
				rels, err := pub.Find(ctx, matrix.OutVersionPattern(plan.OutVersion, plan.BuildVersion))
				if err != nil {
					return fail("%v", err)
				}
				ch := true
				for _, r := range rels {
					if r.PlanHash == sum {
						ch, row.Published = false, r.Name
					}
				}
				row.Changed = &ch
				if changed && !ch {
					continue
				}
			}
		}
		rows = append(rows, row)
	}
	switch {
	case cmd.Bool("json"):
		if rows == nil {
			rows = []matrixRow{}
		}
		data, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fail("%v", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", data)
		return err
	case cmd.Bool("names"):
		for _, r := range rows {
			fmt.Fprintln(stdout, r.Name)
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	head := "VARIANT\tGROUP\tPRODUCT\tBRANCH\tARCH\tPLATFORM\tPERSONALITY"
	if hash {
		head += "\tPLAN HASH"
	}
	if pub != nil {
		head += "\tPUBLISHED"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		line := strings.Join([]string{r.Name, r.Group, r.Product, r.Branch, r.Arch, r.Platform, r.Personality}, "\t")
		if hash {
			line += "\t" + strings.TrimPrefix(r.PlanHash, "sha256:")[:16]
		}
		if pub != nil {
			p := r.Published
			if p == "" {
				p = "-"
			}
			line += "\t" + p
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
