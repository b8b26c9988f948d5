package publish

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StaleAfter is how long a staging copy of another outversion
// (.<outversion>.inprogress) may go without a change before the next
// publish to the same destination removes it: the publish that made it
// was killed (a nightly build's staging copy is otherwise left behind
// forever, as its outversion never comes again). A staging copy that is
// being written has a file newer than this and is left alone, so two
// builds may publish different outversions to one destination at the
// same time. The staging copy of the outversion being published is
// always cleaned or resumed, whatever its age. eib's rule.
const StaleAfter = 12 * time.Hour

// stagingOutversion is the outversion of a staging name, "" if name is
// none.
func stagingOutversion(name string) string {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".inprogress") || len(name) <= len("..inprogress") {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(name, "."), ".inprogress")
}

// newest is the latest modification time of dir and everything under it.
func newest(dir string) (time.Time, error) {
	var t time.Time
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if info.ModTime().After(t) {
			t = info.ModTime()
		}
		return nil
	})
	return t, err
}

// removeStaleLocal removes the staging directories under dir of
// outversions other than keep that nothing changed for StaleAfter.
func removeStaleLocal(dir, keep string, now time.Time, logf func(string, ...any)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		ov := stagingOutversion(e.Name())
		if ov == "" || ov == keep || !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		t, err := newest(p)
		if err != nil {
			return fmt.Errorf("stale staging copy %s: %w", p, err)
		}
		if now.Sub(t) < StaleAfter {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing the stale staging copy %s: %w", p, err)
		}
		logf("removed %s: the staging copy of an interrupted publish, unchanged since %s", p, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// staleScript is the remote shell script of Rsync: it removes every
// staging directory of Path other than keep's in which no file is newer
// than cutoff (seconds since the epoch), printing each one removed.
func staleScript(path, keep string, cutoff time.Time) string {
	return "cd " + shellQuote(path) + " 2>/dev/null || exit 0\n" +
		"for d in .*.inprogress; do\n" +
		"  [ -d \"$d\" ] && [ ! -L \"$d\" ] || continue\n" +
		"  [ \"$d\" = " + shellQuote(stagingName(keep)) + " ] && continue\n" +
		"  [ -z \"$(find \"$d\" -newermt @" + strconv.FormatInt(cutoff.Unix(), 10) + " -print -quit)\" ] || continue\n" +
		"  rm -rf -- \"$d\" && printf '%s\\n' \"$d\"\n" +
		"done\n"
}

// removeStaleS3 removes the objects under the staging prefixes
// (<prefix>/<outversion>.inprogress/) of outversions other than keep
// whose newest object is older than StaleAfter.
func (d *S3) removeStaleS3(ctx context.Context, c *s3.Client, keep string, now time.Time) error {
	root := d.key("")
	newestOf := map[string]time.Time{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &d.Bucket, Prefix: &root})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", d.Bucket, root, err)
		}
		for _, o := range page.Contents {
			dir, _, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), root), "/")
			if !ok || !strings.HasSuffix(dir, ".inprogress") || dir == keep+".inprogress" {
				continue
			}
			if t := aws.ToTime(o.LastModified); t.After(newestOf[dir]) {
				newestOf[dir] = t
			}
		}
	}
	for dir, t := range newestOf {
		if now.Sub(t) < StaleAfter {
			continue
		}
		prefix := root + dir + "/"
		if err := d.removePrefix(ctx, c, prefix); err != nil {
			return err
		}
		d.Logf("removed s3://%s/%s: the staging copy of an interrupted publish, unchanged since %s", d.Bucket, prefix, t.UTC().Format(time.RFC3339))
	}
	return nil
}
