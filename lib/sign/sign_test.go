package sign_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/sign/signtest"
)

func writeData(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	data := bytes.Repeat([]byte("eib signs images\x00\xff"), 100000)
	p := filepath.Join(dir, "data.img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func TestKeyFileSignatureVerifiesWithGPG(t *testing.T) {
	for _, pass := range []string{"", "s3cret pass"} {
		t.Run("passphrase="+pass, func(t *testing.T) {
			dir := t.TempDir()
			key := signtest.NewKey(t, dir, pass)
			passFile := ""
			if pass != "" {
				passFile = filepath.Join(dir, "pass")
				os.WriteFile(passFile, []byte(pass+"\n"), 0o600)
			}
			data, content := writeData(t, dir)
			s, err := sign.New(sign.Options{KeyFile: key.Secret, PassphraseFile: passFile}, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			if s == nil {
				t.Fatal("no signer for an existing key file")
			}
			st, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// Written in uneven pieces, as a pipeline would.
			for i := 0; i < len(content); i += 77777 {
				st.Write(content[i:min(i+77777, len(content))])
			}
			var sig bytes.Buffer
			if err := st.Finish(&sig); err != nil {
				t.Fatal(err)
			}
			cs, ok := st.(sign.Checksummer)
			if !ok {
				t.Fatalf("a v4 key's stream %T gives no SHA-256", st)
			}
			if want := sha256.Sum256(content); !bytes.Equal(cs.SHA256(), want[:]) {
				t.Errorf("SHA256() = %x, want %x", cs.SHA256(), want)
			}
			if !strings.HasPrefix(sig.String(), "-----BEGIN PGP SIGNATURE-----\n") || !strings.HasSuffix(sig.String(), "-----END PGP SIGNATURE-----\n") {
				t.Errorf("not an armored signature:\n%s", sig.String())
			}
			asc := data + ".asc"
			os.WriteFile(asc, sig.Bytes(), 0o644)
			if err := signtest.Verify(t, key.Public, data, asc); err != nil {
				t.Fatal(err)
			}
			// A modified file must not verify.
			os.WriteFile(data, append(content, 'x'), 0o644)
			if err := signtest.Verify(t, key.Public, data, asc); err == nil {
				t.Fatal("gpg --verify accepted a signature of other bytes")
			}
		})
	}
}

// signFile signs path into out through a Stream.
func signFile(ctx context.Context, s sign.Signer, path, out string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	st, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	defer st.Abort()
	if _, err := st.Write(data); err != nil {
		return err
	}
	var sig bytes.Buffer
	if err := st.Finish(&sig); err != nil {
		return err
	}
	return os.WriteFile(out, sig.Bytes(), 0o644)
}

func TestKeyIDSelectsTheKeyInTheFile(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "")
	data, _ := writeData(t, dir)
	s, err := sign.New(sign.Options{KeyFile: key.Secret, KeyID: key.Fingerprint[24:]}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	out := data + ".asc"
	if err := signFile(context.Background(), s, data, out); err != nil {
		t.Fatal(err)
	}
	if err := signtest.Verify(t, key.Public, data, out); err != nil {
		t.Fatal(err)
	}
}

func TestNoKeyMeansNoSigner(t *testing.T) {
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, f) }
	s, err := sign.New(sign.Options{KeyFile: filepath.Join(t.TempDir(), "absent.asc")}, logf)
	if err != nil || s != nil {
		t.Fatalf("absent key file: signer %v, error %v; want none, no error", s, err)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "not signed") {
		t.Errorf("log = %q, want one line saying outputs are not signed", logged)
	}
}

func TestKeyErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "right")
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("wrong\n"), 0o600)
	junk := filepath.Join(dir, "junk.asc")
	os.WriteFile(junk, []byte("not a key"), 0o600)
	for _, tc := range []struct {
		name    string
		o       sign.Options
		want    string
		setting sign.Setting
	}{
		{"no passphrase", sign.Options{KeyFile: key.Secret}, "signing_passphrase_file", sign.PassphraseSetting},
		{"wrong passphrase", sign.Options{KeyFile: key.Secret, PassphraseFile: wrong}, "wrong passphrase in " + wrong, sign.PassphraseSetting},
		{"missing passphrase file", sign.Options{KeyFile: key.Secret, PassphraseFile: wrong + ".absent"}, "passphrase", sign.PassphraseSetting},
		{"public key only", sign.Options{KeyFile: key.Public}, "no usable secret signing key", sign.KeyFileSetting},
		{"unknown key id", sign.Options{KeyFile: key.Secret, PassphraseFile: wrong, KeyID: "DEADBEEF"}, "no secret key with id DEADBEEF", sign.KeyIDSetting},
		{"junk", sign.Options{KeyFile: junk}, "not an OpenPGP key file", sign.KeyFileSetting},
		{"a directory", sign.Options{KeyFile: dir}, "signing key", sign.KeyFileSetting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sign.New(tc.o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var se *sign.SettingError
			if !errors.As(err, &se) || se.Setting != tc.setting {
				t.Errorf("error %#v, want a *SettingError of %s", err, tc.setting)
			}
		})
	}
}

// Check fails where the gpg fallback could only fail when it signs, without
// starting gpg.
func TestCheckFailsBeforeSigningWhatGPGWouldRefuse(t *testing.T) {
	dir := t.TempDir()
	absent := filepath.Join(dir, "absent.asc")
	_, err := sign.Check(sign.Options{KeyFile: absent, KeyID: "ABCDEF01", GnupgHome: filepath.Join(dir, "no-gnupg")})
	var se *sign.SettingError
	if err == nil || !errors.As(err, &se) || se.Setting != sign.GnupgHomeSetting || se.Setting.ConfigKey() != "gpg_homedir" ||
		!strings.Contains(err.Error(), "no-gnupg is not a directory") {
		t.Errorf("missing gpg home: %v", err)
	}
	if _, err := exec.LookPath("gpg"); err == nil {
		_, err = sign.Check(sign.Options{KeyFile: absent, KeyID: "ABCDEF01", GnupgHome: dir, PassphraseFile: absent})
		if err == nil || !errors.As(err, &se) || se.Setting != sign.PassphraseSetting {
			t.Errorf("missing passphrase file for gpg: %v", err)
		}
		if s, err := sign.Check(sign.Options{KeyFile: absent, KeyID: "ABCDEF01", GnupgHome: dir}); err != nil || s == nil {
			t.Errorf("gpg with an existing home: %v, %v", s, err)
		}
	}
	// No key configured: nothing to check, nothing signed.
	if s, err := sign.Check(sign.Options{KeyFile: absent}); err != nil || s != nil {
		t.Errorf("no key: %v, %v", s, err)
	}
}

func TestCheckPublicKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "")
	if err := sign.CheckPublicKeyFile(key.Public); err != nil {
		t.Errorf("public key: %v", err)
	}
	junk := filepath.Join(dir, "junk.asc")
	os.WriteFile(junk, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 at all\n-----END PGP PUBLIC KEY BLOCK-----\n"), 0o644)
	if err := sign.CheckPublicKeyFile(junk); err == nil || !strings.Contains(err.Error(), "junk.asc: not an OpenPGP public key") {
		t.Errorf("junk: %v", err)
	}
	if err := sign.CheckPublicKeyFile(filepath.Join(dir, "absent.asc")); err == nil {
		t.Error("absent file: no error")
	}
}

func TestGPGFallbackSignsWithKeyID(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg is not installed (apt-get install gnupg)")
	}
	// A short home path: gpg-agent's socket path is limited in length.
	home, err := os.MkdirTemp("", "eib-gh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	// A passphrase-protected key, as a real keyring holds.
	gen := exec.Command("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "gpg pass",
		"--quick-gen-key", "eib gpg test <gpg@eib.invalid>", "ed25519", "sign", "never")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gpg --quick-gen-key: %v\n%s", err, out)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "pub.asc")
	if out, err := exec.Command("gpg", "--homedir", home, "--armor", "--output", pub, "--export", "gpg@eib.invalid").CombinedOutput(); err != nil {
		t.Fatalf("gpg --export: %v\n%s", err, out)
	}
	data, _ := writeData(t, dir)
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("gpg pass\n"), 0o600)
	s, err := sign.New(sign.Options{KeyFile: filepath.Join(dir, "absent.asc"), KeyID: "gpg@eib.invalid", GnupgHome: home, PassphraseFile: pass}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*sign.GPG); !ok {
		t.Fatalf("signer %T, want the gpg fallback", s)
	}
	asc := data + ".asc"
	if err := signFile(context.Background(), s, data, asc); err != nil {
		t.Fatal(err)
	}
	if err := signtest.Verify(t, pub, data, asc); err != nil {
		t.Fatal(err)
	}
	// An unknown key id fails with gpg's own message.
	bad := &sign.GPG{KeyID: "nobody@eib.invalid", Home: home}
	err = signFile(context.Background(), bad, data, data+".bad.asc")
	if err == nil || !strings.Contains(err.Error(), "nobody@eib.invalid") {
		t.Fatalf("error %v, want gpg's complaint about the key", err)
	}
}
