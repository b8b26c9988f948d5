// Package stage runs a build: the stages named in buildscript, in order,
// the error stage on failure, and the one cleanup path.
//
// PLACEHOLDER: the build engine fills this in; the exported names below are
// what cmd/eib codes against.
package stage

import (
	"context"
	"errors"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// registry holds every stage by name; each stage file registers itself in
// an init function: func init() { Register(ostreeStage{}) }.
var registry = map[string]build.Stage{}

// Register makes a stage available to buildscript.
func Register(s build.Stage) { registry[s.Name()] = s }

// Options are what cmd/eib hands to Execute.
type Options struct {
	Loaded      *config.Loaded
	SrcDir      string
	LocalDir    string
	DryRun      bool
	Debug       bool
	LockFile    string // default /var/lock/eib.lock (EIB_LOCK_FILE overrides)
	LockTimeout int    // seconds
}

// Execute runs the build. The returned error, if any, is the one final line
// to print; the process exits 2 on it.
func Execute(ctx context.Context, o Options) error {
	return errors.New("build engine: not implemented yet")
}
