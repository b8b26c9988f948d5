package main

import (
	"errors"
	"strings"
	"testing"
)

func TestHostArch(t *testing.T) {
	for machine, want := range map[string]string{
		"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386",
	} {
		if got, err := hostArch(machine); err != nil || got != want {
			t.Errorf("hostArch(%q) = %q, %v; want %q", machine, got, err, want)
		}
	}
	for _, machine := range []string{"armv7l", "riscv64", "ppc64le", ""} {
		if _, err := hostArch(machine); err == nil || !strings.Contains(err.Error(), "give --arch") {
			t.Errorf("hostArch(%q) err = %v", machine, err)
		}
	}
}

func TestExitCode(t *testing.T) {
	if c := exitCode(nil); c != 0 {
		t.Errorf("nil -> %d", c)
	}
	if c := exitCode(usageError{"bad"}); c != 1 {
		t.Errorf("usage -> %d", c)
	}
	if c := exitCode(errors.New("flag provided but not defined")); c != 1 {
		t.Errorf("cli error -> %d", c)
	}
	if c := exitCode(buildError{errors.New("stage failed")}); c != 2 {
		t.Errorf("build -> %d", c)
	}
}
