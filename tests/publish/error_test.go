package publish

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failedBuild is the error-stage environment of a failed build whose masked
// log is log.
func failedBuild(t *testing.T, log string) []string {
	t.Helper()
	tmp := t.TempDir()
	path := filepath.Join(tmp, "build.txt")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"EIB_OUTVERSION=" + testOV, "EIB_TMPDIR=" + tmp, "EIB_OUTDIR=" + filepath.Join(tmp, "out"),
		"EIB_DRY_RUN=false", "EIB_ERROR_STAGE=image", "EIB_ERROR_HOOK=image/50-bad", "EIB_ERROR_LOG=" + path}
}

func TestErrorHookPublishesOnlyTheFailedLogToEveryDestination(t *testing.T) {
	srv := startSSHD(t)
	s3 := startS3(t, "images")
	const log = "stage image: failed: hook image/50-bad: exit status 1\npassword ***\n"
	dir := filepath.Join(t.TempDir(), "images")
	remote := filepath.Join(t.TempDir(), "remote images")
	env := failedBuild(t, log)
	env = append(env, "EIB_PUBLISH_DIR="+dir)
	env = append(env, srv.env(remote)...)
	env = append(env, s3.env(t, "images", "eos")...)
	out, err := runHook(t, "error", "40-build-log", env)
	if err != nil {
		t.Fatalf("error/40-build-log: %v\n%s", err, out)
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
	if !strings.Contains(out, "build failed in image, hook image/50-bad") {
		t.Errorf("the hook does not say what failed:\n%s", out)
	}
}

func TestErrorHookReportsABrokenDestinationAndStillServesTheOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	env := append(failedBuild(t, "log\n"), "EIB_PUBLISH_DIR="+dir, "EIB_PUBLISH_RSYNC_DEST=no-colon-here")
	out, err := runHook(t, "error", "40-build-log", env)
	if err == nil || !strings.Contains(out, "rsync_dest = no-colon-here") {
		t.Errorf("err %v, want a failure naming rsync_dest:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, testOV+".failed.build.txt")); err != nil {
		t.Errorf("the local copy was not made: %v", err)
	}
}

// TestDryRunTouchesNoDestination runs every shipped publish hook and the
// error hook with every destination configured and reachable, on a dry run.
func TestDryRunTouchesNoDestination(t *testing.T) {
	srv := startSSHD(t)
	s3 := startS3(t, "images")
	r := makeRelease(t, 4096)
	dir := filepath.Join(t.TempDir(), "images")
	remote := filepath.Join(t.TempDir(), "remote")
	dest := append([]string{"EIB_PUBLISH_DIR=" + dir}, srv.env(remote)...)
	dest = append(dest, s3.env(t, "images", "eos")...)
	for _, hook := range []string{"50-local-dir", "52-rsync", "54-s3"} {
		out, err := runHook(t, "publish", hook, append(r.env(t, dest...), "EIB_DRY_RUN=true"))
		if err != nil || !strings.Contains(out, "dry run") {
			t.Errorf("%s on a dry run: err %v, output:\n%s", hook, err, out)
		}
	}
	out, err := runHook(t, "error", "40-build-log", append(append(failedBuild(t, "log\n"), dest...), "EIB_DRY_RUN=true"))
	if err != nil || !strings.Contains(out, "dry run") {
		t.Errorf("error/40-build-log on a dry run: err %v, output:\n%s", err, out)
	}
	assertMissing(t, dir)
	assertMissing(t, remote)
	if objs := s3.objects(t, "images", ""); len(objs) != 0 {
		t.Errorf("the bucket was written on a dry run: %v", keys(objs))
	}
}
