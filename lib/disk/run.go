package disk

import (
	"context"
	"io"

	"github.com/eib-builder/eib/lib/proc"
)

// run runs a tool and returns its stdout; the error (a *proc.Error) names
// the command line and carries the tool's own stderr.
func run(ctx context.Context, stdin io.Reader, env []string, name string, args ...string) (string, error) {
	stdout, _, err := runOutputs(ctx, stdin, env, name, args...)
	return stdout, err
}

// runOutputs is run returning stderr too, for tools that report failures
// there but exit 0 (debugfs).
func runOutputs(ctx context.Context, stdin io.Reader, env []string, name string, args ...string) (stdout, stderr string, err error) {
	return proc.Command{Name: name, Args: args, Env: env, Stdin: stdin}.Run(ctx)
}
