package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bigLocalDir writes a localdir of 100 config files: every file a demo
// amd64 build of branch master with personality base reads (17), and 83
// for other products, branches and personalities, as a localdir shared by
// many builds has. Each file sets about 30 keys, with references and
// merged-list keys.
func bigLocalDir(b testing.TB) string {
	dir := b.TempDir()
	var paths []string
	add := func(p string) { paths = append(paths, filepath.Join(dir, "config", p)) }
	add("defaults.ini")
	for _, p := range []string{"product/demo", "branch/master", "arch/amd64", "platform/amd64", "personality/base",
		"product-branch/demo-master", "product-arch/demo-amd64", "product-platform/demo-amd64",
		"product-personality/demo-base", "branch-arch/master-amd64", "branch-platform/master-amd64",
		"branch-personality/master-base", "arch-platform/amd64-amd64", "arch-personality/amd64-base",
		"platform-personality/amd64-base", "private"} {
		add(p + ".ini")
	}
	for i := 0; len(paths) < 100; i++ {
		add(fmt.Sprintf("product/other%02d.ini", i))
		if len(paths) < 100 {
			add(fmt.Sprintf("personality/lang%02d.ini", i))
		}
		if len(paths) < 100 {
			add(fmt.Sprintf("product-personality/other%02d-base.ini", i))
		}
	}
	for n, p := range paths {
		var s strings.Builder
		fmt.Fprintf(&s, "# generated benchmark file %d\n[build]\nbench_%d = ${product}-${arch}-%d\n", n, n, n)
		fmt.Fprintf(&s, "[image]\nhooks_add = 50-bench-%d\nhooks_del = 50-bench-%d\nsettings_add =\n", n, n-1)
		for k := 0; k < 8; k++ {
			fmt.Fprintf(&s, "  org.example.setting%d.key%d\n", n, k)
		}
		fmt.Fprintf(&s, "[flatpak-remote-bench%d]\nurl = https://example.com/${build:series}/%d\napps_add =\n", n%7, n)
		for k := 0; k < 10; k++ {
			fmt.Fprintf(&s, "  org.example.App%d_%d\n", n, k)
		}
		fmt.Fprintf(&s, "apps_del = org.example.App%d_0\n[bench-%d]\n", n, n)
		for k := 0; k < 10; k++ {
			fmt.Fprintf(&s, "key%d = value %d ${build:product} $$%d\n", k, k, k)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkShowConfig runs `eib -p demo -d LOCALDIR --show-config` on the
// shipped tree with a 100-file localdir: process start, loading every
// file, merging, schema, interpolating every key and writing.
func BenchmarkShowConfig(b *testing.B) {
	local := bigLocalDir(b)
	r := eib(b, srcRoot, "-p", "demo", "-a", "amd64", "-d", local, "--show-config")
	if r.Code != 0 {
		b.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "[bench-16]") {
		b.Fatalf("the localdir was not read:\n%s", r.Stdout)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		eib(b, srcRoot, "-p", "demo", "-a", "amd64", "-d", local, "--show-config")
	}
}
