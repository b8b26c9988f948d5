package stage

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/flatpak"
	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/planhash"
)

// HashInputs are the plan hash inputs (package planhash) of build b, with
// commit as the OSTree commit (RemoteCommit before a build; the pulled
// one in the manifest stage). It reads b's public configuration and these
// files, each labelled by its path with the host's directories replaced:
//
//   - the hooks of every hook group (content, image, check, manifest,
//     publish, error) as hooks.GroupHooks resolves them, whether or not
//     the group's stage runs (a dry run builds what a real one does);
//   - the buildscript of the srcdir and of the localdir, lib/eib.sh and
//     lib/eib.py of the srcdir (what hooks source or import);
//   - the trusted keys (keys/*.asc of the data directories);
//   - every other file of [build] datadir and localdatadir whose path
//     relative to its data directory appears in the configuration or in
//     one of those hooks (a data file no hook and no key names is taken
//     as unused).
//
// With Flatpak remotes enabled (readFlatpakSettings, whether or not the
// image stage runs, as the hooks), Flatpak holds the commit of every ref
// the build would install, "remote:ref" → 64 hex digits (flatpakCommits):
// read from the remotes' summaries, nothing is pulled. Without, it is
// empty, and the hash is the one of a build without Flatpak.
//
// Errors name the file that could not be read, the config key, or the
// Flatpak remote (its section) whose summary could not be read.
func HashInputs(ctx context.Context, b *build.Build, commit string) (planhash.Inputs, error) {
	in := planhash.Inputs{OSTreeCommit: commit, Files: map[string]string{}, Flatpak: map[string]string{}}
	r := b.Config.Read()
	get := func(key string) string { return optional(r, "build", key, r.String) }
	ph := []planhash.Placeholder{
		{Name: "BUILD_VERSION", Value: get("build_version")},
		{Name: "SRCDIR", Value: b.SrcDir},
		{Name: "LOCALDIR", Value: b.LocalDir},
		{Name: "CACHEDIR", Value: optional(r, "build", "cachedir", r.Path)},
		{Name: "SYSCONFDIR", Value: optional(r, "build", "sysconfdir", r.Path)},
	}
	datadir := optional(r, "build", "datadir", r.Path)
	localdata := optional(r, "build", "localdatadir", r.Path)
	if err := r.Err(); err != nil {
		return in, fmt.Errorf("plan hash: %w", err)
	}
	pub := b.Public
	if pub == nil {
		pub = b.Config
	}
	var text bytes.Buffer
	if err := pub.Write(&text); err != nil {
		return in, fmt.Errorf("plan hash: %w", err)
	}
	in.Config = planhash.Normalize(text.String(), ph)

	var files []string
	groups := map[string]bool{}
	for _, gs := range hookGroups {
		for _, g := range gs {
			groups[g] = true
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		hs, err := hooks.GroupHooks(b, g)
		if err != nil {
			return in, fmt.Errorf("plan hash: %w", err)
		}
		for _, h := range hs {
			files = append(files, h.Path)
		}
	}
	// What hooks read of the data directories is found by name in the
	// configuration and the hooks' text.
	refs := []string{in.Config}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return in, fmt.Errorf("plan hash: hook %w", err)
		}
		refs = append(refs, string(data))
	}
	for _, dir := range []string{b.SrcDir, b.LocalDir} {
		if dir == "" {
			continue
		}
		for _, rel := range []string{BuildscriptName, "lib/eib.sh", "lib/eib.py"} {
			if dir == b.LocalDir && rel != BuildscriptName {
				continue
			}
			p := filepath.Join(dir, rel)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				files = append(files, p)
			}
		}
	}
	keys, err := trustedKeys(b, false)
	if err != nil {
		return in, fmt.Errorf("plan hash: %w", err)
	}
	files = append(files, keys...)
	for _, dir := range []string{datadir, localdata} {
		used, err := usedDataFiles(dir, refs)
		if err != nil {
			return in, err
		}
		files = append(files, used...)
	}
	for _, f := range files {
		sum, err := planhash.FileSum(f)
		if err != nil {
			return in, err
		}
		in.Files[planhash.Label(f, ph)] = sum
	}
	// What the image stage installed, when it ran (the manifest's hash is
	// of the image as built); else what the remotes' summaries say now
	// (eib matrix, before a build).
	fp := b.Flatpaks
	if fp == nil {
		var err error
		if fp, err = flatpakCommits(ctx, b); err != nil {
			return in, fmt.Errorf("plan hash: %w", err)
		}
	}
	for k, c := range fp {
		in.Flatpak[k] = c
	}
	v, err := EIBVersion()
	if err != nil {
		return in, err
	}
	in.EIBVersion = v
	return in, nil
}

// flatpakCommits are the commits of the Flatpak refs build b installs,
// "remote:ref" → commit, read without pulling: the remotes (their
// repo_file fetched) are added to a scratch installation, the apps and
// runtimes listed are resolved as the content stage resolves them,
// flatpak.Closure adds their runtimes and extensions (minus every
// remote's exclude) from the summaries' xa.cache, and each ref's commit
// is the one of its remote's summary (`ostree remote summary --raw`).
// nil without Flatpak remotes. The error names the remote's section and
// the remote, and the ref a summary gives no commit for.
func flatpakCommits(ctx context.Context, b *build.Build) (map[string]string, error) {
	// No enabled remote: nothing to read (and none of readFlatpakSettings'
	// checks of [flatpak], which a build without apps need not pass).
	r := b.Config.Read()
	if r.Has("flatpak", "enable") && !r.Bool("flatpak", "enable") {
		return nil, r.Err()
	}
	enabled := false
	for _, sect := range b.Config.Sections() {
		if strings.HasPrefix(sect, remoteSectionPrefix) && (!r.Has(sect, "enable") || r.Bool(sect, "enable")) {
			enabled = true
		}
	}
	if err := r.Err(); err != nil || !enabled {
		return nil, err
	}
	fs, err := readFlatpakSettings(b)
	if err != nil || fs == nil {
		return nil, err
	}
	if err := fs.fetchRepoFiles(ctx); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "eib-plan-hash-flatpak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	in := flatpak.Installation{Dir: tmp}
	if b.Log != nil {
		in.Debugf = b.Log.Debugf
	}
	sizes, res, err := in.RemoteSizes(ctx, fs.s)
	if err != nil {
		return nil, fmt.Errorf("flatpak: %w", err)
	}
	excluded := map[string]bool{}
	for _, r := range fs.s.Remotes {
		for _, e := range r.Exclude {
			excluded[e] = true
		}
	}
	sections := map[string]string{}
	for _, r := range fs.s.Remotes {
		sections[r.Name] = r.Section
	}
	out := map[string]string{}
	for _, rs := range flatpak.Closure(sizes, res, excluded) {
		if rs.Commit == "" {
			return nil, fmt.Errorf("[%s] remote %s: its summary gives no commit for %s", sections[rs.Remote], rs.Remote, rs.Ref)
		}
		out[rs.Remote+":"+rs.Ref] = rs.Commit
	}
	// A listed ref the summary has no xa.cache entry for is not in the
	// closure: refused, rather than hashed without it.
	for _, rr := range res {
		for _, ref := range rr.Refs {
			if _, ok := out[rr.Remote.Name+":"+ref]; !ok {
				return nil, fmt.Errorf("[%s] remote %s: its summary has no xa.cache entry for %s: the plan hash cannot cover its commit", rr.Remote.Section, rr.Remote.Name, ref)
			}
		}
	}
	return out, nil
}

// usedDataFiles lists the regular files under dir whose path relative to
// dir occurs in one of refs ("" dir or a missing one: none).
func usedDataFiles(dir string, refs []string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, nil
	}
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("plan hash: data directory: %w", err)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range refs {
			if strings.Contains(s, rel) {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	return out, err
}

var eibVersion struct {
	once sync.Once
	v    string
	err  error
}

// EIBVersion identifies this eib for the plan hash: its Go module version,
// the VCS revision and modified flag Go recorded when it was built with
// VCS stamping (not with make's -buildvcs=false), and the sha256 of the
// running executable, which any change of eib's Go code changes.
func EIBVersion() (string, error) {
	eibVersion.once.Do(func() {
		parts := []string{"eib"}
		if info, ok := debug.ReadBuildInfo(); ok {
			parts = append(parts, info.Main.Version)
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
					parts = append(parts, s.Key+"="+s.Value)
				}
			}
		}
		exe, err := os.Executable()
		if err != nil {
			eibVersion.err = fmt.Errorf("plan hash: the eib executable: %w", err)
			return
		}
		sum, err := planhash.FileSum(exe)
		if err != nil {
			eibVersion.err = err
			return
		}
		eibVersion.v = strings.Join(append(parts, "exe="+sum), " ")
	})
	return eibVersion.v, eibVersion.err
}

// RemoteCommit reads the commit that the build's [ostree] ref points at
// from its remote's summary, without pulling: a remote configured as the
// ostree stage configures it (URL, GPG verification, trusted keys) in a
// throw-away repository, then `ostree remote summary`. The error names
// the remote, its URL and the ref.
func RemoteCommit(ctx context.Context, b *build.Build) (string, error) {
	s, err := readOSTreeSettings(b)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "eib-summary-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	repo, err := ostree.Init(ctx, filepath.Join(tmp, "repo"), ostree.ModeArchive)
	if err != nil {
		return "", err
	}
	if err := repo.AddRemote(ctx, ostree.Remote{
		Name: s.remote, URL: s.pullURL, Branches: []string{s.ref},
		GPGVerify: s.gpgVerify, GPGVerifySummary: verifySummary(s.gpgVerify, s.pullURL), Keys: s.keys,
	}); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, ostree.Command, "remote", "summary", "--repo="+repo.Path, s.remote)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("[ostree] ref %s: reading the summary of remote %s (%s): %v: %s", s.ref, s.remote, s.pullURL, err, strings.TrimSpace(stderr.String()))
	}
	c := summaryCommit(string(out), s.ref)
	if c == "" {
		return "", fmt.Errorf("[ostree] ref %s: not in the summary of remote %s (%s)", s.ref, s.remote, s.pullURL)
	}
	return c, nil
}

// summaryCommit finds ref's commit in `ostree remote summary` output:
//
//   - ref
//     Latest Commit (size):
//     checksum
func summaryCommit(out, ref string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "* "+ref {
			continue
		}
		for _, n := range lines[i+1:] {
			t := strings.TrimSpace(n)
			if strings.HasPrefix(t, "* ") {
				return ""
			}
			if len(t) == 64 && strings.Trim(t, "0123456789abcdef") == "" {
				return t
			}
		}
	}
	return ""
}
