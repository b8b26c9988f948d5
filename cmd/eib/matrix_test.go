package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// runEIB runs eib with args (no os.Exit) and returns its stdout and exit
// code.
func runEIB(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var buf bytes.Buffer
	cmd := newCommand(&buf)
	cmd.ErrWriter = &buf
	cmd.ExitErrHandler = func(context.Context, *cli.Command, error) {}
	err := cmd.Run(context.Background(), append([]string{"eib"}, args...))
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return buf.String(), 0
	case errors.As(err, &ec):
		return buf.String() + ec.Error(), ec.ExitCode()
	}
	return buf.String() + err.Error(), exitCode(err)
}

func TestMatrixListsTheShippedVariants(t *testing.T) {
	src, _ := filepath.Abs("../..")
	t.Setenv("EIB_SRCDIR", src)
	out, code := runEIB(t, "matrix", "--json")
	if code != 0 {
		t.Fatalf("eib matrix --json exited %d:\n%s", code, out)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	found := false
	for _, r := range rows {
		if r["name"] == "eos-master-arm64-pinebookpro-fr" && r["platform"] == "pinebookpro" {
			found = true
		}
		if r["name"] == "eos-master-amd64-pinebookpro-base" {
			t.Errorf("an excluded variant is listed: %v", r)
		}
	}
	if !found {
		t.Errorf("eos-master-arm64-pinebookpro-fr is not listed:\n%s", out)
	}
	out, code = runEIB(t, "matrix")
	if code != 0 || !strings.HasPrefix(out, "VARIANT") || strings.Count(out, "\n") != len(rows)+1 {
		t.Errorf("eib matrix table (exit %d):\n%s", code, out)
	}
	if out, code := runEIB(t, "matrix", "--changed"); code != 1 || !strings.Contains(out, "--changed needs --published") {
		t.Errorf("eib matrix --changed alone: exit %d:\n%s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "m.ini")
	os.WriteFile(bad, []byte("[matrix x]\nproducts = p\n"), 0o644)
	if out, code := runEIB(t, "matrix", "--matrix", bad); code != 1 || !strings.Contains(out, "[matrix x] branches") {
		t.Errorf("eib matrix of a bad file: exit %d:\n%s", code, out)
	}
}
