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

// keyReader reads the config keys of a stage's settings and keeps the
// first error (which names the section and key), so that a settings
// function reads as a list of keys with one error check at the end.
type keyReader struct {
	b   *build.Build
	err error
}

// str returns the interpolated, trimmed value of section:key ("" once an
// earlier key failed).
func (r *keyReader) str(section, key string) string {
	if r.err != nil {
		return ""
	}
	v, err := r.b.Get(section, key)
	if err != nil {
		r.err = keyErr(r.b, section, key, err)
	}
	return strings.TrimSpace(v)
}

// boolean returns section:key as configparser's getboolean would.
func (r *keyReader) boolean(section, key string) bool {
	if r.err != nil {
		return false
	}
	v, err := r.b.Config.Bool(section, key)
	if err != nil {
		r.err = keyErr(r.b, section, key, err)
	}
	return v
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
}
