package cli

import (
	"strings"
	"testing"
)

// TestSourceDateEpochSetsTheBuildVersion runs eib --show-config with
// SOURCE_DATE_EPOCH: a valid one is the build_version (and so the
// outversion), an invalid one is a configuration error (exit 1) that names
// the variable, and an empty one is the current time.
func TestSourceDateEpochSetsTheBuildVersion(t *testing.T) {
	for _, tc := range []struct {
		epoch string
		code  int
		want  string // in stdout (exit 0) or stderr
	}{
		{"1700000000", 0, "build_version = 231114-221320\n"},
		{"", 0, "build_version = "},
		{"1700000000.5", 1, `eib: [build] build_version: SOURCE_DATE_EPOCH="1700000000.5": not a number of seconds`},
		{"-5", 1, `SOURCE_DATE_EPOCH="-5": not a number of seconds`},
	} {
		r := eibEnv(t, []string{"EIB_SRCDIR=" + fixture, "SOURCE_DATE_EPOCH=" + tc.epoch}, "--product", "prod", "--show-config")
		out := r.Stdout
		if tc.code != 0 {
			out = r.Stderr
		}
		if r.Code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("SOURCE_DATE_EPOCH=%q: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", tc.epoch, r.Code, tc.code, tc.want, r.Stdout, r.Stderr)
		}
		if tc.epoch == "" && strings.Contains(r.Stdout, "build_version = 231114-221320") {
			t.Errorf("an empty SOURCE_DATE_EPOCH gave the epoch's build version")
		}
	}
}
