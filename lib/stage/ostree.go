package stage

import (
	"context"
	"fmt"
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
}

func readOSTreeSettings(b *build.Build) (ostreeSettings, error) {
	var s ostreeSettings
	r := b.Config.Read()
	required := func(key, v string) string {
		if v == "" {
			r.Reject("ostree", key, "empty")
		}
		return v
	}
	s.repoDir = r.Path("ostree", "repodir")
	s.remote = required("remote", r.String("ostree", "remote"))
	s.ref = required("ref", r.String("ostree", "ref"))
	s.refDeploy = r.String("ostree", "ref_deploy")
	s.os = required("os", r.String("ostree", "os"))
	s.checkout = r.Path("ostree", "checkout")
	s.kargs = r.List("ostree", "kargs")
	s.pullURL, s.pullURLKey = r.URL("ostree", "pull_url"), "pull_url"
	if s.pullURL == "" {
		// [build] use_production_ostree: unset (a configuration made
		// without eib's options) is false.
		prod := r.Bool("build", "use_production_ostree")
		key, why := "dev_pull_url", "without --use-production-ostree"
		if prod {
			key, why = "prod_pull_url", "with --use-production-ostree"
		}
		s.pullURLKey = key
		if s.pullURL = r.URL("ostree", key); s.pullURL == "" {
			r.Reject("ostree", "pull_url", "empty and so is %s (used %s): set the URL of the OSTree repository to build from", key, why)
		}
	}
	if s.deployURL = r.URL("ostree", "deploy_url"); s.deployURL == "" {
		s.deployURL = s.pullURL
	}
	if s.refDeploy == "" {
		s.refDeploy = s.ref
	}
	s.gpgVerify = r.Bool("ostree", "gpg_verify")
	// EIB's key, not in config/defaults.ini: unset is off.
	s.p2p = r.Bool("ostree", "enable_p2p_updates")
	if s.checkout != "" && strings.Count(s.checkout, "/") < 2 {
		r.Reject("ostree", "checkout", "%s: must be an absolute path of a scratch directory (it is deleted and recreated)", s.checkout)
	}
	if err := r.Err(); err != nil {
		return s, err
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
	r := b.Config.Read()
	dir := func(key, def string) string {
		if v := optional(r, "build", key, r.Path); v != "" {
			return v
		}
		return def
	}
	datadir := dir("datadir", filepath.Join(b.SrcDir, "data"))
	dirs := []string{filepath.Join(datadir, "keys")}
	if b.LocalDir != "" {
		dirs = append(dirs, filepath.Join(dir("localdatadir", filepath.Join(b.LocalDir, "data")), "keys"))
	}
	if err := r.Err(); err != nil {
		return nil, err
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
		return nil, keyErrorf(b, "ostree", "gpg_verify", "[ostree] gpg_verify is on but no trusted key (*.asc) was found in %s: put the OS's signing key (an armored public key, gpg --export --armor KEYID) in <localdir>/data/keys/, or set gpg_verify = false for an unsigned repository", where)
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
	keys := fmt.Sprintf("%d trusted keys", len(s.keys))
	if len(s.keys) == 1 {
		keys = "1 trusted key"
	}
	b.Log.Printf("pulling %s from %s (gpg_verify %v, %s)", s.ref, s.pullURL, s.gpgVerify, keys)
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
