package ostreetest

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ObjectOf returns the checksum of the file object at path ("/usr/lib/os-release")
// in commit of repo dir, as `ostree ls -C` lists it.
func ObjectOf(t testing.TB, dir, commit, path string) string {
	t.Helper()
	out, err := exec.CommandContext(context.Background(), "ostree", "ls", "-C", "--repo="+dir, commit, path).Output()
	if err != nil {
		t.Fatalf("ostree ls -C %s %s: %v", commit, path, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 6 || len(f[4]) != 64 {
		t.Fatalf("ostree ls -C %s %s printed %q", commit, path, out)
	}
	return f[4]
}

// ObjectFile returns the file of object checksum in repo dir (whichever of
// .file, .filez, .dirtree, .dirmeta, .commit it is) and its URL path.
func ObjectFile(t testing.TB, dir, checksum string) (file, urlPath string) {
	t.Helper()
	for _, ext := range []string{".file", ".filez", ".dirtree", ".dirmeta", ".commit"} {
		rel := "objects/" + checksum[:2] + "/" + checksum[2:] + ext
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			return filepath.Join(dir, rel), "/" + rel
		}
	}
	t.Fatalf("repo %s has no object %s", dir, checksum)
	return "", ""
}

// FlipByte corrupts object checksum of repo dir in place: it flips the low
// bit of the last byte of its content. A bare repo's .file is its content
// as is; an archive repo's .filez is a header and the raw-deflate content,
// so the content is inflated, flipped and deflated again (a .filez that
// still inflates, with a wrong checksum). The object keeps its inode, so
// a hardlink to it changes too.
func FlipByte(t testing.TB, dir, checksum string) {
	t.Helper()
	path, _ := ObjectFile(t, dir, checksum)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(path) == ".filez" {
		b = flipFilez(t, b)
	} else if len(b) == 0 {
		t.Fatalf("%s is empty: no byte to flip", path)
	} else {
		b[len(b)-1] ^= 1
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// flipFilez: a .filez is a big-endian uint32 header size, 4 bytes of
// padding, the header, then the content deflated (raw, no zlib framing).
func flipFilez(t testing.TB, b []byte) []byte {
	t.Helper()
	if len(b) < 8 {
		t.Fatal("short .filez object")
	}
	start := 8 + int(binary.BigEndian.Uint32(b))
	if start > len(b) {
		t.Fatal("bad .filez header size")
	}
	content, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[start:])))
	if err != nil {
		t.Fatalf("inflating .filez content: %v", err)
	}
	if len(content) == 0 {
		t.Fatal(".filez object with empty content: no byte to flip")
	}
	content[len(content)-1] ^= 1
	var out bytes.Buffer
	out.Write(b[:start])
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
