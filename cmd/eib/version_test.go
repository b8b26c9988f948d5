package main

import (
	"bytes"
	"context"
	"os/exec"
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
}
