package stage

import (
	"fmt"
	"strings"

	"github.com/eib-builder/eib/lib/build"
)

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
		r.err = fmt.Errorf("[%s] %s: %w", section, key, err)
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
		r.err = fmt.Errorf("[%s] %s: %w", section, key, err)
	}
	return v
}
