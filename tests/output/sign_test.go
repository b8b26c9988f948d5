// Package output tests image signing through the real eib binary: `eib
// sign` (lib/eib.sh's sign_file) with the key taken from the flags, a
// hook's environment or the configuration, checked with the real gpg.
package output

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/sign/signtest"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	eibBin  string // the eib binary built for these tests
	srcRoot = harness.Src()
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// run runs a command with the real srcdir, a sysconfdir (default: none)
// and a temporary lock file.
func run(t *testing.T, env []string, name string, args ...string) harness.Result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = harness.Env(srcRoot, "/nonexistent/etc-eib", filepath.Join(t.TempDir(), "eib.lock"))
	// No EIB_IMAGE_* from the caller's environment.
	for i, e := range cmd.Env {
		if strings.HasPrefix(e, "EIB_IMAGE_") {
			cmd.Env[i] = "EIB_IGNORED_" + e
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return harness.Run(t, cmd)
}

func dataFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(p, []byte(`{"images": {"os.img.zst": {}}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func noTemp(t *testing.T, dir string) {
	t.Helper()
	if m, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %q", m)
	}
}

func TestSignWithTheDemoProductsKey(t *testing.T) {
	dir := t.TempDir()
	f := dataFile(t, dir)
	r := run(t, nil, eibBin, "sign", "--product", "demo", "--arch", "amd64", f)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	pub := filepath.Join(srcRoot, "data", "demo", "image-signing-key.DEMO-ONLY.asc")
	if err := signtest.Verify(t, pub, f, f+".asc"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Stderr, "image-signing-key.DEMO-ONLY.sec.asc") {
		t.Errorf("stderr does not name the key file: %s", r.Stderr)
	}
	noTemp(t, dir)
}

func TestSignWithTheSysconfdirKeyAndPassphraseFromConfig(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "etc-eib")
	os.Mkdir(sys, 0o700)
	key := signtest.NewKey(t, dir, "open sesame")
	// The default [image] signing_key is ${build:sysconfdir}/signing-key.asc.
	sec, _ := os.ReadFile(key.Secret)
	os.WriteFile(filepath.Join(sys, "signing-key.asc"), sec, 0o600)
	os.WriteFile(filepath.Join(sys, "passphrase"), []byte("open sesame\n"), 0o600)
	local := filepath.Join(dir, "local")
	os.MkdirAll(filepath.Join(local, "config"), 0o755)
	os.WriteFile(filepath.Join(local, "config", "private.ini"),
		[]byte("[image]\nsigning_passphrase_file = ${build:sysconfdir}/passphrase\n"), 0o644)
	f := dataFile(t, dir)
	out := filepath.Join(dir, "elsewhere.asc")
	r := run(t, []string{"EIB_SYSCONFDIR=" + sys}, eibBin, "sign", "--arch", "amd64", "--localdir", local, f, out)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if err := signtest.Verify(t, key.Public, f, out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f + ".asc"); !os.IsNotExist(err) {
		t.Errorf("OUT given, yet %s.asc was written", f)
	}
}

func TestSignFileInAHookUsesTheHookEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "")
	f := dataFile(t, dir)
	script := `set -e; . "$EIB_SRCDIR/lib/eib.sh"; sign_file "$1"`
	r := run(t, []string{"EIB_PROGRAM=" + eibBin, "EIB_IMAGE_SIGNING_KEY=" + key.Secret,
		"EIB_IMAGE_SIGNING_PASSPHRASE_FILE=", "EIB_IMAGE_SIGNING_KEYID=", "EIB_IMAGE_GPG_HOMEDIR="},
		"bash", "-c", script, "hook", f)
	if r.Code != 0 {
		t.Fatalf("sign_file: exit %d: %s", r.Code, r.Stderr)
	}
	if err := signtest.Verify(t, key.Public, f, f+".asc"); err != nil {
		t.Fatal(err)
	}
}

func TestSignFlagsWinOverTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "pw")
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw"), 0o600)
	f := dataFile(t, dir)
	r := run(t, []string{"EIB_IMAGE_SIGNING_KEY=/nonexistent/key.asc"}, eibBin, "sign",
		"--key", key.Secret, "--passphrase-file", filepath.Join(dir, "pw"), "--keyid", key.Fingerprint, f)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if err := signtest.Verify(t, key.Public, f, f+".asc"); err != nil {
		t.Fatal(err)
	}
}

func TestSignWithoutKeySaysSoAndSucceeds(t *testing.T) {
	dir := t.TempDir()
	f := dataFile(t, dir)
	r := run(t, nil, eibBin, "sign", "--arch", "amd64", f)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "/nonexistent/etc-eib/signing-key.asc absent") || !strings.Contains(r.Stderr, f+" not signed") {
		t.Errorf("stderr: %s", r.Stderr)
	}
	if _, err := os.Stat(f + ".asc"); !os.IsNotExist(err) {
		t.Error("a signature was written without a key")
	}
}

func TestSignErrorsExitOneNamingTheProblem(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "right")
	os.WriteFile(filepath.Join(dir, "wrong"), []byte("wrong\n"), 0o600)
	f := dataFile(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unreadable key", []string{"--key", "/etc/hostname", f}, "signing key /etc/hostname: not an OpenPGP key file"},
		{"wrong passphrase", []string{"--key", key.Secret, "--passphrase-file", filepath.Join(dir, "wrong"), f}, "wrong passphrase in " + filepath.Join(dir, "wrong")},
		{"no passphrase", []string{"--key", key.Secret, f}, "signing_passphrase_file"},
		{"missing file", []string{"--key", key.Secret, f + ".absent"}, f + ".absent"},
		{"no file", []string{"--key", key.Secret}, "give FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, eibBin, append([]string{"sign"}, tc.args...)...)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", r.Code, r.Stderr, tc.want)
			}
			if _, err := os.Stat(f + ".asc"); !os.IsNotExist(err) {
				t.Error("a failed signing left a signature")
			}
			noTemp(t, dir)
		})
	}
}
