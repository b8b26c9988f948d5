package ostree

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
	"github.com/eib-builder/eib/tests/harness"
)

// BenchmarkDeployCopy measures what checking every object costs when the
// image stage copies the commit from the bare cache repo into the
// sysroot's repo: PullLocal (trusted: hardlinks, no check) against
// PullLocalVerified (pull-local --untrusted: a SHA-256 of every object,
// still hardlinked), on the demo OS and on a synthetic commit of 3000
// files of 1 to 64 KiB. Run:
//
//	go test -run - -bench DeployCopy -benchtime 5x ./tests/ostree/
func BenchmarkDeployCopy(b *testing.B) {
	ostreetest.Need(b, "ostree")
	ctx := context.Background()
	caches := map[string]*ostree.Repo{}

	synth, err := ostree.Init(ctx, filepath.Join(b.TempDir(), "synthetic"), ostree.ModeBare)
	if err != nil {
		b.Fatal(err)
	}
	tree := b.TempDir()
	rnd := rand.New(rand.NewSource(1))
	for i := range 3000 {
		dir := filepath.Join(tree, "usr", "share", fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, 1024+rnd.Intn(63*1024))
		rnd.Read(data)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := synth.Commit(ctx, ostree.Commit{Branch: "bench", Tree: tree, Subject: "bench"}); err != nil {
		b.Fatal(err)
	}
	caches["synthetic-3000-files"] = synth

	if os.Geteuid() == 0 {
		d := harness.DemoRepo(b)
		demo, err := ostree.Init(ctx, filepath.Join(b.TempDir(), "demo"), ostree.ModeBare)
		if err != nil {
			b.Fatal(err)
		}
		if err := demo.PullLocal(ctx, d.Repo, "", ostreetest.DemoRef); err != nil {
			b.Fatal(err)
		}
		if err := demo.CreateRef(ctx, "bench", ostreetest.DemoRef); err != nil {
			b.Fatal(err)
		}
		caches["demo"] = demo
	}

	for name, cache := range caches {
		for _, verified := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/verified=%v", name, verified), func(b *testing.B) {
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					dst, err := ostree.Init(ctx, filepath.Join(b.TempDir(), fmt.Sprint(i)), ostree.ModeBare)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if verified {
						err = dst.PullLocalVerified(ctx, ostree.VerifiedPull{Src: cache, Remote: "eib", Ref: "bench"})
					} else {
						err = dst.PullLocal(ctx, cache.Path, "eib", "bench")
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
