package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/lib/sign"
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
	signer, err := sign.New(sign.Options{KeyFile: keyFile}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publish.WriteSums(context.Background(), r.outdir, nil, signer); err != nil {
		t.Fatalf("WriteSums signed: %v", err)
	}
	verify := exec.Command("gpg", "--homedir", home, "--batch", "--verify", "SHA256SUMS.asc", "SHA256SUMS")
	verify.Dir = r.outdir
	if out, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("gpg --verify SHA256SUMS.asc: %v\n%s", err, out)
	}
	if strings.Contains(string(mustRead(t, filepath.Join(r.outdir, "SHA256SUMS"))), "SHA256SUMS.asc") {
		t.Error("SHA256SUMS lists its own signature")
	}

	// A broken key fails the publish stage naming the key file (the
	// stage signs with sign.New's signer, as the image stage does).
	bad := filepath.Join(t.TempDir(), "not-a-key.asc")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.New(sign.Options{KeyFile: bad}, t.Logf); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("signing with a broken key: err %v, want an error naming the key file", err)
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

	out, err := runPublish(t, env)
	if err != nil {
		t.Fatalf("publish to dir: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, filepath.Join(dest, "."+r.ov+".inprogress"))

	// A rerun of the same build is a no-op.
	if out, err := runPublish(t, env); err != nil || !strings.Contains(out, "already published") {
		t.Errorf("rerun: err %v, want \"already published\":\n%s", err, out)
	}
	// A different build under the same name never replaces a release.
	if err := os.WriteFile(filepath.Join(r.outdir, r.ov+".manifest.json"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.writeSums(t)
	out, err = runPublish(t, env)
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
	out, err := runPublish(t, r.env(t, "EIB_PUBLISH_DIR="+dest))
	if err != nil {
		t.Fatalf("publish to dir after an interruption: %v\n%s", err, out)
	}
	assertRelease(t, filepath.Join(dest, r.ov), r)
	assertMissing(t, staging)
}

func TestUnconfiguredDestinationsAreLeftOut(t *testing.T) {
	// No aws, rsync or ssh on PATH: unconfigured destinations need none.
	t.Setenv("PATH", t.TempDir()+":/nonexistent")
	var log strings.Builder
	ds, errs := publish.Destinations(settingsOf(nil, &log))
	if len(ds) != 0 || len(errs) != 0 || log.Len() != 0 {
		t.Errorf("unconfigured: destinations %v, errors %v, log %q; want none", ds, errs, log.String())
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
	out, err := runPublish(t, r.env(t, "EIB_PUBLISH_DIR="+dest))
	if err == nil || !strings.Contains(out, "does not match SHA256SUMS") {
		t.Errorf("publishing a corrupt image: err %v, want a verification failure:\n%s", err, out)
	}
	assertMissing(t, filepath.Join(dest, r.ov))
}

// TestSHA256SumsTakesOutputRecordsAndHashesTheRest: an output's sha256
// from the build's records is taken as is (no second read of a large
// image); a file without a record is hashed.
func TestSHA256SumsTakesOutputRecordsAndHashesTheRest(t *testing.T) {
	r := makeRelease(t, 4096)
	own := strings.TrimSpace(string(r.files[r.ov+".img.zst.sha256"]))
	if !strings.Contains(string(r.files["SHA256SUMS"]), own+"\n") {
		t.Errorf("SHA256SUMS lacks the image's checksum line %q:\n%s", own, r.files["SHA256SUMS"])
	}
	recorded := strings.Repeat("a", 64)
	known := map[string]string{r.ov + ".img.zst": recorded}
	if _, err := publish.WriteSums(context.Background(), r.outdir, known, nil); err != nil {
		t.Fatal(err)
	}
	sums := string(mustRead(t, filepath.Join(r.outdir, "SHA256SUMS")))
	if !strings.Contains(sums, recorded+"  "+r.ov+".img.zst\n") {
		t.Errorf("the recorded sha256 was not taken:\n%s", sums)
	}
	manifest := sha256.Sum256(r.files[r.ov+".manifest.json"])
	if !strings.Contains(sums, hex.EncodeToString(manifest[:])+"  "+r.ov+".manifest.json\n") {
		t.Errorf("a file without a record was not hashed:\n%s", sums)
	}
}
