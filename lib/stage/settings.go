package stage

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// The settings readers of the stages (readOSTreeSettings,
// readDiskSettings, readOutputSettings, readCheckSettings) only read the
// configuration and the files it names: the plan runs them before the
// build takes the lock (validate.go) and hands what they read to the
// stages it constructs (Plan.StageRunners); a stage never reads its
// settings itself.

// The readers read through config.Reader (b.Config.Read()): typed by
// config.KeysRead, first error kept, located at the file and line of the
// key; Reject is for their own checks beyond the kind.

// optional reads section:key with read only when the configuration sets
// it (a configuration made without config/defaults.ini may lack a key the
// defaults set, which read would refuse as "not set"); unset: the zero
// value.
func optional[T any](r *config.Reader, section, key string, read func(section, key string) T) T {
	var zero T
	if !r.Has(section, key) {
		return zero
	}
	return read(section, key)
}

// keyErr is err, an error about section:key, as the user should see it:
// naming the section and key (a *config.Error, as Get, Bool and Int return,
// names them already; any other error is prefixed with them unless its
// message starts with them) and located at the file and line that set the
// key (config.Config.At), "config/local.ini:3: [check] boot_marker = (:
// ...".
func keyErr(b *build.Build, section, key string, err error) error {
	if err == nil {
		return nil
	}
	var ce *config.Error
	if !errors.As(err, &ce) && !strings.HasPrefix(err.Error(), "["+section+"] "+key) {
		err = fmt.Errorf("[%s] %s: %w", section, key, err)
	}
	if b.Config == nil {
		return err
	}
	return b.Config.At(section, key, err)
}

// keyErrorf is keyErr of a new error; format starts with "[section] key".
func keyErrorf(b *build.Build, section, key, format string, args ...any) error {
	return keyErr(b, section, key, fmt.Errorf(format, args...))
}

// resolvedSettings are the settings the plan read and validated before
// the build (nil: the stage does not run, or they were wrong).
type resolvedSettings struct {
	ostree *ostreeSettings
	disk   *diskSettings
	output *outputSettings
	check  *checkSettings
	// flatpak is nil also when nothing is preinstalled ([flatpak]
	// enable false, or no remote enabled).
	flatpak *flatpakSettings
}

// outVersion reads [build] outversion, the base name of every output file.
func outVersion(b *build.Build) (string, error) {
	r := b.Config.Read()
	ov := r.String("build", "outversion")
	return ov, r.Err()
}
