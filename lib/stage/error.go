package stage

import (
	"context"

	"github.com/eib-builder/eib/lib/build"
)

// ErrorStageName is the stage run when another fails; it is not listed in
// buildscript.
const ErrorStageName = "error"

// errorStage runs the error hook group (no install root); its hooks see
// EIB_ERROR_STAGE, EIB_ERROR_HOOK and EIB_ERROR_LOG.
type errorStage struct{}

func (errorStage) Name() string { return ErrorStageName }

func (errorStage) Run(ctx context.Context, b *build.Build) error {
	return b.Hooks.RunGroup(ctx, b, "error", "")
}
