package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// run runs a tool and returns its stdout; the error names the command line
// and carries the tool's own stderr.
func run(ctx context.Context, stdin io.Reader, env []string, name string, args ...string) (string, error) {
	stdout, _, err := runOutputs(ctx, stdin, env, name, args...)
	return stdout, err
}

// runOutputs is run returning stderr too, for tools that report failures
// there but exit 0 (debugfs).
func runOutputs(ctx context.Context, stdin io.Reader, env []string, name string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	if env != nil {
		cmd.Env = env
	}
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), errOut.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.String(), errOut.String(), nil
}
