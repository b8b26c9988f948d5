package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/farm"
	"github.com/eib-builder/eib/lib/manifest"
	"github.com/eib-builder/eib/lib/matrix"
)

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:  "farm",
		Usage: "run the variant matrix on a build farm (Buildbot, or GitLab CI)",
		Commands: []*cli.Command{{
			Name:  "buildbot",
			Usage: "write the Buildbot 3.7 master.cfg that builds the matrix",
			Description: "Writes master.cfg for a Buildbot master (Debian 12's buildbot package): one\n" +
				"builder per variant of the matrix, each build running `eib farm run` on a\n" +
				"worker (one build per worker at a time: a worker lock), request merging off,\n" +
				"results uploaded to the master, and a builder eib-run that triggers them all and\n" +
				"runs `eib report`. Passwords go in workers.passwd next to it (see README).",
			Flags: append(matrixFlags(),
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write master.cfg to `FILE` (- for stdout)"},
				&cli.StringSliceFlag{Name: "worker", Usage: "a worker `NAME` or NAME:ARCH,ARCH (the arches it builds; default all); repeatable"},
				&cli.StringFlag{Name: "eib", Value: "eib", Usage: "the eib `EXECUTABLE` on the workers"},
				&cli.StringFlag{Name: "master-eib", Usage: "the eib `EXECUTABLE` on the master (default: --eib)"},
				&cli.StringFlag{Name: "worker-localdir", Usage: "the localdir on the workers (default: --localdir)"},
				&cli.StringFlag{Name: "worker-matrix", Usage: "the matrix file on the workers (default: --matrix)"},
				&cli.StringFlag{Name: "published", Usage: "where the workers publish: a `DIR` or URL; a variant whose plan hash is there is not built again"},
				&cli.StringFlag{Name: "results", Value: "results", Usage: "results `DIR` on the master (relative to its base directory)"},
				&cli.IntFlag{Name: "pb-port", Value: 9989, Usage: "the `PORT` workers connect to"},
				&cli.StringFlag{Name: "pb-interface", Usage: "the `ADDRESS` the port listens on (default: all)"},
				&cli.StringFlag{Name: "nightly", Usage: "start a run every day at `HH:MM` (the master's time)"},
				&cli.StringSliceFlag{Name: "variant", Usage: "only this variant `NAME` (repeatable)"},
			),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				return farmBuildbotCommand(cmd, cmd.Root().Writer)
			},
		}, {
			Name:  "gitlab",
			Usage: "write the matrix as a GitLab CI child pipeline",
			Description: "Writes a .gitlab-ci.yml for a child pipeline: one job per variant on a runner\n" +
				"tagged eib-<arch>, running `eib farm run` and keeping its results as artifacts,\n" +
				"and a report job that needs them all. Give each build host's runner\n" +
				"concurrent = 1 (one eib build per host).",
			Flags: append(matrixFlags(),
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "write the pipeline to `FILE` (- for stdout)"},
				&cli.StringFlag{Name: "eib", Value: "eib", Usage: "the eib `EXECUTABLE` on the runners"},
				&cli.StringFlag{Name: "worker-localdir", Usage: "the localdir on the runners (default: --localdir)"},
				&cli.StringFlag{Name: "worker-matrix", Usage: "the matrix file on the runners (default: --matrix)"},
				&cli.StringFlag{Name: "published", Usage: "where the runners publish: a `DIR` or URL"},
				&cli.StringSliceFlag{Name: "variant", Usage: "only this variant `NAME` (repeatable)"},
			),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				return farmGitLabCommand(cmd, cmd.Root().Writer)
			},
		}, {
			Name:  "run",
			Usage: "build one variant of the matrix on this host and leave its results for the master",
			Description: "What a Buildbot build of a variant runs on its worker: with --published, the\n" +
				"variant's plan hash is compared with the published releases first and nothing is\n" +
				"built when one has it. Otherwise eib builds the variant (its output is copied\n" +
				"to stdout and --results/build.log); then --results holds result.json (result,\n" +
				"time, image size, plan hash), manifest.json and build.log. Exit status: the\n" +
				"build's (0, 1 configuration error, 2 build failure).",
			Flags: append(matrixFlags(),
				&cli.StringFlag{Name: "variant", Usage: "the variant `NAME` (eib matrix lists them)"},
				&cli.StringFlag{Name: "results", Value: "results", Usage: "the results `DIR` (emptied first)"},
				&cli.StringFlag{Name: "published", Usage: "skip the build when a release in `DIR` or URL has the variant's plan hash"},
				&cli.StringFlag{Name: "worker", Usage: "the worker's `NAME`, recorded in result.json"},
			),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				return farmRunCommand(ctx, cmd, cmd.Root().Writer)
			},
		}},
	})
}

func farmBuildbotCommand(cmd *cli.Command, stdout io.Writer) error {
	fail := func(format string, args ...any) error {
		return cli.Exit("eib farm buildbot: "+fmt.Sprintf(format, args...), exitUsage)
	}
	vs, local, mat, err := farmTarget(cmd)
	if err != nil {
		return fail("%v", err)
	}
	c := farm.Buildbot{Variants: vs, EIB: cmd.String("eib"), MasterEIB: cmd.String("master-eib"),
		LocalDir: local, Matrix: mat, Published: cmd.String("published"),
		Results: cmd.String("results"), PBPort: int(cmd.Int("pb-port")), PBInterface: cmd.String("pb-interface"), Nightly: cmd.String("nightly")}
	if c.MasterEIB == "" {
		c.MasterEIB = c.EIB
	}
	for _, s := range cmd.StringSlice("worker") {
		w, err := farm.ParseWorker(s)
		if err != nil {
			return fail("--worker: %v", err)
		}
		c.Workers = append(c.Workers, w)
	}
	text, err := c.MasterConfig()
	if err != nil {
		return fail("%v", err)
	}
	if err := writeFarmOutput(cmd, stdout, text); err != nil {
		return fail("%v", err)
	}
	return nil
}

func farmGitLabCommand(cmd *cli.Command, stdout io.Writer) error {
	fail := func(format string, args ...any) error {
		return cli.Exit("eib farm gitlab: "+fmt.Sprintf(format, args...), exitUsage)
	}
	vs, local, mat, err := farmTarget(cmd)
	if err != nil {
		return fail("%v", err)
	}
	g := farm.GitLab{Variants: vs, EIB: cmd.String("eib"), LocalDir: local, Matrix: mat, Published: cmd.String("published")}
	text, err := g.Pipeline()
	if err != nil {
		return fail("%v", err)
	}
	if err := writeFarmOutput(cmd, stdout, text); err != nil {
		return fail("%v", err)
	}
	return nil
}

// farmTarget is what `eib farm buildbot` and `eib farm gitlab` generate
// for: the selected variants (--variant, all by default), the localdir
// the workers use (--worker-localdir, else --localdir) and the matrix
// file they read (--worker-matrix, else --matrix made absolute; "" for
// the shipped one).
func farmTarget(cmd *cli.Command) (vs []matrix.Variant, localdir, matrixFile string, err error) {
	m, _, local, err := loadMatrix(cmd)
	if err != nil {
		return nil, "", "", err
	}
	if vs, err = m.Select(cmd.StringSlice("variant")); err != nil {
		return nil, "", "", err
	}
	if localdir = cmd.String("worker-localdir"); localdir == "" {
		localdir = local
	}
	if matrixFile = cmd.String("worker-matrix"); matrixFile == "" && cmd.String("matrix") != "" {
		if matrixFile, err = filepath.Abs(cmd.String("matrix")); err != nil {
			return nil, "", "", err
		}
	}
	return vs, localdir, matrixFile, nil
}

// writeFarmOutput writes a generated configuration to --output, or to
// stdout when it is "-".
func writeFarmOutput(cmd *cli.Command, stdout io.Writer, text string) error {
	if out := cmd.String("output"); out != "-" {
		return os.WriteFile(out, []byte(text), 0o644)
	}
	_, err := io.WriteString(stdout, text)
	return err
}

// farmRunCommand is `eib farm run`.
func farmRunCommand(ctx context.Context, cmd *cli.Command, stdout io.Writer) error {
	fail := func(format string, args ...any) error {
		return cli.Exit("eib farm run: "+fmt.Sprintf(format, args...), exitUsage)
	}
	if cmd.String("variant") == "" {
		return fail("--variant NAME is required")
	}
	m, src, local, err := loadMatrix(cmd)
	if err != nil {
		return fail("%v", err)
	}
	vs, err := m.Select([]string{cmd.String("variant")})
	if err != nil {
		return fail("%v", err)
	}
	v := vs[0]
	dir := cmd.String("results")
	if err := os.RemoveAll(dir); err != nil {
		return fail("%v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("%v", err)
	}
	res := farm.Result{Variant: v.Name(), Worker: cmd.String("worker"), Started: time.Now().UTC()}
	// The log holds the build's output, or why there was none.
	logf, err := os.Create(filepath.Join(dir, farm.LogFile))
	if err != nil {
		return fail("%v", err)
	}
	defer logf.Close()
	out := io.MultiWriter(stdout, logf)
	finish := func(code int) error {
		res.Finished = time.Now().UTC()
		res.Seconds = res.Finished.Sub(res.Started).Seconds()
		res.ExitCode = code
		if err := farm.WriteResult(dir, res); err != nil {
			return fail("%v", err)
		}
		if code != 0 {
			fmt.Fprintf(logf, "eib farm run: %s: %s (exit %d)\n", v.Name(), res.Reason, code)
			return cli.Exit(fmt.Sprintf("eib farm run: variant %s: %s (exit %d)", v.Name(), res.Reason, code), code)
		}
		return nil
	}
	sum, plan, err := variantHash(ctx, v, src, local)
	if err != nil {
		res.Result, res.Reason = farm.ResultFailed, err.Error()
		return finish(exitUsage)
	}
	res.PlanHash = sum
	if where := cmd.String("published"); where != "" {
		rels, err := matrix.NewPublished(where).Find(ctx, matrix.OutVersionPattern(plan.OutVersion, plan.BuildVersion))
		if err != nil {
			res.Result, res.Reason = farm.ResultFailed, err.Error()
			return finish(exitUsage)
		}
		for _, r := range rels {
			if r.PlanHash == sum {
				res.Result, res.Published = farm.ResultSkipped, r.Name
				res.Reason = "plan hash " + sum + " published as " + r.Name
				fmt.Fprintf(out, "eib farm run: %s: not built, %s\n", v.Name(), res.Reason)
				return finish(0)
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fail("%v", err)
	}
	args := []string{}
	if local != "" {
		args = append(args, "--localdir", local)
	}
	args = append(args, v.Args()...)
	fmt.Fprintf(out, "eib farm run: eib %s\n", strings.Join(args, " "))
	b := exec.CommandContext(ctx, exe, args...)
	b.Stdout = out
	b.Stderr = out
	err = b.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if code < 0 {
			code = exitBuildError
		}
	case err != nil:
		return fail("running eib: %v", err)
	}
	res.Result = farm.ResultOK
	if code != 0 {
		res.Result, res.Reason = farm.ResultFailed, "the build failed"
	}
	collectOutputs(plan.OutDir, dir, &res)
	return finish(code)
}

// collectOutputs copies the manifest of outdir into dir and records its
// outversion and the largest image file.
func collectOutputs(outdir, dir string, res *farm.Result) {
	mans, _ := filepath.Glob(filepath.Join(outdir, "*"+manifest.Suffix))
	if len(mans) == 1 {
		if data, err := os.ReadFile(mans[0]); err == nil {
			os.WriteFile(filepath.Join(dir, farm.ManifestFile), data, 0o644)
			res.OutVersion = strings.TrimSuffix(filepath.Base(mans[0]), manifest.Suffix)
			var m struct {
				PlanHash struct {
					Hash string `json:"hash"`
				} `json:"plan_hash"`
			}
			if json.Unmarshal(data, &m) == nil && m.PlanHash.Hash != "" && m.PlanHash.Hash != res.PlanHash {
				res.Reason = strings.TrimPrefix(res.Reason+"; ", "; ") + "the built plan hash " + m.PlanHash.Hash + " differs from the one before the build (an input changed during the build)"
				res.PlanHash = m.PlanHash.Hash
			}
		}
	}
	entries, _ := os.ReadDir(outdir)
	for _, e := range entries {
		if !strings.Contains(e.Name(), ".img") || !e.Type().IsRegular() {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() > res.ImageSize {
			res.ImageFile, res.ImageSize = e.Name(), info.Size()
		}
	}
}
