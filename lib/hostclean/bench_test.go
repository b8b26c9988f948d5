package hostclean

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchTree makes 100 directories of 100 empty files (10,100 entries).
func benchTree(b *testing.B) string {
	dir := b.TempDir()
	for d := 0; d < 100; d++ {
		sub := filepath.Join(dir, fmt.Sprint(d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprint(f)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return dir
}

// BenchmarkClearImmutable walks a tree of 100 directories of 100 files
// (about the per-file cost on a sysroot of ~50k files).
func BenchmarkClearImmutable(b *testing.B) {
	dir := benchTree(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ClearImmutable(dir, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10100, "ns/entry")
}

// BenchmarkClearImmutableDirsOnly is the first pass of RemoveAll.
func BenchmarkClearImmutableDirsOnly(b *testing.B) {
	dir := benchTree(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := clearFlags(dir, true, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10100, "ns/entry")
}
