package stage

import (
	"context"
	"fmt"

	"github.com/eib-builder/eib/lib/build"
)

// makeDiskImages turns the deployed sysroot (b.Deployment) into the disk
// image(s) of the configured layout, appends them to b.Images, and writes
// each one's outputs with writeImageOutputs.
//
// PLACEHOLDER until disk assembly lands.
func makeDiskImages(ctx context.Context, b *build.Build) error {
	return fmt.Errorf("disk image assembly: %w", build.ErrNotImplemented)
}
