package flatpak

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ostreeRun runs ostree and fails the test on error.
func ostreeRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return string(out)
}

// The commits of a summary's refs map, read from what this host's
// `ostree remote summary --raw` really prints: a repo of three refs (one
// with two commits and a static delta between them, whose checksums the
// summary's metadata also lists), each parsed commit the one rev-parse
// gives.
func TestSummaryCommitsFromRealOutput(t *testing.T) {
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Fatal("ostree is not installed: run make deps")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	ostreeRun(t, "init", "--repo="+src, "--mode=archive")
	refs := []string{"app/org.a.App/x86_64/stable", "runtime/org.a.Platform/x86_64/1", "appstream/x86_64"}
	for i, ref := range refs {
		if err := os.WriteFile(filepath.Join(tree, "f"), []byte(ref), 0o644); err != nil {
			t.Fatal(err)
		}
		ostreeRun(t, "commit", "--repo="+src, "--branch="+ref, "--tree=dir="+tree, "--timestamp=2026-01-0"+string(rune('1'+i))+" 00:00:00")
	}
	if err := os.WriteFile(filepath.Join(tree, "f"), []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	ostreeRun(t, "commit", "--repo="+src, "--branch="+refs[0], "--tree=dir="+tree)
	ostreeRun(t, "static-delta", "generate", "--repo="+src, refs[0])
	ostreeRun(t, "summary", "--repo="+src, "-u")

	scratch := filepath.Join(dir, "scratch")
	ostreeRun(t, "init", "--repo="+scratch, "--mode=archive")
	ostreeRun(t, "remote", "add", "--repo="+scratch, "--no-gpg-verify", "r", "file://"+src)
	out := ostreeRun(t, "remote", "summary", "--repo="+scratch, "--raw", "r")
	if !strings.Contains(out, "ostree.static-deltas") {
		t.Fatalf("no static delta in the summary:\n%s", out)
	}
	got := parseSummaryCommits(out)
	if len(got) != len(refs) {
		t.Errorf("parsed %d refs, want %d: %v\n%s", len(got), len(refs), got, out)
	}
	for _, ref := range refs {
		want := strings.TrimSpace(ostreeRun(t, "rev-parse", "--repo="+src, ref))
		if got[ref] != want {
			t.Errorf("%s: parsed commit %q, rev-parse says %s\n%s", ref, got[ref], want, out)
		}
	}
	if c := parseSummaryCommits("(@a(s(taya{sv})) [], {})"); len(c) != 0 {
		t.Errorf("an empty summary gave %v", c)
	}
}
