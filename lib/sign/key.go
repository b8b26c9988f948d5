package sign

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key signs in process with an OpenPGP secret key read from a file.
type Key struct {
	file   string
	key    openpgp.Key
	config *packet.Config
}

// LoadKey reads an exported secret key file (armored or binary), decrypts
// it with the passphrase in passphraseFile ("" = not encrypted) and picks
// its signing key: the one whose id or fingerprint ends with keyID when
// keyID is not empty, else the first valid signing key. An error is a
// *SettingError naming the setting at fault.
func LoadKey(keyFile, passphraseFile, keyID string) (*Key, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, settingErr(KeyFileSetting, fmt.Errorf("signing key: %w", err))
	}
	var ring openpgp.EntityList
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		ring, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		ring, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, settingErr(KeyFileSetting, fmt.Errorf("signing key %s: not an OpenPGP key file: %w", keyFile, err))
	}
	var pass []byte
	if passphraseFile != "" {
		p, err := os.ReadFile(passphraseFile)
		if err != nil {
			return nil, settingErr(PassphraseSetting, fmt.Errorf("signing key %s: passphrase: %w", keyFile, err))
		}
		line, _, _ := bufio.NewReader(bytes.NewReader(p)).ReadLine()
		pass = line
	}
	want := strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(keyID, "0x"), "0X"))
	now := time.Now()
	for _, e := range ring {
		if e.PrivateKey == nil {
			continue
		}
		var cand []openpgp.Key
		if want == "" {
			k, ok := e.SigningKey(now)
			if !ok {
				continue
			}
			cand = append(cand, k)
		} else {
			cand = append(cand, openpgp.Key{Entity: e, PublicKey: e.PrimaryKey, PrivateKey: e.PrivateKey})
			for _, sk := range e.Subkeys {
				cand = append(cand, openpgp.Key{Entity: e, PublicKey: sk.PublicKey, PrivateKey: sk.PrivateKey, SelfSignature: sk.Sig})
			}
		}
		for _, k := range cand {
			if k.PrivateKey == nil || k.PrivateKey.Dummy() {
				continue
			}
			if want != "" && !strings.HasSuffix(fmt.Sprintf("%X", k.PublicKey.Fingerprint), want) {
				continue
			}
			if want != "" && !k.PublicKey.CanSign() {
				return nil, settingErr(KeyIDSetting, fmt.Errorf("signing key %s: key %s cannot sign", keyFile, keyID))
			}
			if k.PrivateKey.Encrypted {
				if pass == nil {
					return nil, settingErr(PassphraseSetting, fmt.Errorf("signing key %s is protected by a passphrase: set [image] signing_passphrase_file", keyFile))
				}
				if err := k.PrivateKey.Decrypt(pass); err != nil {
					return nil, settingErr(PassphraseSetting, fmt.Errorf("signing key %s: wrong passphrase in %s: %w", keyFile, passphraseFile, err))
				}
			}
			return &Key{file: keyFile, key: k, config: &packet.Config{DefaultHash: crypto.SHA256}}, nil
		}
	}
	if want != "" {
		return nil, settingErr(KeyIDSetting, fmt.Errorf("signing key %s: no secret key with id %s", keyFile, keyID))
	}
	return nil, settingErr(KeyFileSetting, fmt.Errorf("signing key %s: no usable secret signing key (a public key only?)", keyFile))
}

// String names the key: "key 0123456789ABCDEF from FILE".
func (k *Key) String() string {
	return fmt.Sprintf("key %X from %s", k.key.PublicKey.KeyId, k.file)
}

// Fingerprint returns the signing key's fingerprint in upper-case hex.
func (k *Key) Fingerprint() string { return fmt.Sprintf("%X", k.key.PublicKey.Fingerprint) }

// Begin starts a signature.
func (k *Key) Begin(ctx context.Context) (Stream, error) {
	pub := k.key.PublicKey
	sig := &packet.Signature{
		Version:           pub.Version,
		SigType:           packet.SigTypeBinary,
		PubKeyAlgo:        pub.PubKeyAlgo,
		Hash:              crypto.SHA256,
		CreationTime:      k.config.Now(),
		IssuerKeyId:       &pub.KeyId,
		IssuerKeyVersion:  uint8(pub.Version),
		IssuerFingerprint: pub.Fingerprint,
	}
	h, err := sig.PrepareSign(k.config)
	if err != nil {
		return nil, fmt.Errorf("signing with %s: %w", k, err)
	}
	s := &keyStream{key: k, sig: sig, h: h, plain: pub.Version < 6}
	if s.plain {
		return plainStream{s}, nil
	}
	return s, nil
}

type keyStream struct {
	key   *Key
	sig   *packet.Signature
	h     hash.Hash
	plain bool // h holds SHA-256 of the bytes alone (no salt)
	sum   []byte
	done  bool
}

func (s *keyStream) Write(p []byte) (int, error) { return s.h.Write(p) }

func (s *keyStream) Finish(w io.Writer) error {
	if s.done {
		return fmt.Errorf("signature with %s already finished", s.key)
	}
	s.done = true
	if s.plain {
		// The signature appends its trailer to h: keep the plain digest.
		if m, ok := s.h.(encoding.BinaryMarshaler); ok {
			state, err := m.MarshalBinary()
			if err == nil {
				c := crypto.SHA256.New()
				if err = c.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err == nil {
					s.sum = c.Sum(nil)
				}
			}
		}
	}
	if err := s.sig.Sign(s.h, s.key.key.PrivateKey, s.key.config); err != nil {
		return fmt.Errorf("signing with %s: %w", s.key, err)
	}
	aw, err := armor.Encode(w, openpgp.SignatureType, nil)
	if err != nil {
		return err
	}
	if err := s.sig.Serialize(aw); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

func (s *keyStream) Abort() { s.done = true }

// plainStream is a keyStream whose hash is the plain SHA-256 of the bytes.
type plainStream struct{ *keyStream }

func (s plainStream) SHA256() []byte { return s.sum }

// CheckPublicKeyFile reports whether path holds an OpenPGP public key
// (armored or binary), as `ostree remote add --gpg-import` needs of a
// trusted key. A key of an algorithm this package does not know passes: gpg
// may know it.
func CheckPublicKeyFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		_, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		_, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	var unsupported pgperrors.UnsupportedError
	if err != nil && !errors.As(err, &unsupported) {
		return fmt.Errorf("%s: not an OpenPGP public key: %w", path, err)
	}
	return nil
}
