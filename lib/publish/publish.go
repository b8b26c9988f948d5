// Package publish puts a finished build's release (the files of outdir
// that SHA256SUMS lists, plus SHA256SUMS and its signature) at its
// destinations: a local directory, a host reached by rsync over ssh, and
// an S3 bucket. Every destination follows one protocol:
//
//   - the release is staged under a temporary name (.<outversion>.inprogress),
//     and a stale staging copy of the same outversion is cleaned or
//     overwritten (those of other outversions after StaleAfter);
//   - every staged file's sha256 is checked at the destination against
//     SHA256SUMS;
//   - only then is it made visible under <outversion> (a rename, or for S3
//     server-side copies with SHA256SUMS last);
//   - a published <outversion> whose files differ is never replaced (an
//     identical one is "already published").
//
// Put copies one file (the log of a failed build) next to the releases,
// visible only when complete.
package publish

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
)

// SumsFile lists the sha256 of every file of a release; SigFile is its
// detached signature.
const (
	SumsFile = "SHA256SUMS"
	SigFile  = "SHA256SUMS.asc"
)

// Destination is one place releases are published to.
type Destination interface {
	// String names the destination for the log ("s3://bucket/prefix").
	String() string
	// Publish makes the release of dir (which holds SHA256SUMS) visible
	// as <outversion>.
	Publish(ctx context.Context, dir, outversion string) error
	// Put copies the file at path as name next to the releases.
	Put(ctx context.Context, path, name string) error
}

// Settings are the [publish] keys: an empty Dir, RsyncDest or S3Bucket
// leaves that destination out.
type Settings struct {
	Dir string

	RsyncDest     string // [user@]host:/path
	RsyncOptions  []string
	SSHKey        string
	SSHKnownHosts string
	SSHPort       string

	S3Bucket, S3Endpoint, S3Prefix, S3Region string
	AWSCredentials                           string // read when the file exists

	// Logf receives one line per step worth logging.
	Logf func(format string, args ...any)
}

// Destinations returns the configured destinations, or the first
// configuration error (naming the [publish] key); an unconfigured one is
// left out without looking at its tools.
func Destinations(s Settings) ([]Destination, []error) {
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	var ds []Destination
	var errs []error
	if s.Dir != "" {
		ds = append(ds, &Local{Dir: s.Dir, Logf: s.Logf})
	}
	if s.RsyncDest != "" {
		r, err := newRsync(s)
		if err != nil {
			errs = append(errs, err)
		} else {
			ds = append(ds, r)
		}
	}
	if s.S3Bucket != "" {
		ds = append(ds, newS3(s))
	}
	return ds, errs
}

// PutAll copies the file at path as name to every destination of s (the
// log of a failed build), each copy visible only when complete. A broken
// destination does not keep the others from being served: every failure
// is returned.
func PutAll(ctx context.Context, s Settings, path, name string) error {
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	ds, errs := Destinations(s)
	for _, d := range ds {
		if err := d.Put(ctx, path, name); err != nil {
			errs = append(errs, fmt.Errorf("copying %s to %s: %w", name, d, err))
			continue
		}
		s.Logf("copied %s to %s", name, d)
	}
	return errors.Join(errs...)
}

// File is one file of a release.
type File struct {
	Name   string // base name
	SHA256 string // hex
}

var sumLine = regexp.MustCompile(`^([0-9a-f]{64})  \*?([^/]+)$`)

// ReadSums reads dir/SHA256SUMS: the files of the release, in its order.
func ReadSums(dir string) ([]File, error) {
	f, err := os.Open(filepath.Join(dir, SumsFile))
	if err != nil {
		return nil, fmt.Errorf("%w (the publish stage writes it)", err)
	}
	defer f.Close()
	var files []File
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := sumLine.FindStringSubmatch(sc.Text())
		if m == nil {
			return nil, fmt.Errorf("%s/%s: not a sha256sum line: %q", dir, SumsFile, sc.Text())
		}
		files = append(files, File{Name: m[2], SHA256: m[1]})
	}
	return files, sc.Err()
}

// release is the files to copy: those SHA256SUMS lists, then the
// signature when there is one, and SHA256SUMS last, each with its sha256.
func release(dir string) ([]File, error) {
	files, err := ReadSums(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{SigFile, SumsFile} {
		sum, err := hashFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) && name == SigFile {
			continue
		}
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: name, SHA256: sum})
	}
	return files, nil
}

// hashFile is the hex sha256 of a file.
func hashFile(path string) (string, error) {
	sum, _, err := output.SHA256File(path)
	return sum, err
}

// WriteSums writes dir/SHA256SUMS: every regular file of dir (not dot
// files, not SHA256SUMS and its signature) in name order, taking a file's
// sha256 from known (the build's output records: no second read of a
// large image) and hashing the others; then, with a signer, signs it as
// SHA256SUMS.asc. It returns how many files it lists.
func WriteSums(ctx context.Context, dir string, known map[string]string, signer sign.Signer) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && e.Name() != SumsFile && e.Name() != SigFile {
			names = append(names, e.Name())
		}
	}
	return WriteSumsOf(ctx, dir, names, known, signer)
}

// WriteSumsOf is WriteSums of the files named (base names of files in
// dir) rather than of everything dir holds: the publish stage passes the
// files the build recorded, so that nothing else is signed or published.
// A name with a "/", SHA256SUMS or its signature is an error.
func WriteSumsOf(ctx context.Context, dir string, files []string, known map[string]string, signer sign.Signer) (int, error) {
	for _, name := range []string{SumsFile, SigFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	names := append([]string(nil), files...)
	for _, name := range names {
		if name == "" || strings.Contains(name, "/") || name == SumsFile || name == SigFile {
			return 0, fmt.Errorf("%s: %q cannot be listed in %s", dir, name, SumsFile)
		}
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("%s holds no output to publish", dir)
	}
	sort.Strings(names)
	var b strings.Builder
	var err error
	for _, name := range names {
		sum := known[name]
		if sum == "" {
			if sum, err = hashFile(filepath.Join(dir, name)); err != nil {
				return 0, err
			}
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, name)
	}
	sums := filepath.Join(dir, SumsFile)
	if err := output.WriteFile(sums, func(w io.Writer) error {
		_, err := io.WriteString(w, b.String())
		return err
	}); err != nil {
		return 0, err
	}
	if signer == nil {
		return len(names), nil
	}
	if err := output.SignFile(ctx, signer, sums, filepath.Join(dir, SigFile)); err != nil {
		return 0, fmt.Errorf("signing %s with %s: %w", SumsFile, signer, err)
	}
	return len(names), nil
}

// stagingName is where a release is staged before it is made visible.
func stagingName(outversion string) string { return "." + outversion + ".inprogress" }
