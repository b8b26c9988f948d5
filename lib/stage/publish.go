package stage

import (
	"context"

	"github.com/eib-builder/eib/lib/build"
)

func init() { Register(publishStage{}) }

// publishStage runs the publish hook group (no install root). A dry run
// skips it entirely.
type publishStage struct{}

func (publishStage) Name() string { return "publish" }

func (publishStage) Run(ctx context.Context, b *build.Build) error {
	if b.DryRun {
		b.Log.Printf("dry run: not publishing")
		return nil
	}
	return b.Hooks.RunGroup(ctx, b, "publish", "")
}
