package output

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// QCOW2Extra is what WriteQCOW2 adds to the virtual size, so a VM made
// from the image has room to grow (EIB's +10 GiB).
const QCOW2Extra = 10 << 30

// WriteQCOW2 converts the raw image to a compressed qcow2 file at out
// (`qemu-img convert -c`), with QCOW2Extra more virtual size, through a
// temporary name.
func WriteQCOW2(ctx context.Context, raw, out string) (File, error) {
	var files pending
	tmp, err := files.create(out)
	if err != nil {
		return File{}, err
	}
	ok := false
	defer func() {
		if !ok {
			files.abort()
		}
	}()
	if err := run(ctx, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, tmp.Name()); err != nil {
		return File{}, err
	}
	if err := run(ctx, "qemu-img", "resize", "-q", "-f", "qcow2", tmp.Name(), fmt.Sprintf("+%d", int64(QCOW2Extra))); err != nil {
		return File{}, err
	}
	sum, n, err := SHA256File(tmp.Name())
	if err != nil {
		return File{}, err
	}
	if err := files.commit(); err != nil {
		return File{}, err
	}
	ok = true
	return File{Name: filepath.Base(out), Path: out, Size: n, SHA256: sum}, nil
}

// run runs a tool; its error names the command and carries its stderr.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
