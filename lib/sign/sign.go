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
}

// Checksummer is a Stream whose signature hash is the plain SHA-256 of the
// signed bytes (OpenPGP v4 signatures): the file's checksum then comes for
// free. SHA256 returns it after Finish.
type Checksummer interface {
	Stream
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

// ConfigOptions reads the options from the [image] keys signing_key,
// signing_passphrase_file, signing_keyid and gpg_homedir through get (the
// image stage and `eib sign` read them alike).
func ConfigOptions(get func(section, key string) string) Options {
	return Options{
		KeyFile:        get("image", "signing_key"),
		PassphraseFile: get("image", "signing_passphrase_file"),
		KeyID:          get("image", "signing_keyid"),
		GnupgHome:      get("image", "gpg_homedir"),
	}
}
