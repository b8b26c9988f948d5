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
	"os/exec"
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
			return nil, settingErr(KeyFileSetting, fmt.Errorf("signing key %s: %w", o.KeyFile, err))
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

// ConfigReader reads typed settings, each by section and key, keeping its
// own errors (*config.Reader is one: Path of an absolute path, String of
// any text; "" for a key that is empty or unset).
type ConfigReader interface {
	Path(section, key string) string
	String(section, key string) string
}

// ConfigOptions reads the options from the [image] keys signing_key,
// signing_passphrase_file and gpg_homedir (paths) and signing_keyid (a
// string) through r (the image stage and `eib sign` read them alike); r
// keeps the errors.
func ConfigOptions(r ConfigReader) Options {
	return Options{
		KeyFile:        r.Path("image", "signing_key"),
		PassphraseFile: r.Path("image", "signing_passphrase_file"),
		KeyID:          r.String("image", "signing_keyid"),
		GnupgHome:      r.Path("image", "gpg_homedir"),
	}
}

// Setting names one of the Options.
type Setting string

const (
	KeyFileSetting    Setting = "KeyFile"
	PassphraseSetting Setting = "PassphraseFile"
	KeyIDSetting      Setting = "KeyID"
	GnupgHomeSetting  Setting = "GnupgHome"
)

// ConfigKey is the [image] key that ConfigOptions reads the setting from.
func (s Setting) ConfigKey() string {
	switch s {
	case KeyFileSetting:
		return "signing_key"
	case PassphraseSetting:
		return "signing_passphrase_file"
	case KeyIDSetting:
		return "signing_keyid"
	case GnupgHomeSetting:
		return "gpg_homedir"
	}
	return string(s)
}

// SettingError is an error caused by one of the Options (its message names
// the files), so that a caller can name its own setting for it.
type SettingError struct {
	Setting Setting
	Err     error
}

func (e *SettingError) Error() string { return e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

func settingErr(s Setting, err error) error { return &SettingError{Setting: s, Err: err} }

// Check returns the Signer the options describe, as New does (the key file
// is read and its passphrase tried), and also fails, without signing
// anything or starting gpg (which would start a gpg-agent in the home
// directory), where a gpg signer could only fail when it signs: gpg not
// installed, a home directory that does not exist. A build calls it before
// it begins.
func Check(o Options) (Signer, error) {
	s, err := New(o, nil)
	if err != nil {
		return nil, err
	}
	if g, ok := s.(*GPG); ok {
		if _, err := exec.LookPath("gpg"); err != nil {
			return nil, settingErr(KeyIDSetting, fmt.Errorf("signing key file %q absent: signing with %s needs gpg, which is not installed: %w", o.KeyFile, g, err))
		}
		if g.Home != "" {
			if st, err := os.Stat(g.Home); err != nil || !st.IsDir() {
				return nil, settingErr(GnupgHomeSetting, fmt.Errorf("signing key file %q absent: signing with %s, but %s is not a directory (the key is missing)", o.KeyFile, g, g.Home))
			}
		}
		if g.PassphraseFile != "" {
			if _, err := os.ReadFile(g.PassphraseFile); err != nil {
				return nil, settingErr(PassphraseSetting, fmt.Errorf("signing with %s: passphrase: %w", g, err))
			}
		}
	}
	return s, nil
}
