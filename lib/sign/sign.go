// Package sign makes armored detached OpenPGP signatures of byte streams,
// so that a file can be signed while it is being written or read (one pass
// over the bytes, no second read).
//
// The key is an exported secret key file (armored or binary, as `gpg
// --export-secret-keys` writes it), optionally protected by a passphrase
// read from a file; signatures are made in process with
// github.com/ProtonMail/go-crypto. EIB's way, a key id in a gpg home
// directory, is kept as a fallback: the stream is then piped into `gpg
// --detach-sign`.
package sign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Signer starts detached signatures. A nil Signer means "do not sign";
// New returns one when no key is configured.
type Signer interface {
	// Begin starts the signature of one stream of bytes.
	Begin(ctx context.Context) (Stream, error)
	// String names the key for the log (key id and where it comes from).
	String() string
}

// Stream receives the bytes to sign.
type Stream interface {
	io.Writer
	// Finish writes the armored detached signature of every byte written
	// so far to w. The stream cannot be used afterwards.
	Finish(w io.Writer) error
	// Abort releases the stream without a signature (after an error).
	// It is safe to call after Finish.
	Abort()
	// SHA256 returns the plain SHA-256 digest of the signed bytes when the
	// signature hash was SHA-256 without a salt (the digest then costs
	// nothing extra), after Finish; nil otherwise.
	SHA256() []byte
}

// Options name the key. KeyFile wins when it exists; otherwise KeyID with
// GnupgHome uses gpg; with neither, nothing is signed.
type Options struct {
	// KeyFile is an exported OpenPGP secret key (armored or binary).
	KeyFile string
	// PassphraseFile holds the key's passphrase (first line); "" = none.
	PassphraseFile string
	// KeyID selects the key: in KeyFile, the (sub)key whose id or
	// fingerprint ends with it; with gpg, the --local-user.
	KeyID string
	// GnupgHome is gpg's home directory for the KeyID fallback; "" =
	// gpg's default.
	GnupgHome string
}

// New returns the Signer the options describe, or nil (and no error) when
// no key is configured or the key file is absent; logf, when not nil, says
// which it chose.
func New(o Options, logf func(format string, args ...any)) (Signer, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if o.KeyFile != "" {
		_, err := os.Stat(o.KeyFile)
		switch {
		case err == nil:
			k, err := LoadKey(o.KeyFile, o.PassphraseFile, o.KeyID)
			if err != nil {
				return nil, err
			}
			logf("signing with %s", k)
			return k, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("signing key %s: %w", o.KeyFile, err)
		}
	}
	if o.KeyID != "" {
		g := &GPG{KeyID: o.KeyID, Home: o.GnupgHome, PassphraseFile: o.PassphraseFile}
		logf("signing key file %q absent: signing with %s", o.KeyFile, g)
		return g, nil
	}
	if o.KeyFile != "" {
		logf("signing key file %s absent and no signing key id set: outputs are not signed", o.KeyFile)
	} else {
		logf("no signing key configured: outputs are not signed")
	}
	return nil, nil
}

// File signs the whole file at path and writes the armored detached
// signature to out, under a temporary name renamed when complete.
func File(ctx context.Context, s Signer, path, out string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer st.Abort()
	if _, err := io.Copy(st, in); err != nil {
		return fmt.Errorf("signing %s: %w", path, err)
	}
	return WriteAtomic(out, st.Finish)
}

// WriteAtomic creates path through a temporary file in the same
// directory, filled by write and renamed over path only when write and the
// close succeed; on failure the temporary file is removed.
func WriteAtomic(path string, write func(w io.Writer) error) (err error) {
	f, err := CreateTemp(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return nil
}

// CreateTemp creates the temporary file for path: a hidden name in the
// same directory (".NAME.tmp-*"), mode 0644.
func CreateTemp(path string) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}
