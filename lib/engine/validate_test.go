package engine

import (
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/stage"
)

// The plan checks what the stages that will run read, no more: a stage
// left out of the buildscript, or skipped by --dry-run, keeps its settings
// unchecked (as before the plan checked anything); the error stage's
// hooks are always checked, since it runs whenever a stage fails.
func TestPlanValidatesTheStagesThatRun(t *testing.T) {
	for _, tc := range []struct {
		name, buildscript string
		dryRun            bool
		set               [][3]string
		want              string // "" = no error
	}{
		{"a missing publish hook", "t-one\npublish\n", false,
			[][3]string{{"publish", "hooks", "10-missing"}}, "hook publish/10-missing: missing hook"},
		{"a missing publish hook in a dry run", "t-one\npublish\n", true,
			[][3]string{{"publish", "hooks", "10-missing"}}, ""},
		{"a missing error hook", "t-one\n", false,
			[][3]string{{"error", "hooks", "10-missing"}}, "hook error/10-missing: missing hook"},
		{"a bad marker without the check stage", "t-one\n", false,
			[][3]string{{"check", "boot_marker", "("}}, ""},
		{"a bad marker with the check stage", "t-one\ncheck\n", false,
			[][3]string{{"check", "boot", "true"}, {"check", "firmware", "both"}, {"check", "boot_timeout", "10"},
				{"check", "boot_marker", "("}, {"check", "qemu_memory", "256"}, {"check", "accel", "tcg"}, {"check", "kvm_stall_timeout", "5"}},
			`[check] boot_marker: "(" is not a regular expression`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EIB_CHECK_ACCEL", "")
			e := newEnv(t, tc.buildscript)
			for _, kv := range tc.set {
				e.loaded.Full.Set(kv[0], kv[1], kv[2])
				e.loaded.Public.Set(kv[0], kv[1], kv[2])
			}
			o := e.opts(t)
			o.DryRun = tc.dryRun
			_, err := stage.NewPlan(o)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("NewPlan: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("NewPlan: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
