package stage

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/ostree"
)

// ostreeStage fetches the OS commit into the bare cache repo: it recreates
// the remote with every trusted key, pulls the ref (GPG-verified), points
// the local branches ref and ref_deploy at the pulled commit, updates the
// summary and prunes.
type ostreeStage struct {
	s ostreeSettings // resolved by the plan (readOSTreeSettings)
}

func (ostreeStage) Name() string { return "ostree" }

// pullAttempts is how often a pull that fails for a network reason is
// tried; the waits between attempts are 2 s, then 4 s.
const pullAttempts = 3

// ostreeSettings is the [ostree] section, typed.
type ostreeSettings struct {
	repoDir string
	remote  string
	pullURL string
	// pullURLKey is the key pullURL comes from: pull_url, else
	// dev_pull_url or prod_pull_url (--use-production-ostree).
	pullURLKey string
	ref        string
	refDeploy  string
	os         string
	deployURL  string
	checkout   string
	kargs      []string
	gpgVerify  bool
	// p2p is EIB's [ostree] enable_p2p_updates: give the deployed
	// remote the collection ID of its summary (and its ostree-metadata
	// ref). Off when the key is not set (it reaches the deploy URL).
	p2p  bool
	keys []string // trusted public keys, sorted per directory
	err  error    // the errors met while reading, joined
}

func readOSTreeSettings(b *build.Build) (ostreeSettings, error) {
	var s ostreeSettings
	get := func(key string, required bool) string {
		v, err := b.Get("ostree", key)
		if err != nil {
			s.setErr(keyErr(b, "ostree", key, err))
			return ""
		}
		v = strings.TrimSpace(v)
		if required && v == "" {
			s.setErr(keyErrorf(b, "ostree", key, "[ostree] %s is empty", key))
		}
		return v
	}
	s.repoDir = get("repodir", true)
	s.remote = get("remote", true)
	s.ref = get("ref", true)
	s.refDeploy = get("ref_deploy", false)
	s.os = get("os", true)
	s.checkout = get("checkout", true)
	s.kargs = strings.Fields(get("kargs", false))
	s.pullURL, s.pullURLKey = get("pull_url", false), "pull_url"
	if s.pullURL == "" {
		prod := false
		if b.Config.Has("build", "use_production_ostree") {
			var err error
			if prod, err = b.Config.Bool("build", "use_production_ostree"); err != nil {
				s.setErr(keyErr(b, "build", "use_production_ostree", err))
			}
		}
		key, why := "dev_pull_url", "without --use-production-ostree"
		if prod {
			key, why = "prod_pull_url", "with --use-production-ostree"
		}
		s.pullURLKey = key
		if s.pullURL = get(key, false); s.pullURL == "" && s.err == nil {
			s.setErr(keyErrorf(b, "ostree", "pull_url", "[ostree] pull_url is empty and so is %s (used %s): set the URL of the OSTree repository to build from", key, why))
		}
	}
	if s.deployURL = get("deploy_url", false); s.deployURL == "" {
		s.deployURL = s.pullURL
	}
	if s.refDeploy == "" {
		s.refDeploy = s.ref
	}
	if v := get("gpg_verify", true); v != "" {
		var err error
		if s.gpgVerify, err = b.Config.Bool("ostree", "gpg_verify"); err != nil {
			s.setErr(keyErr(b, "ostree", "gpg_verify", err))
		}
	}
	if b.Config.Has("ostree", "enable_p2p_updates") {
		var err error
		if s.p2p, err = b.Config.Bool("ostree", "enable_p2p_updates"); err != nil {
			s.setErr(keyErr(b, "ostree", "enable_p2p_updates", err))
		}
	}
	if c := filepath.Clean(s.checkout); s.checkout != "" && (!filepath.IsAbs(c) || strings.Count(c, "/") < 2) {
		s.setErr(keyErrorf(b, "ostree", "checkout", "[ostree] checkout = %s: must be an absolute path of a scratch directory (it is deleted and recreated)", s.checkout))
	}
	if s.err != nil {
		return s, s.err
	}
	var err error
	s.keys, err = trustedKeys(b, s.gpgVerify)
	return s, err
}

// trustedKeys lists keys/*.asc of [build] datadir (default srcdir/data),
// then of [build] localdatadir (localdir/data, set only with a localdir),
// each sorted: where EIB's get_ostree_trusted_keys (lib/eib.py) looks. None
// while gpg_verify is on is an error naming both places.
func trustedKeys(b *build.Build, gpgVerify bool) ([]string, error) {
	dir := func(key, def string) (string, error) {
		if b.Config == nil || !b.Config.Has("build", key) {
			return def, nil
		}
		v, err := b.Get("build", key)
		if v == "" {
			v = def
		}
		return v, keyErr(b, "build", key, err)
	}
	datadir, err := dir("datadir", filepath.Join(b.SrcDir, "data"))
	if err != nil {
		return nil, err
	}
	dirs := []string{filepath.Join(datadir, "keys")}
	if b.LocalDir != "" {
		localdata, err := dir("localdatadir", filepath.Join(b.LocalDir, "data"))
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, filepath.Join(localdata, "keys"))
	}
	var keys []string
	for _, d := range dirs {
		found, err := filepath.Glob(filepath.Join(d, "*.asc"))
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		keys = append(keys, found...)
	}
	if len(keys) == 0 && gpgVerify {
		where := strings.Join(dirs, " and ")
		if b.LocalDir == "" {
			where += " (and <localdir>/data/keys: no --localdir given)"
		}
		return nil, keyErrorf(b, "ostree", "gpg_verify", "[ostree] gpg_verify is on but no trusted key (*.asc) was found in %s", where)
	}
	return keys, nil
}

// verifySummary: EIB checks the summary signature except over https,
// where the transport is trusted and mirrors often serve an unsigned
// summary.
func verifySummary(gpgVerify bool, url string) bool {
	return gpgVerify && !strings.HasPrefix(strings.ToLower(url), "https://")
}

func (st ostreeStage) Run(ctx context.Context, b *build.Build) error {
	s := st.s
	var err error
	repo := ostree.Open(s.repoDir)
	if !repo.Exists() {
		b.Log.Printf("creating the OSTree cache repo %s", s.repoDir)
		if repo, err = ostree.Init(ctx, s.repoDir, ostree.ModeBare); err != nil {
			return err
		}
	}
	// Recreated every build: the URL (a test server's port) and the keys
	// may have changed since the cache was filled.
	if err := repo.AddRemote(ctx, ostree.Remote{
		Name: s.remote, URL: s.pullURL, Branches: []string{s.ref},
		GPGVerify: s.gpgVerify, GPGVerifySummary: verifySummary(s.gpgVerify, s.pullURL),
		Keys: s.keys,
	}); err != nil {
		return err
	}
	b.Log.Printf("pulling %s from %s (gpg_verify %v, %d trusted keys)", s.ref, s.pullURL, s.gpgVerify, len(s.keys))
	// ostree's progress goes through the build's terminal: its own bar
	// on a TTY, log lines otherwise.
	progress := buildTerminal(b).ToolWriter("")
	// A plain pull, then the local branches from the remote ref, as
	// EIB's stages/eib_ostree: a --mirror pull of a repo with a
	// collection ID (every Endless OS repo) writes the ref as a mirror
	// of (collection, ref), not as a local branch.
	err = repo.Pull(ctx, ostree.Pull{
		Remote: s.remote, Refs: []string{s.ref},
		Attempts: pullAttempts, RetryDelay: 2 * time.Second,
		Progress: progress,
	})
	progress.Close()
	if err != nil {
		return err
	}
	commit, err := repo.RevParse(ctx, s.remote+":"+s.ref)
	if err != nil {
		return err
	}
	version, err := repo.CommitVersion(ctx, commit)
	if err != nil {
		return err
	}
	for _, ref := range []string{s.ref, s.refDeploy} {
		if err := repo.CreateRef(ctx, ref, commit); err != nil {
			return err
		}
	}
	if err := repo.UpdateSummary(ctx, nil); err != nil {
		return err
	}
	if err := repo.PruneRefsOnly(ctx); err != nil {
		return err
	}
	b.OSTree = s.info(commit, version)
	b.Log.Printf("pulled %s %s (version %q)", s.ref, commit, version)
	return nil
}

func (s ostreeSettings) info(commit, version string) build.OSTreeInfo {
	return build.OSTreeInfo{
		RepoDir: s.repoDir, Remote: s.remote, PullURL: s.pullURL,
		Ref: s.ref, RefDeploy: s.refDeploy, Commit: commit, Version: version,
		DeployURL: s.deployURL, OS: s.os,
	}
}

func (s *ostreeSettings) setErr(err error) {
	if s.err == nil {
		s.err = err
	} else {
		s.err = errors.Join(s.err, err)
	}
}
