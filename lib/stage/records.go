package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/lib/terminal"
)

// The Format of records that no artifact format made (see artifact.Record):
// artifact.PlainRecord's "file" (<outversion>.config.ini, .ostree.txt),
// and these.
const (
	// formatHook records a file a hook of this build wrote into outdir;
	// Record.Disk holds nothing, BootReason names the hook.
	formatHook = "hook"
	// formatManifest records <outversion>.manifest.json.
	formatManifest = "manifest"
	// formatBuildLog records <outversion>.build.txt.
	formatBuildLog = "log"
)

// record appends recs to b.Artifacts; a record of a file already
// recorded (same File and Path) replaces the old one, so that a stage run
// again (--from) does not list a file twice.
func record(b *build.Build, recs ...artifact.Record) {
	for _, r := range recs {
		replaced := false
		for i, old := range b.Artifacts {
			if old.File == r.File && old.Path == r.Path {
				b.Artifacts[i] = r
				replaced = true
				break
			}
		}
		if !replaced {
			b.Artifacts = append(b.Artifacts, r)
		}
	}
}

// recordFile records the plain file at path (artifact.PlainRecord) with
// Format format ("" keeps PlainRecord's "file").
func recordFile(b *build.Build, path, format string) error {
	r, err := artifact.PlainRecord(path)
	if err != nil {
		return fmt.Errorf("recording %s: %w", path, err)
	}
	if format != "" {
		r.Format = format
	}
	record(b, r)
	return nil
}

// recordedFiles is the set of base names of the files in outdir that the
// records name (artifact.Record.Files: the files and their checksum,
// signature and size files).
func recordedFiles(recs []artifact.Record) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		for _, f := range r.Files() {
			m[f] = true
		}
	}
	return m
}

// fileStamp is what outdirFiles remembers of a file to see that it
// changed.
type fileStamp struct {
	size  int64
	mtime time.Time
}

// outdirFiles lists the regular files of outdir that are not dot files,
// by base name (an outdir that does not exist has none).
func outdirFiles(outdir string) (map[string]fileStamp, error) {
	ents, err := os.ReadDir(outdir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]fileStamp{}, nil
	} else if err != nil {
		return nil, err
	}
	m := map[string]fileStamp{}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		m[e.Name()] = fileStamp{fi.Size(), fi.ModTime()}
	}
	return m, nil
}

// runHooks runs a hook group of the image, check or manifest stage and
// records every file of outdir that is new or changed afterwards as
// Format "hook", named after the hook that ran when it was last written
// (the group's timings; the group when no hook's time fits). EIB's image
// hook 70-flatpak-appstream-catalog writes <outversion>.appstream... into
// EIB_OUTDIR: such files are part of the release. Files are recorded
// even when the group fails (the build fails then anyway).
func runHooks(ctx context.Context, b *build.Build, group, root string) error {
	if b.Hooks == nil {
		return nil
	}
	outdir, err := b.Dir("outdir")
	if err != nil {
		return err
	}
	before, err := outdirFiles(outdir)
	if err != nil {
		return fmt.Errorf("%s hooks: listing outdir %s: %w", group, outdir, err)
	}
	timings := len(b.Timings)
	err = b.Hooks.RunGroup(ctx, b, group, root)
	if rerr := recordHookFiles(b, outdir, before, group, b.Timings[min(timings, len(b.Timings)):]); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// recordHookFiles records the files of outdir that are not in before or
// changed since, as written by the hook of group whose timing holds the
// file's modification time.
func recordHookFiles(b *build.Build, outdir string, before map[string]fileStamp, group string, timings []build.Timing) error {
	after, err := outdirFiles(outdir)
	if err != nil {
		return fmt.Errorf("%s hooks: listing outdir %s: %w", group, outdir, err)
	}
	names := make([]string, 0, len(after))
	for name, st := range after {
		if old, ok := before[name]; !ok || old != st {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		hook := hookAt(group, after[name].mtime, timings)
		r, err := artifact.PlainRecord(filepath.Join(outdir, name))
		if err != nil {
			return fmt.Errorf("recording %s, which hook %s wrote: %w", name, hook, err)
		}
		r.Format = formatHook
		r.BootReason = "written by hook " + hook
		record(b, r)
		if b.Log != nil {
			b.Log.Printf("hook %s wrote %s into outdir: recorded for the release", hook, name)
		}
	}
	return nil
}

// hookAt names the hook ("group/name") of group that last started before
// t (the file's modification time), allowing mtimeSlack for the kernel's
// coarse file clock; the group's first hook when none did, and the group
// when none of its hooks ran.
func hookAt(group string, t time.Time, timings []build.Timing) string {
	name := group
	for _, tm := range timings {
		if tm.Hook == "" || !strings.HasPrefix(tm.Hook, group+"/") {
			continue
		}
		if name == group || !tm.Started.After(t.Add(mtimeSlack)) {
			name = tm.Hook
		}
	}
	return name
}

// mtimeSlack is how far a file's modification time may lag behind the
// clock the hook runner read when the hook started (file times come from
// the kernel's coarse clock, one tick behind at most).
const mtimeSlack = 20 * time.Millisecond

// releaseFiles returns the base names of the files of outdir to publish:
// every file the records name, sorted. A recorded file that is missing,
// and any other regular file of outdir (not SHA256SUMS and its signature,
// not a dot file), is an error naming it: a file no stage or hook of this
// build wrote (a leftover process of a killed build may have put it
// there) is never signed or published.
func releaseFiles(recs []artifact.Record, outdir string) ([]string, error) {
	have, err := outdirFiles(outdir)
	if err != nil {
		return nil, fmt.Errorf("listing outdir %s: %w", outdir, err)
	}
	want := recordedFiles(recs)
	var errs []error
	var stray []string
	for name := range have {
		if !want[name] && name != publish.SumsFile && name != publish.SigFile {
			stray = append(stray, name)
		}
	}
	sort.Strings(stray)
	for _, name := range stray {
		errs = append(errs, fmt.Errorf("outdir holds %s, which no stage or hook of this build wrote: refusing to publish it", filepath.Join(outdir, name)))
	}
	files := make([]string, 0, len(want))
	for name := range want {
		if _, ok := have[name]; !ok {
			errs = append(errs, fmt.Errorf("%s is recorded as written by this build, but outdir does not hold it", filepath.Join(outdir, name)))
			continue
		}
		files = append(files, name)
	}
	sort.Strings(files)
	return files, errors.Join(errs...)
}

// buildTerminal is the build's terminal (buildlog.Log.Terminal). A log
// without one (a test logger) gets a terminal that shows nothing and turns
// progress into lines of that log.
func buildTerminal(b *build.Build) *terminal.Terminal {
	if l, ok := b.Log.(interface{ Terminal() *terminal.Terminal }); ok {
		if t := l.Terminal(); t != nil {
			return t
		}
	}
	t := terminal.New(nil)
	if b.Log != nil {
		t.SetLog(func(line string) { b.Log.Printf("%s", line) })
	}
	return t
}
