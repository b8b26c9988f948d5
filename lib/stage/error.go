package stage

import (
	"context"
	"errors"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/publish"
)

// ErrorStageName is the stage run when another fails; it is not listed in
// buildscript.
const ErrorStageName = "error"

// errorStage copies the masked build log (EIB_ERROR_LOG) as
// <outversion>.failed.build.txt next to the releases of every configured
// [publish] destination (nothing else is published on failure; none on a
// dry run), then runs the error hook group (no install root); its hooks
// see EIB_ERROR_STAGE, EIB_ERROR_HOOK and EIB_ERROR_LOG. A broken
// destination is reported and the others are still served.
type errorStage struct{}

func (errorStage) Name() string { return ErrorStageName }

func (errorStage) Run(ctx context.Context, b *build.Build) error {
	err := publishFailedLog(ctx, b)
	if err != nil {
		b.Log.Printf("%v", err)
	}
	return errors.Join(err, b.Hooks.RunGroup(ctx, b, "error", ""))
}

func publishFailedLog(ctx context.Context, b *build.Build) error {
	s, err := publishSettings(b)
	if err != nil {
		return err
	}
	if s.Dir == "" && s.RsyncDest == "" && s.S3Bucket == "" {
		return nil
	}
	ov, err := outVersion(b)
	if err != nil {
		return err
	}
	name := ov + ".failed.build.txt"
	if b.DryRun {
		b.Log.Printf("dry run: not publishing %s", name)
		return nil
	}
	where := b.FailedStage
	if b.FailedHook != "" {
		where += ", hook " + b.FailedHook
	}
	b.Log.Printf("build failed in %s; publishing %s", where, name)
	return publish.PutAll(ctx, s, b.FailedLog, name)
}
