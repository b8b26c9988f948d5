// Package flatpak preinstalls Flatpak apps and runtimes the way EIB does
// (its content hook 50-flatpak and image hook 50-flatpak.chroot), with
// Debian's `flatpak` command line rather than libflatpak or a
// reimplementation of Flatpak's repository format.
//
// Every flatpak command runs as `flatpak --system` with
// FLATPAK_SYSTEM_DIR set to the installation the build works on (the
// content cache <contentdir>/flatpak, or the deployment's
// <var>/lib/flatpak), FLATPAK_CONFIG_DIR set to an empty directory (the
// host's /etc/flatpak installations and remotes are never read) and
// FLATPAK_TRIGGERSDIR set to an empty directory (the host's triggers,
// which would run host binaries on the image's exports, are not run).
//
// Two steps, as EIB:
//   - Pull (content stage): the cache installation's repo (an archive-z2
//     OSTree repo, kept between builds) gets everything the selected apps
//     need with `flatpak install --no-deploy`: the apps and runtimes of
//     every remote, their runtimes, their related extensions, and of the
//     locale extensions only the subsets of Settings.Locales
//     (core.xa.languages); names of every remote's exclude are masked
//     (core.xa.masked) so that flatpak adds none of them.
//   - Install (image stage): the deployment's installation gets each
//     remote (pull URL first), the complete commits of the cache are
//     copied in with `ostree pull-local` (the seed: flatpak then only
//     fetches what the cache lacks, the partial locale commits and the
//     remotes' metadata), `flatpak install` deploys them, then every
//     remote is pointed at its deploy URL and given its options.
package flatpak

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/proc"
)

// Command is the flatpak program run (Debian's package "flatpak").
var Command = "flatpak"

// Available reports whether the flatpak command is installed, and where.
func Available() (string, bool) {
	p, err := exec.LookPath(Command)
	return p, err == nil
}

// Remote is one [flatpak-remote-NAME] section, as read and checked by the
// stage (lib/stage/flatpak.go).
type Remote struct {
	Name string // NAME of the section: the remote's name everywhere
	// Section is the configuration section, for errors.
	Section string
	// URL is pulled from; DeployURL is what the image's remote points at
	// ("": URL).
	URL, DeployURL string
	// RepoFile is the .flatpakrepo file the remote comes from ("": none):
	// its Url, Title and DefaultBranch fill what the section leaves
	// empty, and its GPGKey is the remote's trusted key.
	RepoFile      string
	Title         string
	DefaultBranch string
	Prio          string // decimal, "" unset
	NoEnumerate   string // "true"/"false", "" unset
	// Apps and Runtimes are partial refs NAME[/ARCH[/BRANCH]].
	Apps, Runtimes []string
	// Exclude are the IDs never installed; AllowExtraData the IDs whose
	// extra data may be installed.
	Exclude, AllowExtraData []string
	// GPGKey is the remote's trusted key (binary OpenPGP), from RepoFile.
	GPGKey []byte
}

// Settings are the [flatpak] settings and the enabled remotes, in the
// order of their sections.
type Settings struct {
	Arch              string // Flatpak arch (x86_64, aarch64, i386)
	Locales           []string
	SetExtraLanguages bool
	Remotes           []Remote
}

// Installation is a Flatpak system installation at Dir (its repo is
// Dir/repo), driven with the flatpak command.
type Installation struct {
	Dir  string
	Logf func(format string, args ...any)
	// Debugf, when set, receives every command run.
	Debugf func(format string, args ...any)
	// Scratch holds eib's own files about the installation (the empty
	// stand-ins of /etc/flatpak and the triggers, flatpak's cache):
	// "": <Dir>/.eib. An installation that goes into an image has it
	// elsewhere.
	Scratch string
}

func (in Installation) logf(format string, args ...any) {
	if in.Logf != nil {
		in.Logf(format, args...)
	}
}

// RepoDir is the installation's OSTree repo.
func (in Installation) RepoDir() string { return filepath.Join(in.Dir, "repo") }

// Error is a failed flatpak or ostree command: what eib was doing, the
// command and its error output.
type Error struct {
	What   string
	Args   []string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	msg = strings.ReplaceAll(msg, "\n", "; ")
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s: %s %s: %s", e.What, filepath.Base(e.Args[0]), strings.Join(e.Args[1:], " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// scratch is the directory of eib's own files about the installation:
// Scratch, else <Dir>/.eib.
func (in Installation) scratch() string {
	if in.Scratch != "" {
		return in.Scratch
	}
	return filepath.Join(in.Dir, ".eib")
}

// emptyDir returns a directory of scratch (made if missing): what stands
// for the host's /etc/flatpak ("etc", where the imported keys are written
// too) and triggers ("triggers", empty).
func (in Installation) emptyDir(name string) (string, error) {
	d := filepath.Join(in.scratch(), name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, nil
}

func (in Installation) env() ([]string, error) {
	conf, err := in.emptyDir("etc")
	if err != nil {
		return nil, err
	}
	trig, err := in.emptyDir("triggers")
	if err != nil {
		return nil, err
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLATPAK_") && !strings.HasPrefix(kv, "G_MESSAGES_DEBUG=") {
			env = append(env, kv)
		}
	}
	return append(env, "FLATPAK_SYSTEM_DIR="+in.Dir, "FLATPAK_CONFIG_DIR="+conf,
		"FLATPAK_TRIGGERSDIR="+trig, "FLATPAK_SYSTEM_CACHE_DIR="+filepath.Join(in.scratch(), "cache")), nil
}

// flatpak runs `flatpak --system ARGS` on the installation.
func (in Installation) flatpak(ctx context.Context, what string, args ...string) (string, error) {
	env, err := in.env()
	if err != nil {
		return "", err
	}
	argv := append([]string{Command, "--system"}, args...)
	if in.Debugf != nil {
		in.Debugf("$ %s", strings.Join(argv, " "))
	}
	out, stderr, err := proc.Command{Name: Command, Args: argv[1:], Env: env}.Run(ctx)
	if err != nil {
		return out, &Error{What: what, Args: argv, Stderr: stderr + out, Err: err}
	}
	return out, nil
}

// ostree runs `ostree ARGS --repo=<the installation's repo>`.
func (in Installation) ostree(ctx context.Context, what string, args ...string) (string, error) {
	argv := append([]string{"ostree"}, args...)
	argv = append(argv, "--repo="+in.RepoDir())
	out, stderr, err := proc.Command{Name: "ostree", Args: argv[1:]}.Run(ctx)
	if err != nil {
		return out, &Error{What: what, Args: argv, Stderr: stderr, Err: err}
	}
	return out, nil
}

// ensureRepo creates the installation's repo (archive-z2 for a cache, as
// EIB: its objects are never checked out) unless it exists.
func (in Installation) ensureRepo(ctx context.Context, mode string) error {
	if _, err := os.Stat(filepath.Join(in.RepoDir(), "config")); err == nil {
		return nil
	}
	if err := os.MkdirAll(in.RepoDir(), 0o755); err != nil {
		return err
	}
	_, err := in.ostree(ctx, "creating the flatpak repo", "init", "--mode="+mode)
	return err
}

// setCore sets (value != "") or removes core.<key> of the repo config.
func (in Installation) setCore(ctx context.Context, key, value string) error {
	if value == "" {
		// "unset" of a missing key fails; ask first.
		if _, err := in.ostree(ctx, "reading the repo config", "config", "get", "core."+key); err != nil {
			return nil
		}
		_, err := in.ostree(ctx, "editing the repo config", "config", "unset", "core."+key)
		return err
	}
	_, err := in.ostree(ctx, "editing the repo config", "config", "set", "core."+key, value)
	return err
}

// remoteNames lists the remotes of the installation.
func (in Installation) remoteNames(ctx context.Context) (map[string]bool, error) {
	out, err := in.flatpak(ctx, "listing the remotes", "remotes", "--columns=name")
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names[l] = true
		}
	}
	return names, nil
}

// addRemote adds r (or brings an existing remote of that name up to date)
// with url, its key and its options.
func (in Installation) addRemote(ctx context.Context, r Remote, url string, have map[string]bool) error {
	var opts []string
	if len(r.GPGKey) > 0 {
		dir, err := in.emptyDir("etc")
		if err != nil {
			return err
		}
		f := filepath.Join(dir, r.Name+".gpg")
		if err := os.WriteFile(f, r.GPGKey, 0o644); err != nil {
			return err
		}
		opts = append(opts, "--gpg-import="+f)
	}
	if r.Title != "" {
		opts = append(opts, "--title="+r.Title)
	}
	if r.DefaultBranch != "" {
		opts = append(opts, "--default-branch="+r.DefaultBranch)
	}
	if r.Prio != "" {
		opts = append(opts, "--prio="+r.Prio)
	}
	what := fmt.Sprintf("[%s] adding remote %s (%s)", r.Section, r.Name, url)
	if have[r.Name] {
		// The keys are this build's only: a key an earlier build
		// imported must not verify this one.
		if err := os.Remove(filepath.Join(in.RepoDir(), r.Name+".trustedkeys.gpg")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		args := append([]string{"remote-modify", "--url=" + url, "--no-filter"}, opts...)
		_, err := in.flatpak(ctx, what, append(args, r.Name)...)
		return err
	}
	args := append([]string{"remote-add"}, opts...)
	_, err := in.flatpak(ctx, what, append(args, r.Name, url)...)
	return err
}

// listRefs returns the refs a remote offers (kind/name/arch/branch), all
// arches, the locale and debug extensions included.
func (in Installation) listRefs(ctx context.Context, r Remote) ([]string, error) {
	out, err := in.flatpak(ctx, fmt.Sprintf("[%s] listing the refs of remote %s (%s)", r.Section, r.Name, r.URL),
		"remote-ls", "--all", "--arch=*", "--columns=ref", r.Name)
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "app/") || strings.HasPrefix(l, "runtime/") {
			refs = append(refs, l)
		}
	}
	return refs, nil
}

// Match resolves a partial ref of kind ("app" or "runtime") among refs as
// EIB does: NAME[/ARCH[/BRANCH]], the arch defaulting to arch and the
// branch to defaultBranch; with no branch at all, the last matching
// branch in sort order. "" when nothing matches.
func Match(refs []string, kind, partial, arch, defaultBranch string) (string, error) {
	parts := strings.Split(partial, "/")
	if len(parts) > 3 || parts[0] == "" {
		return "", fmt.Errorf("%q: not NAME[/ARCH[/BRANCH]]", partial)
	}
	name, a, branch := parts[0], "", ""
	if len(parts) > 1 {
		a = parts[1]
	}
	if len(parts) > 2 {
		branch = parts[2]
	}
	if a == "" {
		a = arch
	}
	if branch == "" {
		branch = defaultBranch
	}
	prefix := kind + "/" + name + "/" + a + "/"
	var found []string
	for _, r := range refs {
		if !strings.HasPrefix(r, prefix) {
			continue
		}
		if branch == "" || r == prefix+branch {
			found = append(found, r)
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// Resolved are the full refs a remote's apps and runtimes resolved to.
type Resolved struct {
	Remote Remote
	Refs   []string
}

// prepare creates the repo, removes the xa.* options a previous build
// left, adds the remotes with their pull URLs, and resolves every listed
// app and runtime. Missing refs are one error naming each remote and ref.
func (in Installation) prepare(ctx context.Context, s Settings, mode string) ([]Resolved, error) {
	if err := in.ensureRepo(ctx, mode); err != nil {
		return nil, err
	}
	for _, k := range []string{"xa.languages", "xa.extra-languages", "xa.masked"} {
		if err := in.setCore(ctx, k, ""); err != nil {
			return nil, err
		}
	}
	have, err := in.remoteNames(ctx)
	if err != nil {
		return nil, err
	}
	var res []Resolved
	var missing []string
	excluded := map[string]bool{}
	for _, r := range s.Remotes {
		for _, e := range r.Exclude {
			excluded[e] = true
		}
	}
	for _, r := range s.Remotes {
		if err := in.addRemote(ctx, r, r.URL, have); err != nil {
			return nil, fmt.Errorf("%w (wanted for %s)", err, wanted(r))
		}
		refs, err := in.listRefs(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("%w (wanted for %s)", err, wanted(r))
		}
		rr := Resolved{Remote: r}
		for _, k := range []struct {
			kind string
			list []string
		}{{"app", r.Apps}, {"runtime", r.Runtimes}} {
			for _, p := range k.list {
				full, err := Match(refs, k.kind, p, s.Arch, r.DefaultBranch)
				if err != nil {
					return nil, fmt.Errorf("[%s] %ss: %w", r.Section, k.kind, err)
				}
				if full == "" {
					missing = append(missing, fmt.Sprintf("%s %s (remote %s, %s)", k.kind, p, r.Name, r.URL))
					continue
				}
				if excluded[refName(full)] {
					return nil, fmt.Errorf("[%s] %ss: %s of remote %s is excluded ([flatpak-remote-*] exclude)", r.Section, k.kind, full, r.Name)
				}
				rr.Refs = append(rr.Refs, full)
			}
		}
		res = append(res, rr)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no remote has %s", strings.Join(missing, ", "))
	}
	if len(s.Locales) > 0 {
		if err := in.setCore(ctx, "xa.languages", strings.Join(s.Locales, ";")); err != nil {
			return nil, err
		}
	}
	if len(excluded) > 0 {
		names := make([]string, 0, len(excluded))
		for n := range excluded {
			names = append(names, n)
		}
		sort.Strings(names)
		if err := in.setCore(ctx, "xa.masked", strings.Join(names, ";")); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// wanted names what a remote was asked for, for errors.
func wanted(r Remote) string {
	var w []string
	for _, a := range r.Apps {
		w = append(w, "app "+a)
	}
	for _, rt := range r.Runtimes {
		w = append(w, "runtime "+rt)
	}
	if len(w) == 0 {
		return "nothing: no apps or runtimes listed"
	}
	return strings.Join(w, ", ")
}

// refName is the NAME of kind/NAME/arch/branch.
func refName(ref string) string {
	p := strings.Split(ref, "/")
	if len(p) < 2 {
		return ref
	}
	return p[1]
}

// Pull fills the cache installation (content stage): see the package
// doc. It returns the resolved refs of every remote.
func (in Installation) Pull(ctx context.Context, s Settings) ([]Resolved, error) {
	res, err := in.prepare(ctx, s, "archive-z2")
	if err != nil {
		return nil, err
	}
	if err := in.preflight(ctx, s, res); err != nil {
		return nil, err
	}
	for _, rr := range res {
		if len(rr.Refs) == 0 {
			continue
		}
		args := append([]string{"install", "--no-deploy", "--noninteractive", "-y", "--or-update", rr.Remote.Name}, rr.Refs...)
		out, err := in.flatpak(ctx, fmt.Sprintf("[%s] pulling %s from remote %s (%s)", rr.Remote.Section, strings.Join(rr.Refs, " "), rr.Remote.Name, rr.Remote.URL), args...)
		if err != nil {
			return nil, err
		}
		// Checked before anything reaches an image (the extra data of
		// a --no-deploy pull is not downloaded).
		pulled, err := in.pulledRefs(ctx, rr.Remote.Name, out)
		if err != nil {
			return nil, err
		}
		if len(pulled) < len(rr.Refs) {
			return nil, fmt.Errorf("[%s] pulling from remote %s: flatpak install named %d refs, fewer than the %d asked for: cannot check them:\n%s", rr.Remote.Section, rr.Remote.Name, len(pulled), len(rr.Refs), out)
		}
		if err := in.checkRefs(ctx, s, pulled); err != nil {
			return nil, fmt.Errorf("[%s] pulling %s from remote %s: %w", rr.Remote.Section, strings.Join(rr.Refs, " "), rr.Remote.Name, err)
		}
	}
	// Locales and masks are the build's, not the cache's.
	for _, k := range []string{"xa.languages", "xa.masked"} {
		if err := in.setCore(ctx, k, ""); err != nil {
			return nil, err
		}
	}
	// Only the last commit of each ref stays (EIB prunes the same way).
	if _, err := in.ostree(ctx, "pruning the flatpak cache", "prune", "--refs-only", "--depth=0"); err != nil {
		return nil, err
	}
	return res, nil
}

// preflight checks, before anything is pulled, what the remotes'
// summaries say the refs bring along (Closure): an excluded ID, extra data
// not allowed (flatpak downloads extra data even with --no-deploy). A
// summary without flatpak's xa.cache cannot be checked ahead: the checks
// after the pull and after the install remain.
func (in Installation) preflight(ctx context.Context, s Settings, res []Resolved) error {
	sizes := map[string]RefSize{}
	for _, r := range s.Remotes {
		out, err := in.ostree(ctx, fmt.Sprintf("[%s] reading the summary of remote %s (%s)", r.Section, r.Name, r.URL), "remote", "summary", "--raw", r.Name)
		if err != nil {
			return fmt.Errorf("%w (wanted for %s)", err, wanted(r))
		}
		refs := parseSummary(r.Name, out)
		if len(refs) == 0 {
			in.logf("flatpak: the summary of remote %s has no xa.cache: what its refs bring along is checked once pulled", r.Name)
		}
		for ref, rs := range refs {
			sizes[r.Name+":"+ref] = rs
		}
	}
	excluded := map[string]bool{}
	for _, r := range s.Remotes {
		for _, e := range r.Exclude {
			excluded[e] = true
		}
	}
	var list []Installed
	for _, rs := range Closure(sizes, res, excluded) {
		list = append(list, Installed{Ref: rs.Ref, Remote: rs.Remote, Metadata: rs.Metadata, Commit: "-"})
	}
	if err := in.checkRefs(ctx, s, list); err != nil {
		var asked []string
		for _, rr := range res {
			for _, ref := range rr.Refs {
				asked = append(asked, rr.Remote.Name+":"+ref)
			}
		}
		return fmt.Errorf("before pulling %s (and what they bring along): %w", strings.Join(asked, " "), err)
	}
	return nil
}

// CacheRefs are the refs of the cache repo, "remote:ref" → commit.
func (in Installation) CacheRefs(ctx context.Context) (map[string]string, error) {
	out, err := in.ostree(ctx, "listing the refs of the flatpak cache", "refs")
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	for _, l := range strings.Fields(out) {
		if !strings.Contains(l, ":") {
			continue
		}
		c, err := in.ostree(ctx, "reading the flatpak cache", "rev-parse", l)
		if err != nil {
			return nil, err
		}
		refs[l] = strings.TrimSpace(c)
	}
	return refs, nil
}

// complete reports whether commit is whole in the repo (not partial:
// a locale extension pulled with subpaths is).
func (in Installation) complete(commit string) bool {
	_, err := os.Stat(filepath.Join(in.RepoDir(), "state", commit+".commitpartial"))
	return errors.Is(err, os.ErrNotExist)
}

// Install installs into the installation (image stage) what Pull put in
// cache: see the package doc.
func (in Installation) Install(ctx context.Context, s Settings, cache Installation) error {
	if err := os.MkdirAll(in.Dir, 0o755); err != nil {
		return err
	}
	res, err := in.prepare(ctx, s, "bare-user-only")
	if err != nil {
		return err
	}
	// The seed: the complete commits of the cache.
	refs, err := cache.CacheRefs(ctx)
	if err != nil {
		return err
	}
	var seed, partial []string
	for ref, c := range refs {
		remote := strings.SplitN(ref, ":", 2)[0]
		for _, rr := range res {
			switch {
			case rr.Remote.Name != remote:
			case cache.complete(c):
				seed = append(seed, c)
			default:
				partial = append(partial, c)
			}
		}
	}
	sort.Strings(seed)
	sort.Strings(partial)
	if len(seed) > 0 {
		args := append([]string{"pull-local", "--disable-fsync", cache.RepoDir()}, seed...)
		if _, err := in.ostree(ctx, "seeding the image's flatpak repo from the cache", args...); err != nil {
			return err
		}
	}
	if err := in.seedPartial(ctx, cache, partial, s.Locales); err != nil {
		return err
	}
	for _, rr := range res {
		if len(rr.Refs) == 0 {
			continue
		}
		args := append([]string{"install", "--noninteractive", "-y", "--no-static-deltas", rr.Remote.Name}, rr.Refs...)
		if _, err := in.flatpak(ctx, fmt.Sprintf("[%s] installing %s from remote %s (%s)", rr.Remote.Section, strings.Join(rr.Refs, " "), rr.Remote.Name, rr.Remote.URL), args...); err != nil {
			return err
		}
	}
	if err := in.checkInstalled(ctx, s); err != nil {
		return err
	}
	// The remotes as the installed OS uses them.
	for _, r := range s.Remotes {
		url := r.DeployURL
		if url == "" {
			url = r.URL
		}
		args := []string{"remote-modify", "--url=" + url}
		switch r.NoEnumerate {
		case "true":
			args = append(args, "--no-enumerate")
		case "false":
			args = append(args, "--enumerate")
		}
		if r.Title != "" {
			args = append(args, "--title="+r.Title)
		}
		if r.DefaultBranch != "" {
			args = append(args, "--default-branch="+r.DefaultBranch)
		}
		if r.Prio != "" {
			args = append(args, "--prio="+r.Prio)
		}
		if _, err := in.flatpak(ctx, fmt.Sprintf("[%s] deploy_url: pointing remote %s at %s", r.Section, r.Name, url), append(args, r.Name)...); err != nil {
			return err
		}
	}
	if err := in.setCore(ctx, "xa.languages", ""); err != nil {
		return err
	}
	if err := in.setCore(ctx, "xa.masked", ""); err != nil {
		return err
	}
	if s.SetExtraLanguages && len(s.Locales) > 0 {
		if err := in.setCore(ctx, "xa.extra-languages", strings.Join(s.Locales, ";")); err != nil {
			return err
		}
	}
	_, err = in.ostree(ctx, "pruning the image's flatpak repo", "prune", "--refs-only", "--depth=0")
	return err
}

// seedPartial copies the locale subsets of the partial commits (locale
// extensions) from the cache: /metadata and /files/<locale> and
// /files/<language> of every locale, the subpaths flatpak pulls them
// with. ostree pull-local takes no subpaths, so the cache is a temporary
// file:// remote of the repo. A commit whose subpaths do not match is left
// to flatpak, which pulls it from the remote (logged).
func (in Installation) seedPartial(ctx context.Context, cache Installation, commits, locales []string) error {
	if len(commits) == 0 {
		return nil
	}
	const tmpRemote = "eib-flatpak-cache"
	if _, err := in.ostree(ctx, "seeding the image's flatpak repo from the cache", "remote", "add", "--force", "--no-gpg-verify", tmpRemote, "file://"+cache.RepoDir()); err != nil {
		return err
	}
	defer in.ostree(context.WithoutCancel(ctx), "seeding the image's flatpak repo from the cache", "remote", "delete", tmpRemote)
	sub := []string{"--subpath=/metadata"}
	seen := map[string]bool{}
	for _, l := range locales {
		lang := strings.FieldsFunc(l, func(r rune) bool { return r == '_' || r == '.' || r == '@' })
		if len(lang) == 0 {
			continue
		}
		for _, d := range []string{l, lang[0]} {
			if !seen[d] {
				seen[d] = true
				sub = append(sub, "--subpath=/files/"+d)
			}
		}
	}
	for _, c := range commits {
		args := append([]string{"pull", "--disable-fsync"}, sub...)
		args = append(args, tmpRemote, c)
		if _, err := in.ostree(ctx, "seeding the image's flatpak repo from the cache", args...); err != nil {
			in.logf("flatpak: %v; flatpak pulls %s from its remote", err, c)
		}
	}
	return nil
}

// Installed is one installed ref.
type Installed struct {
	Ref    string // kind/name/arch/branch
	Remote string
	Commit string
	// InstalledSize and DownloadSize are the commit's xa.installed-size
	// and xa.download-size (bytes), as flatpak build-export records them.
	InstalledSize int64
	DownloadSize  int64
	Metadata      string // the ref's metadata file
}

// List returns the installed refs, sorted.
func (in Installation) List(ctx context.Context) ([]Installed, error) {
	var list []Installed
	for _, kind := range []string{"app", "runtime"} {
		// flatpak list names refs without their kind: one list per kind.
		out, err := in.flatpak(ctx, "listing the installed refs", "list", "--"+kind, "--all", "--columns=ref,origin")
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if len(f) < 2 {
				continue
			}
			it := Installed{Ref: kind + "/" + strings.TrimSpace(f[0]), Remote: strings.TrimSpace(f[1])}
			if err := in.describe(ctx, &it); err != nil {
				return nil, err
			}
			list = append(list, it)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Ref < list[j].Ref })
	return list, nil
}

// describe reads a commit's sizes and metadata from the repo.
func (in Installation) describe(ctx context.Context, it *Installed) error {
	full, err := in.ostree(ctx, "reading the flatpak repo", "rev-parse", it.Remote+":"+it.Ref)
	if err != nil {
		return err
	}
	it.Commit = strings.TrimSpace(full)
	for _, k := range []struct {
		key string
		dst *int64
	}{{"xa.installed-size", &it.InstalledSize}, {"xa.download-size", &it.DownloadSize}} {
		out, err := in.ostree(ctx, "reading the flatpak repo", "show", "--print-metadata-key="+k.key, it.Commit)
		if err != nil {
			continue // a commit made without sizes
		}
		v := strings.TrimPrefix(strings.TrimSpace(out), "uint64 ")
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			*k.dst = n
		}
	}
	md, err := in.ostree(ctx, "reading the flatpak repo", "cat", it.Commit, "/metadata")
	if err == nil {
		it.Metadata = md
	}
	return nil
}

// checkInstalled refuses what EIB refuses among the installed refs
// (checkRefs).
func (in Installation) checkInstalled(ctx context.Context, s Settings) error {
	list, err := in.List(ctx)
	if err != nil {
		return err
	}
	return in.checkRefs(ctx, s, list)
}

// checkRefs refuses what EIB refuses among the refs a transaction brought
// (each with its remote, commit and metadata; the commit's metadata is
// read from the installation's repo): an excluded ID, extra data whose ID
// is not in allow_extra_data, an end-of-life ref rebased to another one
// (a plain end-of-life ref is logged). Refs of remotes not configured are
// ignored.
func (in Installation) checkRefs(ctx context.Context, s Settings, list []Installed) error {
	byName := map[string]Remote{}
	for _, r := range s.Remotes {
		byName[r.Name] = r
	}
	var bad []string
	for _, it := range list {
		r, ok := byName[it.Remote]
		if !ok {
			continue
		}
		name := refName(it.Ref)
		if contains(r.Exclude, name) {
			bad = append(bad, fmt.Sprintf("%s of remote %s is excluded ([%s] exclude)", it.Ref, r.Name, r.Section))
		}
		if strings.Contains(it.Metadata, "[Extra Data]") && !contains(r.AllowExtraData, name) {
			bad = append(bad, fmt.Sprintf("%s of remote %s has extra data (maybe not redistributable), and [%s] allow_extra_data does not list %s", it.Ref, r.Name, r.Section, name))
		}
		if it.Commit == "-" {
			continue // preflight: the commit is not here yet
		}
		if out, err := in.ostree(ctx, "reading the flatpak repo", "show", "--print-metadata-key=ostree.endoflife-rebase", it.Commit); err == nil {
			bad = append(bad, fmt.Sprintf("%s of remote %s is end-of-life, superseded by %s", it.Ref, r.Name, strings.Trim(strings.TrimSpace(out), "'")))
		} else if out, err := in.ostree(ctx, "reading the flatpak repo", "show", "--print-metadata-key=ostree.endoflife", it.Commit); err == nil {
			in.logf("warning: %s of remote %s is end-of-life: %s", it.Ref, r.Name, strings.TrimSpace(out))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// transactionRefs are the refs `flatpak install` says it installs or
// updates ("Installing REF", "Updating REF", one line each with
// --noninteractive): the transaction's operations, dependencies and
// related refs included.
var transactionRefs = regexp.MustCompile(`(?m)^(?:Installing|Updating) ((?:app|runtime)/\S+)`)

// pulledRefs describes the refs of a --no-deploy transaction of remote
// from the repo (out: its output).
func (in Installation) pulledRefs(ctx context.Context, remote, out string) ([]Installed, error) {
	var list []Installed
	for _, m := range transactionRefs.FindAllStringSubmatch(out, -1) {
		it := Installed{Ref: m[1], Remote: remote}
		if err := in.describe(ctx, &it); err != nil {
			return nil, err
		}
		list = append(list, it)
	}
	return list, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// RepoFileKeys reads a .flatpakrepo file's [Flatpak Repo] group: Url,
// Title, DefaultBranch and the decoded GPGKey.
func RepoFileKeys(data []byte) (url, title, branch string, key []byte, err error) {
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			in = l == "[Flatpak Repo]"
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !in || !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Url":
			url = strings.TrimSpace(v)
		case "Title":
			title = strings.TrimSpace(v)
		case "DefaultBranch":
			branch = strings.TrimSpace(v)
		case "GPGKey":
			key, err = base64.StdEncoding.DecodeString(strings.TrimSpace(v))
			if err != nil {
				return "", "", "", nil, fmt.Errorf("GPGKey: not base64: %w", err)
			}
		}
	}
	return url, title, branch, key, nil
}

// Remotes returns the installation's remotes and their URLs.
func (in Installation) Remotes(ctx context.Context) (map[string]string, error) {
	out, err := in.flatpak(ctx, "listing the remotes", "remotes", "--columns=name,url")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) >= 2 && strings.TrimSpace(f[0]) != "" {
			m[strings.TrimSpace(f[0])] = strings.TrimSpace(f[1])
		}
	}
	return m, nil
}

// CommitDate returns the time of a commit of the repo.
func (in Installation) CommitDate(ctx context.Context, commit string) (time.Time, error) {
	out, err := in.ostree(ctx, "reading the flatpak repo", "show", commit)
	if err != nil {
		return time.Time{}, err
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Date:"); ok {
			return time.Parse("2006-01-02 15:04:05 -0700", strings.TrimSpace(v))
		}
	}
	return time.Time{}, fmt.Errorf("ostree show %s: no Date", commit)
}

// RevParse returns the commit of a ref of the installation's repo.
func (in Installation) RevParse(ctx context.Context, ref string) (string, error) {
	out, err := in.ostree(ctx, "reading the flatpak repo", "rev-parse", ref)
	return strings.TrimSpace(out), err
}
