package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/stage"
)

func init() {
	cli.VersionPrinter = printVersion
}

// moduleVersion is the Go module version eib was built as: "(devel)" for
// a build of a checkout (make's), a tag for `go install ...@vX`.
func moduleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// printVersion is `eib --version`: the module version, the git commit of
// the eib tree (the srcdir) when it is a checkout, as the manifest's
// "builder" records it, and whether its tracked files differ from it, the
// tree and the Go toolchain.
func printVersion(cmd *cli.Command) {
	out := cmd.Root().Writer
	src, err := srcDir()
	if err != nil {
		fmt.Fprintf(out, "eib %s (%s)\n", moduleVersion(), runtime.Version())
		return
	}
	b := stage.Builder(context.Background(), src)
	commit := "not a git checkout"
	if b.Commit != "" {
		commit = "commit " + b.Commit
		// Tracked files that differ from the commit (make builds with
		// -buildvcs=false: Go's vcs.modified is not there).
		if exec.Command("git", "-C", src, "diff", "--quiet", "HEAD", "--").Run() != nil {
			commit += " with local changes"
		}
	}
	fmt.Fprintf(out, "eib %s, %s (srcdir %s, %s)\n", b.Version, commit, src, runtime.Version())
}
