package ostree

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Mode is a repository mode.
type Mode string

// Repository modes eib uses: a bare repo holds files as they are deployed
// (fast to deploy from), an archive repo holds compressed objects (what an
// HTTP server publishes).
const (
	ModeBare    Mode = "bare"
	ModeArchive Mode = "archive"
)

// Repo is an OSTree repository on disk.
type Repo struct {
	Path string
}

// Open returns the repository at path without checking it.
func Open(path string) *Repo { return &Repo{Path: path} }

// Exists reports whether path holds a repository (its config file).
func (r *Repo) Exists() bool {
	st, err := os.Stat(filepath.Join(r.Path, "config"))
	return err == nil && st.Mode().IsRegular()
}

// Init creates the directory (and its parents) and a repository of mode
// in it.
func Init(ctx context.Context, path string, mode Mode) (*Repo, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("creating ostree repo: %w", err)
	}
	r := Open(path)
	if _, err := r.run(ctx, "init", "--mode="+string(mode)); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Repo) run(ctx context.Context, cmd string, args ...string) (string, error) {
	full := append([]string{cmd, "--repo=" + r.Path}, args...)
	return run(ctx, nil, full...)
}

// Remote is the configuration of one remote.
type Remote struct {
	Name     string
	URL      string
	Branches []string // the remote's branches ("" = all)
	// GPGVerify checks commit signatures; GPGVerifySummary checks the
	// summary signature.
	GPGVerify        bool
	GPGVerifySummary bool
	// Keys are ASCII-armored or binary public key files imported into the
	// remote's own keyring.
	Keys []string
}

// AddRemote replaces any remote of the same name with rem and imports its
// keys.
func (r *Repo) AddRemote(ctx context.Context, rem Remote) error {
	if err := r.DeleteRemote(ctx, rem.Name); err != nil {
		return err
	}
	args := []string{"add",
		"--set=gpg-verify=" + boolString(rem.GPGVerify),
		"--set=gpg-verify-summary=" + boolString(rem.GPGVerifySummary),
		rem.Name, rem.URL}
	args = append(args, rem.Branches...)
	if _, err := r.remote(ctx, args...); err != nil {
		return err
	}
	if len(rem.Keys) == 0 {
		return nil
	}
	args = []string{"gpg-import", rem.Name}
	for _, k := range rem.Keys {
		args = append(args, "--keyring="+k)
	}
	_, err := r.remote(ctx, args...)
	return err
}

// DeleteRemote deletes a remote if it exists.
func (r *Repo) DeleteRemote(ctx context.Context, name string) error {
	_, err := r.remote(ctx, "delete", "--if-exists", name)
	return err
}

func (r *Repo) remote(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"remote", args[0], "--repo=" + r.Path}, args[1:]...)
	return run(ctx, nil, full...)
}

// ConfigSet sets a key of the repository's config ("core.mode",
// "sysroot.bootloader", `remote "name".url`).
func (r *Repo) ConfigSet(ctx context.Context, key, value string) error {
	_, err := r.run(ctx, "config", "set", key, value)
	return err
}

// ConfigGet returns a key of the repository's config.
func (r *Repo) ConfigGet(ctx context.Context, key string) (string, error) {
	out, err := r.run(ctx, "config", "get", key)
	return strings.TrimSpace(out), err
}

// RevParse returns the checksum a ref ("ref" or "remote:ref") points at.
func (r *Repo) RevParse(ctx context.Context, ref string) (string, error) {
	out, err := r.run(ctx, "rev-parse", ref)
	return strings.TrimSpace(out), err
}

// CreateRef creates or moves ref to point at checksum (or another ref).
func (r *Repo) CreateRef(ctx context.Context, ref, target string) error {
	_, err := r.run(ctx, "refs", "--force", "--create="+ref, target)
	return err
}

// DeleteRef deletes a ref.
func (r *Repo) DeleteRef(ctx context.Context, ref string) error {
	_, err := r.run(ctx, "refs", "--delete", ref)
	return err
}

// Refs lists the refs of the repository (remote refs as "remote:ref").
func (r *Repo) Refs(ctx context.Context) ([]string, error) {
	out, err := r.run(ctx, "refs")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// PullLocal copies commit objects of refs (or checksums) from the
// repository at src. With remote set, the pulled refs are written as
// remote refs "remote:ref". Ref bindings are not checked: the deploy ref
// may be a local alias of the pulled branch.
func (r *Repo) PullLocal(ctx context.Context, src, remote string, refs ...string) error {
	args := []string{"--disable-fsync", "--disable-verify-bindings"}
	if remote != "" {
		args = append(args, "--remote="+remote)
	}
	args = append(args, src)
	args = append(args, refs...)
	_, err := r.run(ctx, "pull-local", args...)
	return err
}

// Signer names a GPG key that signs commits and summaries.
type Signer struct {
	KeyID   string
	Homedir string // "" = gpg's default
}

func (s *Signer) args() []string {
	if s == nil || s.KeyID == "" {
		return nil
	}
	args := []string{"--gpg-sign=" + s.KeyID}
	if s.Homedir != "" {
		args = append(args, "--gpg-homedir="+s.Homedir)
	}
	return args
}

// UpdateSummary regenerates the summary file, signed when signer is set.
func (r *Repo) UpdateSummary(ctx context.Context, signer *Signer) error {
	args := append([]string{"--update"}, signer.args()...)
	_, err := r.run(ctx, "summary", args...)
	return err
}

// PruneRefsOnly deletes every object not reachable from the last commit
// of a ref (prune --refs-only --depth=0).
func (r *Repo) PruneRefsOnly(ctx context.Context) error {
	_, err := r.run(ctx, "prune", "--refs-only", "--depth=0")
	return err
}

// Show returns ostree's description of a commit (ostree show).
func (r *Repo) Show(ctx context.Context, rev string) (string, error) {
	return r.run(ctx, "show", rev)
}

// CommitVersion returns the "version" metadata of a commit ("" if none).
func (r *Repo) CommitVersion(ctx context.Context, rev string) (string, error) {
	out, err := r.run(ctx, "show", "--print-metadata-key=version", rev)
	if err != nil {
		// A commit without the key is not an error for us.
		if e, ok := err.(*Error); ok && strings.Contains(e.Stderr, "No such metadata key") {
			return "", nil
		}
		return "", err
	}
	return strings.Trim(strings.TrimSpace(out), "'"), nil
}

// Commit describes one commit made with Repo.Commit.
type Commit struct {
	Branch  string
	Tree    string // directory to commit
	Subject string
	Version string // "version" metadata ("" = none)
	Signer  *Signer
}

// Commit commits a directory tree and returns the new checksum.
func (r *Repo) Commit(ctx context.Context, c Commit) (string, error) {
	args := []string{"--branch=" + c.Branch, "--tree=dir=" + c.Tree,
		"--subject=" + c.Subject, "--no-xattrs", "--canonical-permissions"}
	if c.Version != "" {
		args = append(args, "--add-metadata-string=version="+c.Version)
	}
	args = append(args, c.Signer.args()...)
	out, err := r.run(ctx, "commit", args...)
	return strings.TrimSpace(out), err
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
