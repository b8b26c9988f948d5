// Command eib builds OS images from an OSTree commit.
//
// PLACEHOLDER: the CLI is written by the config engine change.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v3"
)

// subcommands are added by other files of this package in init()
// (e.g. check-image, sign).
var subcommands []*cli.Command

func main() {
	cmd := &cli.Command{Name: "eib", Commands: subcommands}
	if err := cmd.Run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "eib:", err)
		os.Exit(1)
	}
}
