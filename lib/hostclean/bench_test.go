package hostclean

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkClearImmutable walks a tree of 100 directories of 100 files
// (about the per-file cost on a sysroot of ~50k files).
func BenchmarkClearImmutable(b *testing.B) {
	dir := b.TempDir()
	for d := 0; d < 100; d++ {
		sub := filepath.Join(dir, fmt.Sprint(d))
		os.MkdirAll(sub, 0o755)
		for f := 0; f < 100; f++ {
			os.WriteFile(filepath.Join(sub, fmt.Sprint(f)), nil, 0o644)
		}
	}
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
	dir := b.TempDir()
	for d := 0; d < 100; d++ {
		sub := filepath.Join(dir, fmt.Sprint(d))
		os.MkdirAll(sub, 0o755)
		for f := 0; f < 100; f++ {
			os.WriteFile(filepath.Join(sub, fmt.Sprint(f)), nil, 0o644)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := clearFlags(dir, true, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10100, "ns/entry")
}
