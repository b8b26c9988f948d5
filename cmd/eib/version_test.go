package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// eib --version names the commit of the eib tree it runs from, as the
// manifest's builder does, and builds nothing.
func TestVersionNamesTheCommitOfTheTree(t *testing.T) {
	src := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", src}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command("git", "-C", src, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("EIB_SRCDIR", src)
	for _, flag := range []string{"--version", "-v"} {
		var buf bytes.Buffer
		if err := newCommand(&buf).Run(context.Background(), []string{"eib", flag}); err != nil {
			t.Fatalf("eib %s: %v", flag, err)
		}
		want := "eib (devel), commit " + strings.TrimSpace(string(head)) + " (srcdir " + src + ", go"
		if !strings.HasPrefix(buf.String(), want) || strings.Count(buf.String(), "\n") != 1 {
			t.Fatalf("eib %s printed %q, want one line starting %q", flag, buf.String(), want)
		}
	}
	// A tracked file changed since the commit is said.
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "f"}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "f"}} {
		if out, err := exec.Command("git", append([]string{"-C", src}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.WriteFile(filepath.Join(src, "f"), []byte("2"), 0o644)
	var buf bytes.Buffer
	if err := newCommand(&buf).Run(context.Background(), []string{"eib", "--version"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), " with local changes (srcdir ") {
		t.Fatalf("eib --version on a changed tree printed %q, want it to say so", buf.String())
	}
}
