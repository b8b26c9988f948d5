package e2e

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// reproBuild is one demo build of TestDemoImageIsReproducible: its
// project and the files of its outdir (base name -> bytes).
type reproBuild struct {
	p   *project
	out map[string][]byte
	raw string // the raw image in the tmpdir
}

// buildReproducible builds the demo image without the boot check, with
// SOURCE_DATE_EPOCH=epoch, pulling from url, in a project of its own.
func buildReproducible(t *testing.T, epoch, url string) reproBuild {
	t.Helper()
	p := newDemoProject(t, "[check]\nboot = false\n")
	p.Write("config/product/demo.ini", "[ostree]\npull_url = "+url+"\n", 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := p.buildCommand(ctx)
	cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH="+epoch)
	out, code := p.combined(cmd)
	if code != 0 {
		t.Fatalf("demo build with SOURCE_DATE_EPOCH=%s exited %d:\n%s", epoch, code, tail(out, 40))
	}
	b := reproBuild{p: p, out: map[string][]byte{}}
	ents, err := os.ReadDir(p.Outdir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(p.Outdir(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		b.out[e.Name()] = data
		if strings.HasSuffix(e.Name(), ".img.sha256") {
			b.raw = filepath.Join(p.Tmpdir(), strings.TrimSuffix(e.Name(), ".sha256"))
		}
	}
	if _, err := os.Stat(b.raw); err != nil {
		t.Fatalf("the raw image of the build is not in its tmpdir: %v (outdir: %v)", err, slices.Sorted(maps.Keys(b.out)))
	}
	return b
}

// TestDemoImageIsReproducible builds the demo image twice with the same
// SOURCE_DATE_EPOCH (boot check off): in two projects (other cachedirs,
// localdirs and publish directories), pulling from two servers on other
// ports, seconds apart. The raw images must be the same bytes, and so
// must every output but the signatures (they carry their time), the
// manifest (build times) and the public config, which may differ only in
// the keys naming those directories and servers. A third build with
// another SOURCE_DATE_EPOCH must differ, or the comparison proves nothing.
func TestDemoImageIsReproducible(t *testing.T) {
	demo := harness.NeedDemo(t, "ostree", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage", "cmp")
	const epoch = "1700000000"
	first := buildReproducible(t, epoch, demo.URL)
	time.Sleep(1100 * time.Millisecond) // another second of the clock
	// The demo repo again, from a server on another free port of
	// 127.0.0.1, for the rest of the test.
	second := buildReproducible(t, epoch, harness.Serve(t, demo.Repo))

	if out, err := exec.Command("cmp", first.raw, second.raw).CombinedOutput(); err != nil {
		t.Errorf("two builds of the demo with SOURCE_DATE_EPOCH=%s made different raw images: %s", epoch, strings.TrimSpace(string(out)))
	}
	// What may differ: signatures (their time), the manifest (build
	// times), the build log (times), the public config (checked below)
	// and the checksums of those in SHA256SUMS (checked below).
	mayDiffer := func(name string) bool {
		for _, suffix := range []string{".asc", ".manifest.json", ".build.txt", ".config.ini", "SHA256SUMS"} {
			if strings.HasSuffix(name, suffix) {
				return true
			}
		}
		return false
	}
	names := slices.Sorted(maps.Keys(first.out))
	for n := range second.out {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, n := range names {
		a, inA := first.out[n]
		b, inB := second.out[n]
		switch {
		case !inA || !inB:
			t.Errorf("%s is in the outdir of one build only", n)
		case strings.HasSuffix(n, ".config.ini"):
			configDiffersInPathsOnly(t, n, string(a), string(b))
		case n == "SHA256SUMS":
			for _, line := range strings.Split(strings.TrimSpace(string(a)), "\n") {
				_, file, _ := strings.Cut(line, "  ")
				if !mayDiffer(file) && !slices.Contains(strings.Split(string(b), "\n"), line) {
					t.Errorf("SHA256SUMS: the second build has another checksum of %s than %q", file, line)
				}
			}
		case !mayDiffer(n) && !bytes.Equal(a, b):
			t.Errorf("%s differs between the two builds", n)
		}
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".img.zst") }) {
		t.Errorf("no compressed image among the outputs %v", names)
	}

	other := buildReproducible(t, "1700000001", demo.URL)
	if exec.Command("cmp", "-s", first.raw, other.raw).Run() == nil {
		t.Error("a build with another SOURCE_DATE_EPOCH made the same raw image: the comparison proves nothing")
	}
}

// configDiffersInPathsOnly fails t for a line of two public configs that
// differs in another key than those naming a build's own directories and
// its server.
func configDiffersInPathsOnly(t *testing.T, name, a, b string) {
	t.Helper()
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(al) != len(bl) {
		t.Errorf("%s: %d lines, then %d", name, len(al), len(bl))
		return
	}
	own := []string{"cachedir", "localdir", "sysconfdir", "pull_url", "dir"}
	for i := range al {
		if al[i] == bl[i] {
			continue
		}
		key, _, _ := strings.Cut(al[i], " = ")
		if !slices.Contains(own, key) {
			t.Errorf("%s line %d differs in more than a build's own directories or server:\n  %s\n  %s", name, i+1, al[i], bl[i])
		}
	}
}
