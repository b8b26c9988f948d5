package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkLoadAndWrite loads the shipped tree (product demo) with a
// localdir whose 17 files are all read, each with ~40 keys, merged lists
// and references, then writes it as --show-config does (in process: the
// engine's share of `eib --show-config`; tests/cli has the whole command).
func BenchmarkLoadAndWrite(b *testing.B) {
	src, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	local := b.TempDir()
	o := Options{SrcDir: src, LocalDir: local, SysConfDir: "/nonexistent", Product: "demo", Branch: "master",
		Arch: "amd64", Platform: "amd64", Personality: "base", BuildVersion: "200101-000000"}
	for n, ref := range Candidates(o) {
		if !strings.HasPrefix(ref.Path, local) {
			continue
		}
		var s strings.Builder
		fmt.Fprintf(&s, "[build]\nbench_%d = ${product}-${arch}\n[image]\nhooks_add = 50-b%d\nhooks_del = 50-b%d\n", n, n, n-1)
		fmt.Fprintf(&s, "[flatpak-remote-b%d]\nurl = https://example.com/${build:series}\napps_add =\n", n%5)
		for k := 0; k < 10; k++ {
			fmt.Fprintf(&s, "  org.example.App%d_%d\n", n, k)
		}
		fmt.Fprintf(&s, "[bench-%d]\n", n)
		for k := 0; k < 30; k++ {
			fmt.Fprintf(&s, "key%d = value %d ${build:product} $$%d\n", k, k, k)
		}
		os.MkdirAll(filepath.Dir(ref.Path), 0o755)
		if err := os.WriteFile(ref.Path, []byte(s.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := Load(o)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Full.Write(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
