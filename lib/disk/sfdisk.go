package disk

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// SfdiskScript returns the sfdisk input that writes the plan's table.
func (p Plan) SfdiskScript() string {
	var b strings.Builder
	fmt.Fprintf(&b, "label: %s\n", p.Layout.Label)
	if p.DiskID != "" {
		fmt.Fprintf(&b, "label-id: %s\n", p.DiskID)
	}
	b.WriteString("unit: sectors\nsector-size: 512\n")
	if p.Layout.Label == GPT {
		fmt.Fprintf(&b, "first-lba: %d\n", 34)
	}
	b.WriteString("\n")
	for _, pl := range p.Partitions {
		fields := []string{"start=" + strconv.FormatInt(pl.Start, 10), "size=" + strconv.FormatInt(pl.Size, 10)}
		if p.Layout.Label == GPT {
			fields = append(fields, "type="+pl.TypeGUID)
			if pl.UUID != "" {
				fields = append(fields, "uuid="+strings.ToUpper(pl.UUID))
			}
			if len(pl.Attrs) > 0 {
				var bits []string
				for _, a := range pl.Attrs {
					bits = append(bits, strconv.Itoa(a))
				}
				fields = append(fields, "attrs=\"GUID:"+strings.Join(bits, ",")+"\"")
			}
		} else {
			fields = append(fields, "type="+pl.MBRType)
		}
		b.WriteString(strings.Join(fields, ", ") + "\n")
	}
	return b.String()
}

// WriteTable writes the plan's partition table into the disk file img with
// sfdisk (no device, no kernel re-read).
func (p Plan) WriteTable(ctx context.Context, img string) error {
	script := p.SfdiskScript()
	_, err := run(ctx, strings.NewReader(script), nil, "sfdisk", "--no-reread", "--no-tell-kernel",
		"--wipe", "never", "--quiet", img)
	if err != nil {
		return fmt.Errorf("writing the partition table of %s: %w\nsfdisk input:\n%s", img, err, script)
	}
	return nil
}
