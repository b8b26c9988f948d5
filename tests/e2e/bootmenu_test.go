package e2e

import (
	"strings"
	"testing"
)

// The busybox demo ships no ostree: its image keeps eib's static menu, and
// the build log says that updates will not reach it.
func TestAnOSWithoutOSTreeGetsTheStaticMenuAndAWarning(t *testing.T) {
	needDemo(t)
	p := newDemoProject(t, "[check]\nboot = false\n")
	out, code := p.build()
	if code != 0 {
		t.Fatalf("demo build exited %d:\n%s", code, tail(out, 40))
	}
	want := "warning: the OS ships no boot loader integration (the deployment has no /usr/bin/ostree): updates will not reach the boot menu"
	if !strings.Contains(out, want) {
		t.Errorf("the build log lacks %q:\n%s", want, tail(out, 40))
	}
	if strings.Contains(out, "GRUB reads ostree's menu") {
		t.Errorf("the busybox demo got the menu that follows the deployments:\n%s", tail(out, 40))
	}
}
