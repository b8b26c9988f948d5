package ostree_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
)

// TestRemoteCollectionIDReadsTheSummary serves two repos, one with a
// collection ID, and reads it back through a remote the way the image
// stage does for [ostree] enable_p2p_updates.
func TestRemoteCollectionIDReadsTheSummary(t *testing.T) {
	ostreetest.Need(t, "ostree")
	ctx := context.Background()
	for _, want := range []string{"org.example.EibTest", ""} {
		src, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "src"), ostree.ModeArchive)
		if err != nil {
			t.Fatal(err)
		}
		if want != "" {
			if err := src.ConfigSet(ctx, "core.collection-id", want); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := src.Commit(ctx, ostree.Commit{Branch: "os/test", Tree: ostreetest.Tree(t), Subject: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := src.UpdateSummary(ctx, nil); err != nil {
			t.Fatal(err)
		}
		dst, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "dst"), ostree.ModeBare)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.AddRemote(ctx, ostree.Remote{Name: "r", URL: ostreetest.Serve(t, src.Path)}); err != nil {
			t.Fatal(err)
		}
		got, err := dst.RemoteCollectionID(ctx, "r")
		if err != nil || got != want {
			t.Errorf("collection ID %q (%v), want %q", got, err, want)
		}
	}
	dst, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "dead"), ostree.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.AddRemote(ctx, ostree.Remote{Name: "r", URL: ostreetest.DeadURL(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.RemoteCollectionID(ctx, "r"); err == nil {
		t.Errorf("an unreachable remote gave no error")
	}
}
