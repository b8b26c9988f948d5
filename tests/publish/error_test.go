package publish

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/publish"
	"github.com/eib-builder/eib/tests/harness"
)

// failedLog writes the masked log of a failed build and returns its path.
func failedLog(t *testing.T, log string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "build.txt")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// putFailedLog copies the log as the error stage does.
func putFailedLog(t *testing.T, env []string, path string) (string, error) {
	t.Helper()
	var log strings.Builder
	err := publish.PutAll(context.Background(), settingsOf(env, &log), path, testOV+".failed.build.txt")
	if err != nil {
		log.WriteString(err.Error() + "\n")
	}
	return log.String(), err
}

func TestErrorStagePublishesOnlyTheFailedLogToEveryDestination(t *testing.T) {
	srv := startSSHD(t)
	s3 := startS3(t, "images")
	const log = "stage image: failed: hook image/50-bad: exit status 1\npassword ***\n"
	dir := filepath.Join(t.TempDir(), "images")
	remote := filepath.Join(t.TempDir(), "remote images")
	env := append([]string{"EIB_PUBLISH_DIR=" + dir}, srv.env(remote)...)
	env = append(env, s3.env(t, "images", "eos")...)
	out, err := putFailedLog(t, env, failedLog(t, log))
	if err != nil {
		t.Fatalf("publishing the failed log: %v\n%s", err, out)
	}
	name := testOV + ".failed.build.txt"
	for _, d := range []string{dir, remote} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != name {
			t.Errorf("%s holds %v, want only %s", d, entries, name)
		}
		if got := string(mustRead(t, filepath.Join(d, name))); got != log {
			t.Errorf("%s/%s = %q, want the build log", d, name, got)
		}
	}
	objs := s3.objects(t, "images", "")
	if len(objs) != 1 || string(objs["eos/"+name]) != log {
		t.Errorf("bucket holds %v, want only eos/%s with the log", keys(objs), name)
	}
}

func TestErrorStageReportsABrokenDestinationAndStillServesTheOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	env := []string{"EIB_PUBLISH_DIR=" + dir, "EIB_PUBLISH_RSYNC_DEST=no-colon-here"}
	out, err := putFailedLog(t, env, failedLog(t, "log\n"))
	if err == nil || !strings.Contains(out, "rsync_dest = no-colon-here") {
		t.Errorf("err %v, want a failure naming rsync_dest:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, testOV+".failed.build.txt")); err != nil {
		t.Errorf("the local copy was not made: %v", err)
	}
}

// project is an eib build of the publish stage alone with every
// destination configured; extra is appended to its configuration.
func project(t *testing.T, srv *sshServer, s3 *s3Server, dir, remote, extra string) *harness.Project {
	p := harness.NewProject(t)
	p.Write("buildscript", "publish\n", 0o644)
	creds := filepath.Join(t.TempDir(), "aws-credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = EIBTESTKEY\naws_secret_access_key = eib-test-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\nhooks =\ndir = "+dir+
		"\nrsync_dest = "+srv.user+"@127.0.0.1:"+remote+"\nssh_key = "+srv.userKey+"\nssh_known_hosts = "+srv.knownHosts+
		"\nssh_port = "+strconv.Itoa(srv.port)+"\ns3_bucket = images\ns3_prefix = eos\ns3_endpoint = "+s3.url+
		"\ns3_region = us-east-1\naws_credentials = "+creds+"\n\n[error]\nhooks =\n"+extra, 0o644)
	return p
}

// TestBuildPublishesToEveryDestinationOrOnlyTheFailedLog runs eib: a build
// whose publish stage fails (a broken signing key) publishes only its log,
// named after the stage; a good build publishes the release everywhere.
func TestBuildPublishesToEveryDestinationOrOnlyTheFailedLog(t *testing.T) {
	srv := startSSHD(t)
	s3 := startS3(t, "images")
	dir := filepath.Join(t.TempDir(), "images")
	remote := filepath.Join(t.TempDir(), "remote")
	bad := filepath.Join(t.TempDir(), "not-a-key.asc")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := project(t, srv, s3, dir, remote, "\n[image]\nsigning_key = "+bad+"\n")
	res := harness.Run(t, p.Command(context.Background(), eibBin, harness.Src(), "master"))
	if res.Code == 0 || !strings.Contains(res.Stdout+res.Stderr, "build failed in publish") {
		t.Fatalf("eib with a broken key: exit %d, want a failure in publish:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, d := range []string{dir, remote} {
		entries, _ := os.ReadDir(d)
		if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".failed.build.txt") {
			t.Errorf("%s holds %v, want only the failed log", d, entries)
		}
	}
	if objs := s3.objects(t, "images", ""); len(objs) != 1 {
		t.Errorf("bucket holds %v, want only the failed log", keys(objs))
	}

	p = project(t, srv, s3, dir, remote, "")
	res = harness.Run(t, p.Command(context.Background(), eibBin, harness.Src(), "master"))
	if res.Code != 0 {
		t.Fatalf("eib: exit %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, d := range []string{dir, remote} {
		matches, _ := filepath.Glob(filepath.Join(d, "*", "SHA256SUMS"))
		if len(matches) != 1 {
			t.Fatalf("%s: releases %v, want one", d, matches)
		}
		cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
		cmd.Dir = filepath.Dir(matches[0])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c in %s: %v\n%s", cmd.Dir, err, out)
		}
	}
	if objs := s3.objects(t, "images", ""); len(objs) != 3 {
		t.Errorf("bucket holds %v, want the failed log, the build log and SHA256SUMS", keys(objs))
	}
}

// TestDryRunTouchesNoDestination runs eib --dry-run with every destination
// configured and reachable.
func TestDryRunTouchesNoDestination(t *testing.T) {
	srv := startSSHD(t)
	s3 := startS3(t, "images")
	dir := filepath.Join(t.TempDir(), "images")
	remote := filepath.Join(t.TempDir(), "remote")
	p := project(t, srv, s3, dir, remote, "")
	res := harness.Run(t, p.Command(context.Background(), eibBin, harness.Src(), "--dry-run", "master"))
	if res.Code != 0 || !strings.Contains(res.Stdout+res.Stderr, "skipped (--dry-run)") {
		t.Errorf("eib --dry-run: exit %d:\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	assertMissing(t, dir)
	assertMissing(t, remote)
	if objs := s3.objects(t, "images", ""); len(objs) != 0 {
		t.Errorf("the bucket was written on a dry run: %v", keys(objs))
	}
}
