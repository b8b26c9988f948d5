package engine

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/hooks"
)

// sh runs script under "bash -e" with lib/eib.sh sourced and env added.
func sh(t *testing.T, script string, env ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-c", ". \"$1\"\n"+script, "bash", filepath.Join(srcRoot, "lib", "eib.sh"))
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func TestEibShIsShellcheckClean(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck not installed")
	}
	files := []string{filepath.Join(srcRoot, "lib", "eib.sh"), filepath.Join(srcRoot, "helpers", "eib-chroot")}
	m, _ := filepath.Glob(filepath.Join(srcRoot, "hooks", "image", "[0-9]*"))
	files = append(files, m...)
	out, err := exec.Command("shellcheck", append([]string{"-s", "bash"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

func TestEibShOutfileAndLocale(t *testing.T) {
	out, _, err := sh(t, "eib_outfile img.gz; locale_to_iso_639_1 br_FR.iso885915@euro; locale_to_iso_639_1 es_GT; locale_to_iso_639_1 en",
		"EIB_OUTDIR=/o", "EIB_OUTVERSION=p-b-a-pl.1.base")
	if err != nil || out != "/o/p-b-a-pl.1.base.img.gz\nbr-FR\nes-GT\nen\n" {
		t.Errorf("got %q, %v", out, err)
	}
}

func TestEibShRetry(t *testing.T) {
	env := []string{"EIB_RETRY_ATTEMPTS=3", "EIB_RETRY_INTERVAL=0"}
	_, stderr, err := sh(t, "eib_retry", env...)
	if err == nil || !strings.Contains(stderr, "No command supplied to eib_retry") {
		t.Errorf("no command: %v %q", err, stderr)
	}
	_, stderr, err = sh(t, "eib_retry false", env...)
	if err == nil || strings.Count(stderr, "false failed; retrying...") != 2 || !strings.Contains(stderr, "false failed 3 times; giving up") {
		t.Errorf("failing command: %v %q", err, stderr)
	}
	// Succeeds on the third attempt.
	out, stderr, err := sh(t, `n=0; flaky() { n=$((n+1)); [ $n -ge 3 ]; }; eib_retry flaky; echo "attempts=$n"`, env...)
	if err != nil || out != "attempts=3\n" || strings.Count(stderr, "retrying") != 2 {
		t.Errorf("flaky: %v %q %q", err, out, stderr)
	}
}

func TestEibShChecksumFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "image.img.gz.tmp")
	os.WriteFile(f, []byte("hello\n"), 0o644)
	const sum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	if _, stderr, err := sh(t, "checksum_file"); err == nil || !strings.Contains(stderr, "No file supplied") {
		t.Errorf("checksum_file without a file succeeded: %s", stderr)
	}
	_, stderr, err := sh(t, "checksum_file "+f+"\nchecksum_file "+f+" "+dir+"/named.sha256 "+dir+"/image.img.gz\n")
	if err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	if got, _ := os.ReadFile(f + ".sha256"); string(got) != sum+"  image.img.gz.tmp\n" {
		t.Errorf("default out: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "named.sha256")); string(got) != sum+"  image.img.gz\n" {
		t.Errorf("with target: %q", got)
	}
	// sha256sum -c accepts it.
	cmd := exec.Command("sha256sum", "-c", "image.img.gz.tmp.sha256")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v %s", err, out)
	}
}

func TestEibShSignFileCallsEibProgram(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-eib")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" > "+dir+"/args\n"), 0o755)
	if _, stderr, err := sh(t, "sign_file /x/f.img", "EIB_PROGRAM="+fake); err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "args")); string(got) != "sign /x/f.img /x/f.img.asc\n" {
		t.Errorf("eib called with %q", got)
	}
	sh(t, "sign_file /x/f.img /y/out.asc", "EIB_PROGRAM="+fake)
	if got, _ := os.ReadFile(filepath.Join(dir, "args")); string(got) != "sign /x/f.img /y/out.asc\n" {
		t.Errorf("eib called with %q", got)
	}
}

func TestEibShOstreeIDs(t *testing.T) {
	deploy := t.TempDir()
	os.MkdirAll(filepath.Join(deploy, "usr", "lib"), 0o755)
	os.MkdirAll(filepath.Join(deploy, "etc"), 0o755)
	os.WriteFile(filepath.Join(deploy, "usr", "lib", "passwd"), []byte("root:x:0:0::/root:/bin/sh\nmessagebus:x:101:104::/:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(deploy, "etc", "group"), []byte("root:x:0:\nkolibri:x:998:\n"), 0o644)
	out, stderr, err := sh(t, "ostree_uid messagebus; ostree_gid kolibri; ostree_uid root", "OSTREE_DEPLOYMENT="+deploy)
	if err != nil || out != "101\n998\n0\n" {
		t.Errorf("got %q %v %s", out, err, stderr)
	}
	if _, stderr, err := sh(t, "ostree_uid nobody", "OSTREE_DEPLOYMENT="+deploy); err == nil || !strings.Contains(stderr, "nobody not found") {
		t.Errorf("unknown user: %v %q", err, stderr)
	}
}

func TestEibShRecreateDirAndVersionXattr(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	if _, stderr, err := sh(t, `recreate_dir "$D"`, "D="+dir); err != nil {
		t.Fatal(err, stderr)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("recreate_dir left %v %v", ents, err)
	}
	if _, err := exec.LookPath("setfattr"); err != nil {
		t.Skip("setfattr (attr) not installed")
	}
	if _, stderr, err := sh(t, `eib_write_version_xattr "$D"`, "D="+dir, "EIB_OUTVERSION=p-b-a-pl.1.base"); err != nil {
		t.Fatal(err, stderr)
	}
	buf := make([]byte, 100)
	n, err := syscall.Getxattr(dir, "user.eos-image-version", buf)
	if err != nil || string(buf[:n]) != "p-b-a-pl.1.base" {
		t.Errorf("xattr %q %v", buf[:n], err)
	}
}

func TestEibShMountTracking(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
	dir := t.TempDir()
	out, stderr, err := sh(t, `
eib_mount -t tmpfs one "$D/a"
eib_mount -t tmpfs two "$D/a/b"
eib_mount -t tmpfs three "$D/c"
eib_umount "$D/c"
echo "tracked=${EIB_MOUNTS[*]}"
if eib_umount "$D/zzz" 2>/dev/null; then echo untracked-ok; fi
eib_umount_all
echo "left=${#EIB_MOUNTS[@]}"
`, "D="+dir)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left:\n%s", mi)
		exec.Command("umount", "-R", dir).Run()
	}
	if err != nil || out != "tracked="+dir+"/a "+dir+"/a/b\nleft=0\n" {
		t.Errorf("got %q %v %s", out, err, stderr)
	}
}

// imageHookFixture runs the shipped image hooks through the real hook
// runner against a fake deployment.
func runImageHooks(t *testing.T, settings map[string]string, names string, root string) (deploy, varDir string, log string, err error) {
	t.Helper()
	dir := t.TempDir()
	deploy = filepath.Join(dir, "deploy")
	varDir = filepath.Join(dir, "var")
	os.MkdirAll(filepath.Join(deploy, "etc"), 0o755)
	os.MkdirAll(filepath.Join(deploy, "usr", "share", "zoneinfo", "America"), 0o755)
	os.WriteFile(filepath.Join(deploy, "usr", "share", "zoneinfo", "America", "Guatemala"), []byte("TZif"), 0o644)
	os.WriteFile(filepath.Join(deploy, "etc", "hosts"), []byte("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n"), 0o644)
	os.MkdirAll(varDir, 0o755)
	cfg := config.New()
	cfg.Set("build", "cachedir", filepath.Join(dir, "cache"))
	cfg.Set("image", "hooks", names)
	for k, v := range settings {
		cfg.Set("image", k, v)
	}
	os.MkdirAll(filepath.Join(dir, "cache"), 0o755)
	l := buildlog.New(nil, false, nil)
	logPath := filepath.Join(dir, "build.txt")
	l.OpenFile(logPath)
	l.SetStage("image")
	b := &build.Build{Config: cfg, Public: cfg, SrcDir: srcRoot, Log: l, Stage: "image", Hooks: &hooks.Runner{}}
	b.SetEnv("OSTREE_DEPLOYMENT", deploy)
	b.SetEnv("OSTREE_VAR", varDir)
	err = b.Hooks.RunGroup(context.Background(), b, "image", root)
	l.Close()
	data, _ := os.ReadFile(logPath)
	return deploy, varDir, string(data), err
}

func TestImageHooksApplyTheirKeys(t *testing.T) {
	deploy, varDir, log, err := runImageHooks(t, map[string]string{
		"hostname": "kiosk-1", "timezone": "America/Guatemala", "language": "es_GT.UTF-8",
	}, "50-hostname 50-timezone 50-language 50-update-done-stamp", "")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(deploy, p)); return string(b) }
	if read("etc/hostname") != "kiosk-1\n" || read("etc/hosts") != "127.0.0.1\tlocalhost\n127.0.1.1\tkiosk-1\n" {
		t.Errorf("hostname %q hosts %q", read("etc/hostname"), read("etc/hosts"))
	}
	if l, _ := os.Readlink(filepath.Join(deploy, "etc", "localtime")); l != "../usr/share/zoneinfo/America/Guatemala" || read("etc/timezone") != "America/Guatemala\n" {
		t.Errorf("localtime -> %q, timezone %q", l, read("etc/timezone"))
	}
	if read("etc/locale.conf") != "LANG=es_GT.UTF-8\n" {
		t.Errorf("locale.conf %q", read("etc/locale.conf"))
	}
	for _, p := range []string{filepath.Join(deploy, "etc", ".updated"), filepath.Join(varDir, ".updated")} {
		if st, err := os.Stat(p); err != nil || st.ModTime().Unix() != 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestImageHooksAreNoOpsWithEmptyKeys(t *testing.T) {
	deploy, _, log, err := runImageHooks(t, map[string]string{"hostname": "", "timezone": "", "language": ""},
		"50-hostname 50-timezone 50-language", "")
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	ents, _ := os.ReadDir(filepath.Join(deploy, "etc"))
	if len(ents) != 1 { // hosts only
		t.Errorf("hooks with empty keys changed /etc: %v", ents)
	}
}

func TestTimezoneHookRejectsUnknownZone(t *testing.T) {
	_, _, log, err := runImageHooks(t, map[string]string{"timezone": "Mars/Olympus"}, "50-timezone", "")
	if err == nil || !strings.Contains(log, "no /usr/share/zoneinfo/Mars/Olympus in the OS") {
		t.Errorf("err %v\n%s", err, log)
	}
}

func TestChrootImageHooksAreNoOpsWithoutTheirTools(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bubblewrap chroot hooks need root here")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap not installed")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static not installed")
	}
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(root, "bin", "sh"))
	_, _, log, err := runImageHooks(t, nil, "10-systemd-sysusers.chroot 10-systemd-tmpfiles.chroot 80-ldconfig-aux-cache.chroot", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for _, want := range []string{"no systemd-sysusers in the OS", "no systemd-tmpfiles in the OS", "no ldconfig in the OS"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestChrootImageHooksWorkInADebianRoot runs the shipped .chroot hooks in
// a real Debian tree: an overlay of this host's / whose writes land in a
// temp dir (the host is untouched).
func TestChrootImageHooksWorkInADebianRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (overlay mount, bubblewrap)")
	}
	for _, tool := range []string{"bwrap", "systemd-sysusers", "systemd-tmpfiles", "ldconfig"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on this host: %v", tool, err)
		}
	}
	dir := t.TempDir()
	upper, work, root := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "root")
	for _, d := range []string{upper, work, root} {
		os.MkdirAll(d, 0o755)
	}
	if err := syscall.Mount("overlay", root, "overlay", 0, "lowerdir=/,upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("overlay of / not possible here: %v", err)
	}
	defer func() {
		if err := syscall.Unmount(root, 0); err != nil {
			syscall.Unmount(root, syscall.MNT_DETACH)
			t.Errorf("unmounting the overlay: %v", err)
		}
	}()
	_, _, log, err := runImageHooks(t, nil, "10-systemd-sysusers.chroot 10-systemd-tmpfiles.chroot 80-ldconfig-aux-cache.chroot", root)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	if strings.Contains(log, "nothing to do") {
		t.Errorf("a hook found no tool in a Debian root:\n%s", log)
	}
	// ldconfig -X wrote the aux cache into the root (the overlay's upper dir).
	if _, err := os.Stat(filepath.Join(upper, "var", "cache", "ldconfig", "aux-cache")); err != nil {
		t.Errorf("no aux cache written in the root: %v\n%s", err, log)
	}
	// Nothing under /run or /tmp of the root.
	for _, d := range []string{"run", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(upper, d)); len(ents) > 0 {
			t.Errorf("hooks wrote into /%s of the root: %v", d, ents)
		}
	}
}
