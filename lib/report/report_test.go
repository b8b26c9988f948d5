package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/farm"
)

func TestReportListsEveryVariantAndTheFailures(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []farm.Result{
		{Variant: "a", Result: farm.ResultOK, Worker: "w1", Seconds: 12.34, ImageSize: 3 << 20},
		{Variant: "b", Result: farm.ResultFailed, Worker: "w2", Seconds: 2, Reason: "the build failed"},
		{Variant: "c", Result: farm.ResultSkipped, Published: "c.1"},
	} {
		d := filepath.Join(dir, r.Variant)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := farm.WriteResult(d, r); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, farm.LogFile), []byte("log\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A variant whose build left no result counts as failed.
	if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Failed(), " "); got != "b d" {
		t.Errorf("Failed() = %q, want \"b d\"", got)
	}
	var text, page bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a  ", "ok", "w1", "12.3s", "3.0 MiB", "a/build.log", "failed", "skipped", "2 of 4 variants failed: b, d"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, text.String())
		}
	}
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), `<a href="b/build.log">`) || !strings.Contains(page.String(), `class="failed"`) {
		t.Errorf("page lacks the log link or the failed class:\n%s", page.String())
	}
	if _, err := Read(t.TempDir()); err == nil {
		t.Errorf("Read of an empty run: no error")
	}
}
