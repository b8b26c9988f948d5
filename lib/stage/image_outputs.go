package stage

import (
	"context"
	"fmt"

	"github.com/eib-builder/eib/lib/build"
)

// writeImageOutputs writes the outputs of one raw disk image into outdir
// (compressed image, .size, .sha256, .asc, optional qcow2) and appends them
// to b.Outputs.
//
// PLACEHOLDER until the output writer lands.
func writeImageOutputs(ctx context.Context, b *build.Build, img build.Image) error {
	return fmt.Errorf("image outputs: %w", build.ErrNotImplemented)
}
