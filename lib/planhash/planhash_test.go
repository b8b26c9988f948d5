package planhash

import (
	"slices"
	"strings"
	"testing"
)

func TestNormalizeReplacesTheLongestValueFirst(t *testing.T) {
	ph := []Placeholder{{"SRCDIR", "/src"}, {"LOCALDIR", "/src/local"}, {"BUILD_VERSION", "260101-000000"}, {"EMPTY", ""}, {"ROOT", "/"}}
	got := Normalize("a = /src/local/x\nb = /src/y\nov = demo.260101-000000.base\n", ph)
	want := "a = @LOCALDIR@/x\nb = @SRCDIR@/y\nov = demo.@BUILD_VERSION@.base\n"
	if got != want {
		t.Errorf("Normalize = %q, want %q", got, want)
	}
}

func TestSumAndDiffSeeEveryInput(t *testing.T) {
	base := Inputs{Config: "c", OSTreeCommit: "o", Files: map[string]string{"f": "1"}, EIBVersion: "e"}
	if s := base.Sum(); !strings.HasPrefix(s, "sha256:") || len(s) != len("sha256:")+64 {
		t.Errorf("Sum = %q", s)
	}
	// nil and empty maps are the same input.
	empty := base
	empty.Flatpak = map[string]string{}
	if base.Sum() != empty.Sum() {
		t.Errorf("a nil and an empty Flatpak map hash differently")
	}
	for name, edit := range map[string]func(*Inputs){
		"config":        func(in *Inputs) { in.Config = "c2" },
		"ostree_commit": func(in *Inputs) { in.OSTreeCommit = "o2" },
		"eib_version":   func(in *Inputs) { in.EIBVersion = "e2" },
		"file f":        func(in *Inputs) { in.Files = map[string]string{"f": "2"} },
		"file g":        func(in *Inputs) { in.Files = map[string]string{"f": "1", "g": "1"} },
		"flatpak app":   func(in *Inputs) { in.Flatpak = map[string]string{"app": "x"} },
	} {
		in := base
		edit(&in)
		if in.Sum() == base.Sum() {
			t.Errorf("changing %s does not change the hash", name)
		}
		if d := Diff(base, in); !slices.Equal(d, []string{name}) {
			t.Errorf("Diff after changing %s = %v", name, d)
		}
	}
}
