package ostree_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
)

// TestPullRetriesOnlyWhatCanChange serves a repo over HTTP on 127.0.0.1
// and counts requests: a corrupt object (a flipped byte) and a missing
// commit (HTTP 404) fail after one attempt, not Attempts; an object that
// fails with HTTP 503 through a whole pull is pulled again and the pull
// succeeds.
func TestPullRetriesOnlyWhatCanChange(t *testing.T) {
	ostreetest.Need(t, "ostree")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		retried bool
		want    string // in the error; "" = the pull succeeds
	}{
		{name: "corrupt object", want: "Corrupted file object"},
		{name: "commit 404", want: "HTTP 404"},
		{name: "503 through the first pull", retried: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive, commit := ostreetest.ArchiveRepo(t, verifyRef, nil)
			srv := ostreetest.ServeCounting(t, archive)
			object := ostreetest.ObjectOf(t, archive, commit, "/usr/lib/os-release")
			watch := objectURL(object, ".filez")
			switch tc.name {
			case "corrupt object":
				ostreetest.FlipByte(t, archive, object)
			case "commit 404":
				if err := os.Remove(filepath.Join(archive, "objects", commit[:2], commit[2:]+".commit")); err != nil {
					t.Fatal(err)
				}
				watch = objectURL(commit, ".commit")
			default:
				// Every request of the object fails while the first pull
				// runs (ostree's own per-object retries included); a pull
				// starts with the repo's config.
				var pulls atomic.Int32
				srv.Fault(func(path string, _ int) int {
					if path == "/config" {
						pulls.Add(1)
					}
					if path == watch && pulls.Load() == 1 {
						return http.StatusServiceUnavailable
					}
					return 0
				})
			}
			cache, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "cache"), ostree.ModeBare)
			if err != nil {
				t.Fatal(err)
			}
			if err := cache.AddRemote(ctx, ostree.Remote{Name: "eib", URL: srv.URL, Branches: []string{verifyRef}}); err != nil {
				t.Fatal(err)
			}
			var progress strings.Builder
			err = cache.Pull(ctx, ostree.Pull{Remote: "eib", Refs: []string{verifyRef}, Attempts: 3, RetryDelay: 1, Progress: &progress})
			t.Logf("error: %v\nprogress:\n%s", err, progress.String())
			t.Logf("%s requested %d times, /config %d times", watch, srv.Requests(watch), srv.Requests("/config"))
			if tc.want == "" && err != nil {
				t.Fatalf("pull failed: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if n := strings.Count(progress.String(), "retrying"); tc.retried != (n > 0) || n > 1 {
				t.Errorf("%d retries, want %v (one at most)", n, tc.retried)
			}
			if pulls := srv.Requests("/config"); pulls != 1+btoi(tc.retried) {
				t.Errorf("%d pulls (requests of /config), want %d", pulls, 1+btoi(tc.retried))
			}
			if !tc.retried && srv.Requests(watch) != 1 {
				t.Errorf("%s requested %d times, want once", watch, srv.Requests(watch))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
