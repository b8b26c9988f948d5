package publish

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

func TestSHA256SumsListsEveryOutputAndIsSigned(t *testing.T) {
	harness.Need(t, "gpg", "sha256sum")
	r := makeRelease(t, 4096)
	sums := string(r.files["SHA256SUMS"])
	for name := range r.files {
		if name != "SHA256SUMS" && !strings.Contains(sums, "  "+name+"\n") {
			t.Errorf("SHA256SUMS does not list %s:\n%s", name, sums)
		}
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = r.outdir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}

	if _, err := os.Stat(filepath.Join(r.outdir, "SHA256SUMS.asc")); !os.IsNotExist(err) {
		t.Errorf("SHA256SUMS.asc exists without a signing key (err %v)", err)
	}

	// Signed with the images' key through `eib sign`.
	home := t.TempDir()
	gen := exec.Command("gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", "publish-test@eib.invalid", "ed25519", "sign", "never")
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gpg key: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	keyFile := filepath.Join(t.TempDir(), "signing-key.asc")
	export := exec.Command("gpg", "--homedir", home, "--batch", "--armor", "--output", keyFile, "--export-secret-keys", "publish-test@eib.invalid")
	if out, err := export.CombinedOutput(); err != nil {
		t.Fatalf("gpg --export-secret-keys: %v\n%s", err, out)
	}
	signEnv := func(key string) []string {
		return r.env(t, "EIB_PROGRAM="+eibBin, "EIB_IMAGE_SIGNING_KEY="+key, "EIB_IMAGE_SIGNING_PASSPHRASE_FILE=",
			"EIB_IMAGE_SIGNING_KEYID=", "EIB_IMAGE_GPG_HOMEDIR=")
	}
	if out, err := runHook(t, "publish", "42-sha256sums", signEnv(keyFile)); err != nil {
		t.Fatalf("42-sha256sums: %v\n%s", err, out)
	}
	verify := exec.Command("gpg", "--homedir", home, "--batch", "--verify", "SHA256SUMS.asc", "SHA256SUMS")
	verify.Dir = r.outdir
	if out, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("gpg --verify SHA256SUMS.asc: %v\n%s", err, out)
	}
	if strings.Contains(string(mustRead(t, filepath.Join(r.outdir, "SHA256SUMS"))), "SHA256SUMS.asc") {
		t.Error("SHA256SUMS lists its own signature")
	}

	bad := filepath.Join(t.TempDir(), "not-a-key.asc")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runHook(t, "publish", "42-sha256sums", signEnv(bad))
	if err == nil || !strings.Contains(out, "signing SHA256SUMS with the images' key") || !strings.Contains(out, bad) {
		t.Errorf("signing with a broken key: err %v, want an error naming the key file:\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLocalDirPublishesCompleteReleaseAtomically(t *testing.T) {
	harness.Need(t, "rsync", "sha256sum")
	r := makeRelease(t, 1<<20)
	dest := filepath.Join(t.TempDir(), "images")
	env := r.env(t, "EIB_PUBLISH_DIR="+dest)

	out, err := runHook(t, "publish", "50-local-dir", env)
	if err != nil {
		t.Fatalf("50-local-dir: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, filepath.Join(dest, "."+r.ov+".inprogress"))

	// A rerun of the same build is a no-op.
	if out, err := runHook(t, "publish", "50-local-dir", env); err != nil || !strings.Contains(out, "already published") {
		t.Errorf("rerun: err %v, want \"already published\":\n%s", err, out)
	}
	// A different build under the same name never replaces a release.
	if err := os.WriteFile(filepath.Join(r.outdir, r.ov+".manifest.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runHook(t, "publish", "42-sha256sums", env); err != nil {
		t.Fatal(err, out)
	}
	out, err = runHook(t, "publish", "50-local-dir", env)
	if err == nil || !strings.Contains(out, "differs from this build") {
		t.Errorf("publishing over a different release: err %v, want a refusal:\n%s", err, out)
	}
	if got := mustRead(t, filepath.Join(dest, r.ov, r.ov+".manifest.json")); string(got) == "{}\n" {
		t.Error("the published release was modified")
	}
}

func TestLocalDirCompletesAnInterruptedCopy(t *testing.T) {
	harness.Need(t, "rsync", "sha256sum")
	r := makeRelease(t, 1<<20)
	dest := filepath.Join(t.TempDir(), "images")
	staging := filepath.Join(dest, "."+r.ov+".inprogress")
	// What an interrupted copy leaves: part of the image and a stray file.
	if err := os.MkdirAll(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	img := r.files[r.ov+".img.zst"]
	if err := os.WriteFile(filepath.Join(staging, r.ov+".img.zst"), img[:len(img)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(staging, "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runHook(t, "publish", "50-local-dir", r.env(t, "EIB_PUBLISH_DIR="+dest))
	if err != nil {
		t.Fatalf("50-local-dir after an interruption: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, staging)
}

func TestPublishHooksAreNoOpsWhenUnconfigured(t *testing.T) {
	r := makeRelease(t, 1024)
	// No aws, rsync or ssh on PATH: unconfigured destinations need none.
	empty := t.TempDir()
	for _, hook := range []string{"50-local-dir", "52-rsync", "54-s3"} {
		out, err := runHook(t, "publish", hook, r.env(t, "PATH="+empty+":/nonexistent"))
		if err != nil || out != "" {
			t.Errorf("%s unconfigured: err %v, output %q; want a silent no-op", hook, err, out)
		}
	}
}

func TestS3ConfiguredWithoutAWSClientIsAClearError(t *testing.T) {
	r := makeRelease(t, 1024)
	bin := t.TempDir()
	// Only bash and coreutils: no aws.
	for _, tool := range []string{"bash", "env"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skip(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runHook(t, "publish", "54-s3", r.env(t, "PATH="+bin, "EIB_PUBLISH_S3_BUCKET=images"))
	if err == nil || !strings.Contains(out, "aws command is missing") || !strings.Contains(out, "s3_bucket = images") {
		t.Errorf("54-s3 without aws: err %v, want an error naming s3_bucket and aws:\n%s", err, out)
	}
}

// TestCorruptOutputIsNeverPublished damages the image after SHA256SUMS was
// written: the copy cannot verify, so nothing appears under the final name.
func TestCorruptOutputIsNeverPublished(t *testing.T) {
	harness.Need(t, "rsync", "sha256sum")
	r := makeRelease(t, 1<<20)
	img := filepath.Join(r.outdir, r.ov+".img.zst")
	data := mustRead(t, img)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "images")
	out, err := runHook(t, "publish", "50-local-dir", r.env(t, "EIB_PUBLISH_DIR="+dest))
	if err == nil || !strings.Contains(out, "does not match SHA256SUMS") {
		t.Errorf("publishing a corrupt image: err %v, want a verification failure:\n%s", err, out)
	}
	assertMissing(t, filepath.Join(dest, r.ov))
}

// TestSHA256SumsReusesAnOutputsOwnChecksum: an image's .sha256, written with
// it, is taken as is (no second read of a large image); without it the
// file is hashed.
func TestSHA256SumsReusesAnOutputsOwnChecksum(t *testing.T) {
	r := makeRelease(t, 4096)
	own := strings.TrimSpace(string(r.files[r.ov+".img.zst.sha256"]))
	if !strings.Contains(string(r.files["SHA256SUMS"]), own+"\n") {
		t.Errorf("SHA256SUMS lacks the image's own checksum line %q:\n%s", own, r.files["SHA256SUMS"])
	}
	// A .sha256 older than its file is not trusted.
	bogus := strings.Repeat("0", 64) + "  " + r.ov + ".img.zst\n"
	if err := os.WriteFile(filepath.Join(r.outdir, r.ov+".img.zst.sha256"), []byte(bogus), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(r.outdir, r.ov+".img.zst.sha256"), old, old); err != nil {
		t.Fatal(err)
	}
	if out, err := runHook(t, "publish", "42-sha256sums", r.env(t)); err != nil {
		t.Fatal(err, out)
	}
	if sums := string(mustRead(t, filepath.Join(r.outdir, "SHA256SUMS"))); !strings.Contains(sums, own+"\n") {
		t.Errorf("a stale .sha256 was trusted:\n%s", sums)
	}
}
