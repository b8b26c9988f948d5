package publish

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/tests/harness"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// stagingCopies makes, under dest, what two other publishes left: the
// staging copy of a publish killed longer ago than publish.StaleAfter, and
// one of a publish still under way (a file written just now). It returns
// their paths.
func stagingCopies(t *testing.T, dest string) (stale, live string) {
	t.Helper()
	stale = filepath.Join(dest, ".eos-master-amd64-amd64.230101-000000.base.inprogress")
	live = filepath.Join(dest, ".eos-master-amd64-amd64.230102-000000.base.inprogress")
	old := time.Now().Add(-publish.StaleAfter - time.Hour)
	for _, d := range []string{stale, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "part.img.zst")
		if err := os.WriteFile(f, []byte("half an image"), 0o644); err != nil {
			t.Fatal(err)
		}
		if d == stale {
			for _, p := range []string{f, d} {
				if err := os.Chtimes(p, old, old); err != nil {
					t.Fatal(err)
				}
			}
		} else if err := os.Chtimes(d, old, old); err != nil { // an old directory, but a file being written
			t.Fatal(err)
		}
	}
	return stale, live
}

func TestLocalDirRemovesStaleStagingCopiesOfOtherReleases(t *testing.T) {
	harness.Need(t, "sha256sum")
	r := makeRelease(t, 4096)
	dest := filepath.Join(t.TempDir(), "images")
	stale, live := stagingCopies(t, dest)
	out, err := runPublish(t, r.env(t, "EIB_PUBLISH_DIR="+dest))
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, stale)
	if _, err := os.Stat(filepath.Join(live, "part.img.zst")); err != nil {
		t.Errorf("the staging copy of a publish under way was touched: %v", err)
	}
	if !strings.Contains(out, "removed "+stale+": the staging copy of an interrupted publish") {
		t.Errorf("the removal is not logged:\n%s", out)
	}
}

func TestRsyncRemovesStaleStagingCopiesOfOtherReleases(t *testing.T) {
	srv := startSSHD(t)
	r := makeRelease(t, 4096)
	dest := filepath.Join(t.TempDir(), "images")
	stale, live := stagingCopies(t, dest)
	out, err := runPublish(t, r.env(t, srv.env(dest)...))
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, stale)
	if _, err := os.Stat(filepath.Join(live, "part.img.zst")); err != nil {
		t.Errorf("the staging copy of a publish under way was touched: %v", err)
	}
	if !strings.Contains(out, filepath.Base(stale)+": the staging copy of an interrupted publish") {
		t.Errorf("the removal is not logged:\n%s", out)
	}
}

func TestS3RemovesStaleStagingCopiesOfOtherReleases(t *testing.T) {
	clock := gofakes3.FixedTimeSource(time.Now().Add(-publish.StaleAfter - time.Hour))
	srv := startS3With(t, []s3mem.Option{s3mem.WithTimeSource(clock)}, "images")
	put := func(key string) {
		t.Helper()
		if _, err := srv.backend.PutObject("images", key, nil, strings.NewReader("x"), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	stale := "eos/eos-master-amd64-amd64.230101-000000.base.inprogress/"
	live := "eos/eos-master-amd64-amd64.230102-000000.base.inprogress/"
	put(stale + "part.img.zst")
	put(live + "old-part")
	clock.Advance(publish.StaleAfter + time.Hour)
	put(live + "new-part")

	r := makeRelease(t, 4096)
	out, err := runPublish(t, r.env(t, srv.env(t, "images", "/eos/")...))
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	objs := srv.objects(t, "images", "")
	for k := range objs {
		if strings.HasPrefix(k, stale) {
			t.Errorf("%s of a stale staging copy is still there", k)
		}
	}
	for _, k := range []string{live + "old-part", live + "new-part", "eos/" + r.ov + "/SHA256SUMS"} {
		if _, ok := objs[k]; !ok {
			t.Errorf("%s is missing (objects: %v)", k, keys(objs))
		}
	}
	if !strings.Contains(out, "removed s3://images/"+stale+": the staging copy of an interrupted publish") {
		t.Errorf("the removal is not logged:\n%s", out)
	}
}
