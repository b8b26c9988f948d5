// Package signtest makes throw-away OpenPGP keys for tests and checks
// detached signatures with the real gpg.
package signtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Key is a throw-away key pair exported to files.
type Key struct {
	Secret      string // armored exported secret key
	Public      string // armored exported public key
	Fingerprint string // upper-case hex
}

// NewKey makes an Ed25519 key (v4, as gpg 2.2 makes) in dir, its secret
// part encrypted with passphrase when passphrase is not empty.
func NewKey(t testing.TB, dir, passphrase string) Key {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity("eib test", "throw-away", "test@eib.invalid", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	aw, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := e.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	// Serialize the secret key with its self-signatures first, then
	// encrypt it if asked.
	if passphrase != "" {
		if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			t.Fatal(err)
		}
	}
	var sec bytes.Buffer
	aw, _ = armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivateWithoutSigning(aw, nil); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	k := Key{
		Secret:      filepath.Join(dir, "secret.asc"),
		Public:      filepath.Join(dir, "public.asc"),
		Fingerprint: fingerprint(e.PrimaryKey.Fingerprint),
	}
	if err := os.WriteFile(k.Secret, sec.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.Public, pub.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func fingerprint(b []byte) string {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}

// Verify checks sig (an armored detached signature) of file with `gpg
// --verify` against the public key file pub, in a temporary GNUPGHOME;
// it returns gpg's error (and output) instead of failing the test.
func Verify(t testing.TB, pub, file, sig string) error {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not installed: run make deps (make test does)")
	}
	home, err := os.MkdirTemp("", "eib-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	}()
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--import", pub).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import %s: %v\n%s", pub, err, out)
	}
	out, err := exec.Command("gpg", "--homedir", home, "--batch", "--verify", sig, file).CombinedOutput()
	if err != nil {
		return &VerifyError{Err: err, Output: string(out)}
	}
	return nil
}

// VerifyError is a failed gpg --verify.
type VerifyError struct {
	Err    error
	Output string
}

func (e *VerifyError) Error() string { return "gpg --verify: " + e.Err.Error() + "\n" + e.Output }
