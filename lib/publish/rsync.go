package publish

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/proc"
)

// Rsync publishes with rsync over ssh (the field's standard tools) to
// Host:Path/<outversion>. Host keys are checked against KnownHosts only.
type Rsync struct {
	Host, Path string
	Key        string
	KnownHosts string
	Port       string
	Options    []string // extra rsync options
	Logf       func(format string, args ...any)
}

func newRsync(s Settings) (*Rsync, error) {
	host, p, ok := strings.Cut(s.RsyncDest, ":")
	if !ok || host == "" || p == "" {
		return nil, fmt.Errorf("[publish] rsync_dest = %s: want [user@]host:/path", s.RsyncDest)
	}
	if !readable(s.SSHKnownHosts) {
		return nil, fmt.Errorf("[publish] ssh_known_hosts = %s: not a readable file; put the host key of %s there", s.SSHKnownHosts, host)
	}
	if !readable(s.SSHKey) {
		return nil, fmt.Errorf("[publish] ssh_key = %s: not a readable private key", s.SSHKey)
	}
	port := s.SSHPort
	if port == "" {
		port = "22"
	}
	return &Rsync{Host: host, Path: strings.TrimSuffix(p, "/"), Key: s.SSHKey, KnownHosts: s.SSHKnownHosts,
		Port: port, Options: s.RsyncOptions, Logf: s.Logf}, nil
}

func readable(p string) bool {
	if p == "" {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func (r *Rsync) String() string { return r.Host + ":" + r.Path }

// sshArgs are ssh's options: batch mode, strict host keys from KnownHosts
// only, this key only.
func (r *Rsync) sshArgs() []string {
	return []string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + r.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", r.Key, "-p", r.Port}
}

// remote runs a shell command line on the host.
func (r *Rsync) remote(ctx context.Context, stdin []byte, cmd string) (string, error) {
	c := proc.Command{Name: "ssh", Args: append(r.sshArgs(), r.Host, cmd)}
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	out, _, err := c.Run(ctx)
	return out, err
}

// Publish uploads the release to Path/.<outversion>.inprogress with rsync
// (after removing the stale staging copies of other outversions:
// StaleAfter)
// (--partial resumes an interrupted upload, --delete drops what it left
// that this build does not have), verifies it there with sha256sum, then
// renames it to Path/<outversion>, which it never replaces.
func (r *Rsync) Publish(ctx context.Context, dir, outversion string) error {
	if _, err := release(dir); err != nil {
		return err
	}
	sums, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		return err
	}
	final := path.Join(r.Path, outversion)
	staging := path.Join(r.Path, stagingName(outversion))
	qFinal, qStaging := shellQuote(final), shellQuote(staging)
	if _, err := r.remote(ctx, nil, "test -e "+qFinal); err == nil {
		got, err1 := r.remote(ctx, nil, "cat "+qFinal+"/SHA256SUMS")
		_, err2 := r.remote(ctx, nil, "cd "+qFinal+" && sha256sum --quiet --strict -c SHA256SUMS")
		if err1 == nil && err2 == nil && got == string(sums) {
			r.Logf("%s:%s is already published", r.Host, final)
			return nil
		}
		return fmt.Errorf("%s:%s exists and differs from this build; not replacing a published release", r.Host, final)
	} else if pe, ok := err.(*proc.Error); !ok || pe.ExitStatus != 1 {
		return fmt.Errorf("rsync_dest %s: %w", r, err)
	}

	removed, err := r.remote(ctx, nil, staleScript(r.Path, outversion, time.Now().Add(-StaleAfter)))
	if err != nil {
		return fmt.Errorf("removing stale staging copies in %s:%s: %w", r.Host, r.Path, err)
	}
	for _, d := range strings.Fields(removed) {
		r.Logf("removed %s:%s: the staging copy of an interrupted publish (unchanged for %s)", r.Host, path.Join(r.Path, d), StaleAfter)
	}

	// rsync's -e is a command line it splits itself: a script with the
	// options baked in needs no quoting there.
	work, err := os.MkdirTemp("", "eib-rsync.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var script strings.Builder
	script.WriteString("#!/bin/sh\nexec ssh")
	for _, a := range r.sshArgs() {
		script.WriteString(" " + shellQuote(a))
	}
	script.WriteString(" \"$@\"\n")
	ssh := filepath.Join(work, "ssh")
	if err := os.WriteFile(ssh, []byte(script.String()), 0o700); err != nil {
		return err
	}
	args := []string{"-a", "--partial", "--delete", "--mkpath", "--exclude=/.*", "-e", ssh}
	args = append(args, r.Options...)
	args = append(args, "--", dir+"/", r.Host+":"+staging+"/")
	if _, _, err := (proc.Command{Name: "rsync", Args: args}).Run(ctx); err != nil {
		return fmt.Errorf("uploading to %s:%s: %w", r.Host, staging, err)
	}
	if _, err := r.remote(ctx, nil, "cd "+qStaging+" && sha256sum --quiet --strict -c SHA256SUMS && sync . * && test ! -e "+
		qFinal+" && mv -T "+qStaging+" "+qFinal+" && sync "+qFinal+"/.."); err != nil {
		return fmt.Errorf("verifying or renaming %s:%s failed: %w", r.Host, staging, err)
	}
	r.Logf("published %s:%s", r.Host, final)
	return nil
}

// Put copies path as Path/name through a flushed temporary file there.
func (r *Rsync) Put(ctx context.Context, p, name string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	tmp := shellQuote(path.Join(r.Path, "."+name+".tmp"))
	_, err = r.remote(ctx, data, "mkdir -p -- "+shellQuote(r.Path)+" && cat > "+tmp+" && sync "+tmp+
		" && mv -f "+tmp+" "+shellQuote(path.Join(r.Path, name)))
	return err
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
