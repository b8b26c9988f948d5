package flatpak

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// triggerRoot makes a tiny OS tree (busybox-static as /bin/sh, /proc,
// /dev, /tmp, an empty /var) with a stateroot var beside it holding the
// installation lib/flatpak, and returns root, var and the installation.
func triggerRoot(t *testing.T, triggers map[string]string) (root, varDir string, in Installation, logs *strings.Builder) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bwrap binds the OS tree as root")
	}
	if _, err := exec.LookPath(Bwrap); err != nil {
		t.Fatalf("%s is not installed (make deps)", Bwrap)
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox (busybox-static) is not installed (make deps)")
	}
	dir := t.TempDir()
	root, varDir = filepath.Join(dir, "deploy"), filepath.Join(dir, "var")
	for _, d := range []string{"proc", "dev", "tmp", "var", "usr/bin", "usr/share/flatpak/triggers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, bb, filepath.Join(root, "usr/bin/busybox"), 0o755)
	for _, applet := range []string{"sh", "ls", "cat", "touch", "echo", "mkdir", "id"} {
		if err := os.Symlink("busybox", filepath.Join(root, "usr/bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	for name, script := range triggers {
		mode := os.FileMode(0o755)
		if strings.HasPrefix(name, "-") {
			name, mode = name[1:], 0o644
		}
		if err := os.WriteFile(filepath.Join(root, TriggersDir, name), []byte(script), mode); err != nil {
			t.Fatal(err)
		}
	}
	inst := filepath.Join(varDir, "lib", "flatpak")
	if err := os.MkdirAll(filepath.Join(inst, "exports", "share"), 0o755); err != nil {
		t.Fatal(err)
	}
	logs = &strings.Builder{}
	in = Installation{Dir: inst, Logf: func(f string, a ...any) { fmt.Fprintf(logs, f+"\n", a...) }}
	return root, varDir, in, logs
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	r, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRunTriggersRunsTheOSsTriggersOnTheInstallation: each executable
// trigger runs inside the tree, in order, with /var/lib/flatpak as its
// argument and the installation there, writable; the tree itself is
// read-only; a non-executable one is logged and not run.
func TestRunTriggersRunsTheOSsTriggersOnTheInstallation(t *testing.T) {
	root, varDir, in, logs := triggerRoot(t, map[string]string{
		"a.trigger": "#!/bin/sh\nset -e\nls \"$1/exports\" > \"$1/exports/share/a-saw\"\necho \"$1\" >> \"$1/exports/share/a-saw\"\n" +
			"if touch /usr/written 2>/dev/null; then echo tree-writable; fi >> \"$1/exports/share/a-saw\"\necho hello from a\n",
		"b.trigger":  "#!/bin/sh\nset -e\ncat \"$1/exports/share/a-saw\" > \"$1/exports/share/b-saw\"\n",
		"-c.trigger": "#!/bin/sh\ntouch \"$1/exports/share/c-ran\"\n",
		"README":     "#!/bin/sh\ntouch \"$1/exports/share/readme-ran\"\n",
	})
	if err := in.RunTriggers(t.Context(), root, varDir); err != nil {
		t.Fatal(err)
	}
	share := filepath.Join(in.Dir, "exports", "share")
	a, err := os.ReadFile(filepath.Join(share, "a-saw"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != "share\n/var/lib/flatpak\n" {
		t.Errorf("a.trigger saw %q, want the installation's exports at its argument /var/lib/flatpak, and a read-only tree", a)
	}
	if b, err := os.ReadFile(filepath.Join(share, "b-saw")); err != nil || string(b) != string(a) {
		t.Errorf("b.trigger did not run after a.trigger: %q, %v", b, err)
	}
	for _, f := range []string{"c-ran", "readme-ran"} {
		if _, err := os.Stat(filepath.Join(share, f)); err == nil {
			t.Errorf("%s: a non-executable trigger or a file not *.trigger ran", f)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr", "written")); err == nil {
		t.Error("a trigger wrote into the OS tree")
	}
	for _, want := range []string{
		"flatpak: /usr/share/flatpak/triggers/c.trigger is not an executable file: not run",
		"flatpak: ran the OS's trigger /usr/share/flatpak/triggers/a.trigger on /var/lib/flatpak: hello from a",
		"flatpak: ran the OS's trigger /usr/share/flatpak/triggers/b.trigger on /var/lib/flatpak\n",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	// bwrap made no mount point in the tree or the stateroot var.
	if ents, _ := os.ReadDir(filepath.Join(root, "var")); len(ents) != 0 {
		t.Errorf("the tree's /var is not empty after the triggers: %v", ents)
	}
}

// TestRunTriggersFailingTriggerIsNamed: a trigger that fails is an error
// naming it, its exit status and output; the triggers after it do not
// run.
func TestRunTriggersFailingTriggerIsNamed(t *testing.T) {
	root, varDir, in, _ := triggerRoot(t, map[string]string{
		"a-broken.trigger": "#!/bin/sh\necho cannot update the cache >&2\nexit 3\n",
		"b.trigger":        "#!/bin/sh\ntouch \"$1/exports/share/b-ran\"\n",
	})
	err := in.RunTriggers(t.Context(), root, varDir)
	if err == nil {
		t.Fatal("a failing trigger: no error")
	}
	for _, want := range []string{"flatpak trigger /usr/share/flatpak/triggers/a-broken.trigger of the OS", "exit status 3", "cannot update the cache"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(in.Dir, "exports", "share", "b-ran")); err == nil {
		t.Error("the trigger after the failing one ran")
	}
}

// TestRunTriggersWithoutTriggersLogs: an OS without the triggers
// directory (the busybox demo) is a log line, no error, no bwrap.
func TestRunTriggersWithoutTriggersLogs(t *testing.T) {
	dir := t.TempDir()
	var logs strings.Builder
	in := Installation{Dir: filepath.Join(dir, "var", "lib", "flatpak"), Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }}
	old := Bwrap
	Bwrap = "/nonexistent/bwrap"
	defer func() { Bwrap = old }()
	if err := in.RunTriggers(t.Context(), filepath.Join(dir, "deploy"), filepath.Join(dir, "var")); err != nil {
		t.Fatal(err)
	}
	if want := "flatpak: the OS has no executable /usr/share/flatpak/triggers/*.trigger: no triggers run on /var/lib/flatpak\n"; logs.String() != want {
		t.Errorf("log %q, want %q", logs.String(), want)
	}
}
