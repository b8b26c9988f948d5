package ostree_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
)

const verifyRef = "eibtest/amd64/master"

// corruptCache serves a signed archive repo, pulls it into a bare cache
// repo as eib's ostree stage does, and flips a byte of the cache's object
// of /usr/lib/os-release. It returns the cache, the server, the archive
// repo, the commit and the object.
func corruptCache(t *testing.T) (cache *ostree.Repo, srv *ostreetest.Server, archive, commit, object string) {
	t.Helper()
	ostreetest.Need(t, "ostree")
	ctx := context.Background()
	signer, pub := ostreetest.Key(t, "good")
	archive, commit = ostreetest.ArchiveRepo(t, verifyRef, signer)
	srv = ostreetest.ServeCounting(t, archive)
	cache, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "cache"), ostree.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.AddRemote(ctx, ostree.Remote{Name: "eib", URL: srv.URL, Branches: []string{verifyRef},
		GPGVerify: true, GPGVerifySummary: true, Keys: []string{pub}}); err != nil {
		t.Fatal(err)
	}
	if err := cache.Pull(ctx, ostree.Pull{Remote: "eib", Refs: []string{verifyRef}}); err != nil {
		t.Fatal(err)
	}
	if err := cache.CreateRef(ctx, verifyRef, commit); err != nil {
		t.Fatal(err)
	}
	object = ostreetest.ObjectOf(t, cache.Path, commit, "/usr/lib/os-release")
	ostreetest.FlipByte(t, cache.Path, object)
	return cache, srv, archive, commit, object
}

// sysrootRepo is a fresh bare repository (as in a sysroot).
func sysrootRepo(t *testing.T) *ostree.Repo {
	t.Helper()
	r, err := ostree.Init(context.Background(), filepath.Join(t.TempDir(), "sysroot-repo"), ostree.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPullLocalVerifiedRepairsACorruptCacheObject: a flipped byte in a
// file object of the cache is found as it is copied, the object is pulled
// again (once) from the remote, and the copy ends with the right bytes.
// The plain PullLocal copies the corrupt object without a word (why the
// image stage uses PullLocalVerified).
func TestPullLocalVerifiedRepairsACorruptCacheObject(t *testing.T) {
	cache, srv, _, commit, object := corruptCache(t)
	ctx := context.Background()
	before := srv.Requests(objectURL(object, ".filez"))

	if err := sysrootRepo(t).PullLocal(ctx, cache.Path, "eib", verifyRef); err != nil {
		t.Fatalf("plain PullLocal: %v", err)
	}

	dst := sysrootRepo(t)
	var log strings.Builder
	err := dst.PullLocalVerified(ctx, ostree.VerifiedPull{Src: cache, SrcName: "[ostree] repodir", Remote: "eib", Ref: verifyRef,
		Logf: func(f string, a ...any) { log.WriteString(strings.TrimSpace(fmt.Sprintf(f, a...)) + "\n") }})
	if err != nil {
		t.Fatalf("PullLocalVerified: %v", err)
	}
	t.Logf("log:\n%s", log.String())
	for _, want := range []string{"corrupt file object " + object, "/usr/lib/os-release", commit, "pulling the commit again from remote eib", "repaired"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := srv.Requests(objectURL(object, ".filez")) - before; n != 1 {
		t.Errorf("the object was fetched %d times in the repair, want 1", n)
	}
	if got, err := dst.RevParse(ctx, "eib:"+verifyRef); err != nil || got != commit {
		t.Errorf("eib:%s = %q, %v; want %s", verifyRef, got, err, commit)
	}
	for _, r := range []*ostree.Repo{cache, dst} {
		b, err := os.ReadFile(filepath.Join(r.Path, "objects", object[:2], object[2:]+".file"))
		if err != nil || string(b) != "ID=eibtest\nNAME=\"eib test\"\n" {
			t.Errorf("%s holds %q (%v) as os-release", r.Path, b, err)
		}
	}
}

// TestPullLocalVerifiedFailsNamingObjectAndPath: when the remote serves the
// object corrupt too (or cannot be reached), the copy fails with an error
// naming the object, its path in the commit, the repo and what to do.
func TestPullLocalVerifiedFailsNamingObjectAndPath(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"remote serves it corrupt too", "the remote serves file object "},
		{"remote cannot serve it", "pulling it again from remote eib failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, srv, archive, commit, object := corruptCache(t)
			ctx := context.Background()
			if tc.name == "remote cannot serve it" {
				srv.Fault(func(string, int) int { return http.StatusNotFound })
			} else {
				ostreetest.FlipByte(t, archive, object)
			}
			err := sysrootRepo(t).PullLocalVerified(ctx, ostree.VerifiedPull{Src: cache, SrcName: "[ostree] repodir", Remote: "eib", Ref: verifyRef})
			t.Logf("error: %v", err)
			var ce *ostree.CorruptObjectError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *CorruptObjectError", err, err)
			}
			if ce.Object != object || ce.Path != "/usr/lib/os-release" || ce.Commit != commit || ce.Kind != "file" || ce.Repo != cache.Path {
				t.Errorf("error fields %+v", *ce)
			}
			hint := "delete [ostree] repodir " + cache.Path
			if tc.name == "remote serves it corrupt too" {
				hint = "the repository remote eib pulls from must be repaired"
			}
			for _, want := range []string{object, "/usr/lib/os-release", "in [ostree] repodir " + cache.Path, hint, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q", want)
				}
			}
			if tc.name != "remote cannot serve it" {
				if n := srv.Requests(objectURL(object, ".filez")); n != 2 {
					t.Errorf("object fetched %d times, want 2 (the first pull and one repair)", n)
				}
			}
		})
	}
}

func objectURL(object, ext string) string {
	return "/objects/" + object[:2] + "/" + object[2:] + ext
}
