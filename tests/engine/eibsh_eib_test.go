package engine

// Tests of the lib/eib.sh functions that EIB's own stages and its users'
// hooks call: run_hooks, chroot (helpers/eib-chroot), sign_file without
// eib's signer, eib_umount, the loop device and partx helpers,
// ostree_write_refs, eib_compress_image and eib_fix_boot_checksum.

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eib-builder/eib/tests/harness"
)

// writeFile writes content to path (parents made) with mode.
func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// runHooksFixture is a srcdir-like hooks dir, a localdir and a helpers dir
// whose eib-chroot only says it ran and executes the command on the host
// (like EIB's own test of run_hooks).
type runHooksFixture struct {
	hooks, local, helpers, out string
}

func newRunHooksFixture(t *testing.T) runHooksFixture {
	dir := t.TempDir()
	f := runHooksFixture{
		hooks:   filepath.Join(dir, "hooks"),
		local:   filepath.Join(dir, "local"),
		helpers: filepath.Join(dir, "helpers"),
		out:     filepath.Join(dir, "out"),
	}
	writeFile(t, filepath.Join(f.helpers, "eib-chroot"), "#!/bin/bash\necho \"eib-chroot root=$1\"\nshift\nexec \"$@\"\n", 0o755)
	return f
}

func (f runHooksFixture) env(hooks string, extra ...string) []string {
	return append([]string{
		"EIB_HOOKSDIR=" + f.hooks, "EIB_LOCALDIR=" + f.local, "EIB_HELPERSDIR=" + f.helpers,
		"EIB_SRCDIR=/nonexistent", "EIB_TEST_HOOKS=" + hooks, "OUT=" + f.out,
	}, extra...)
}

func TestEibShRunHooksSortsFindsLocalFirstAndRunsEachKind(t *testing.T) {
	f := newRunHooksFixture(t)
	// Sourced: in a subshell that sees eib.sh's functions and the
	// caller's errexit; its variables do not leak into the caller.
	writeFile(t, filepath.Join(f.hooks, "test", "10-sourced"), `echo "sourced subshell=$BASH_SUBSHELL $(locale_to_iso_639_1 es_GT) group=$EIB_HOOK_GROUP" >> "$OUT"
case $- in *e*) echo "sourced errexit" >> "$OUT";; esac
LEAK=yes
`, 0o644)
	writeFile(t, filepath.Join(f.hooks, "test", "20-exec"), "#!/bin/sh\necho \"exec $0\" >> \"$OUT\"\n", 0o755)
	writeFile(t, filepath.Join(f.hooks, "test", "30-both"), "echo src-30 >> \"$OUT\"\n", 0o644)
	writeFile(t, filepath.Join(f.local, "hooks", "test", "30-both"), "echo local-30 >> \"$OUT\"\n", 0o644)
	writeFile(t, filepath.Join(f.hooks, "test", "40-skip.chroot"), "echo chroot-ran >> \"$OUT\"\n", 0o644)
	stdout, stderr, err := sh(t, `set -e
run_hooks test
echo "leak=${LEAK:-no}" >> "$OUT"`, f.env("40-skip.chroot\n30-both 20-exec 10-sourced")...)
	if err != nil {
		t.Fatalf("run_hooks: %v\n%s%s", err, stdout, stderr)
	}
	got, _ := os.ReadFile(f.out)
	want := "sourced subshell=1 es-GT group=test\nsourced errexit\n" +
		"exec " + filepath.Join(f.hooks, "test", "20-exec") + "\nlocal-30\nleak=no\n"
	if string(got) != want {
		t.Errorf("hooks wrote\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(stdout, "Skipping hook, no chroot available: test/40-skip.chroot") {
		t.Errorf("no skip line for the .chroot hook without a root:\n%s", stdout)
	}
}

func TestEibShRunHooksCopiesChrootHookIntoTheRootAndRemovesIt(t *testing.T) {
	f := newRunHooksFixture(t)
	root := t.TempDir()
	// The hooks run on the host from the copies run_hooks made in
	// ROOT/tmp (the fake eib-chroot does not change the root).
	writeFile(t, filepath.Join(f.hooks, "test", "50-plain.chroot"), `echo "plain bash=${BASH_VERSION:+yes} args=$0" >> "$OUT"`+"\n", 0o644)
	writeFile(t, filepath.Join(f.hooks, "test", "60-exec.chroot"), "#!/bin/sh\necho \"exec $0\" >> \"$OUT\"\n", 0o755)
	// This eib-chroot runs /tmp/<hook> as ROOT/tmp/<hook>.
	writeFile(t, filepath.Join(f.helpers, "eib-chroot"), "#!/bin/bash\necho \"eib-chroot root=$1\"\nr=$1\nshift\nargs=()\nfor a in \"$@\"; do args+=(\"${a/#\\/tmp\\//$r/tmp/}\"); done\nexec \"${args[@]}\"\n", 0o755)
	stdout, stderr, err := sh(t, `run_hooks test "$ROOT"`, f.env("60-exec.chroot 50-plain.chroot", "ROOT="+root)...)
	if err != nil {
		t.Fatalf("run_hooks: %v\n%s%s", err, stdout, stderr)
	}
	got, _ := os.ReadFile(f.out)
	want := "plain bash=yes args=" + root + "/tmp/50-plain.chroot\nexec " + root + "/tmp/60-exec.chroot\n"
	if string(got) != want {
		t.Errorf("chroot hooks wrote\n%s\nwant\n%s", got, want)
	}
	if strings.Count(stdout, "eib-chroot root="+root+"\n") != 2 {
		t.Errorf("eib-chroot not called with the root for each hook:\n%s", stdout)
	}
	if left, err := os.ReadDir(filepath.Join(root, "tmp")); err != nil || len(left) != 0 {
		t.Errorf("hook copies left in ROOT/tmp: %v", left)
	}
}

func TestEibShRunHooksStopsAtAMissingOrFailingHook(t *testing.T) {
	f := newRunHooksFixture(t)
	writeFile(t, filepath.Join(f.hooks, "test", "10-fails"), "echo before >> \"$OUT\"\nfalse\necho after-false >> \"$OUT\"\n", 0o644)
	writeFile(t, filepath.Join(f.hooks, "test", "20-next"), "echo next >> \"$OUT\"\n", 0o644)
	_, stderr, err := sh(t, "set -e\nrun_hooks test\necho caller-went-on >> \"$OUT\"", f.env("10-fails 20-next")...)
	got, _ := os.ReadFile(f.out)
	if err == nil || string(got) != "before\n" {
		t.Errorf("failing sourced hook: err %v, wrote %q (want only \"before\")", err, got)
	}
	path := filepath.Join(f.hooks, "test", "10-fails")
	if !strings.Contains(stderr, "hook test/10-fails ("+path+") failed with exit status 1") {
		t.Errorf("the failure does not name the hook and its path:\n%s", stderr)
	}

	os.Remove(f.out)
	_, stderr, err = sh(t, "run_hooks test", f.env("20-next 30-absent")...)
	if err == nil || !strings.Contains(stderr, "Missing hook test/30-absent") ||
		!strings.Contains(stderr, f.local+"/hooks/test") || !strings.Contains(stderr, f.hooks+"/test") {
		t.Errorf("missing hook: %v\n%s", err, stderr)
	}
	// No hook set: nothing runs, no error.
	if stdout, stderr, err := sh(t, "run_hooks empty", f.env("")...); err != nil || strings.Contains(stdout, "Run hook") {
		t.Errorf("empty group: %v\n%s%s", err, stdout, stderr)
	}
}

// busyboxTree makes a tiny root with busybox and a marker file.
func busyboxTree(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bubblewrap needs root here")
	}
	harness.Need(t, "bwrap")
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static not installed")
	}
	root := filepath.Join(t.TempDir(), "root")
	writeFile(t, filepath.Join(root, "bin", "busybox"), string(bb), 0o755)
	for _, a := range []string{"sh", "env", "cat", "pwd"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	writeFile(t, filepath.Join(root, "marker"), "inside the root\n", 0o644)
	return root
}

func TestEibShChrootRunsInTheRootWithEIBsEnvironment(t *testing.T) {
	root := busyboxTree(t)
	stdout, stderr, err := sh(t, `chroot "$ROOT" /bin/sh -c 'cat /marker; pwd; env'`,
		"ROOT="+root, "EIB_HELPERSDIR="+filepath.Join(srcRoot, "helpers"),
		"EIB_SRCDIR=/src/eib", "EIB_SRCDIR_CHROOT=/tmp/eib/src",
		"EIB_CACHEDIR=/var/cache/x", "EIB_CACHEDIR_CHROOT=/tmp/eib",
		"EIB_OUTDIR=/var/cache/x/build/out", "EIB_DATADIR=/src/eib/data",
		"EIB_OTHER=/var/cache/xy", "EIB_FOO=host", "EIB_FOO_CHROOT=inroot",
		"HOME=/root-of-host", "SECRET_HOST_VAR=1")
	if err != nil {
		t.Fatalf("chroot: %v\n%s%s", err, stdout, stderr)
	}
	for _, want := range []string{"inside the root\n/\n", "EIB_OUTDIR=/tmp/eib/build/out\n",
		"EIB_DATADIR=/tmp/eib/src/data\n", "EIB_SRCDIR=/tmp/eib/src\n", "EIB_CACHEDIR=/tmp/eib\n",
		"EIB_OTHER=/var/cache/xy\n", "EIB_FOO=inroot\n", "PYTHONPATH=/tmp/eib/src/lib\n", "LANG=C.UTF-8\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("chroot output lacks %q:\n%s", want, stdout)
		}
	}
	for _, bad := range []string{"_CHROOT=", "HOME=", "SECRET_HOST_VAR"} {
		if strings.Contains(stdout, bad) {
			t.Errorf("chroot environment has %q:\n%s", bad, stdout)
		}
	}
	if _, stderr, err := sh(t, `chroot "$ROOT"`, "ROOT="+root, "EIB_HELPERSDIR="+filepath.Join(srcRoot, "helpers")); err == nil || !strings.Contains(stderr, "usage: eib-chroot ROOT COMMAND") {
		t.Errorf("chroot without a command: %v %s", err, stderr)
	}
}

func TestEibShSignFileWithoutEibUsesTheGPGKeyringLikeEIB(t *testing.T) {
	harness.Need(t, "gpg")
	key := filepath.Join(srcRoot, "data", "demo", "image-signing-key.DEMO-ONLY.sec.asc")
	sysconf := t.TempDir()
	home := filepath.Join(sysconf, "gnupg")
	os.MkdirAll(home, 0o700)
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run() })
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--import", key).CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	out, err := exec.Command("gpg", "--homedir", home, "--batch", "--with-colons", "--list-secret-keys").Output()
	fpr := regexp.MustCompile(`(?m)^fpr:+([0-9A-F]{40}):`).FindStringSubmatch(string(out))
	if err != nil || fpr == nil {
		t.Fatalf("no fingerprint in the keyring: %v\n%s", err, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "SHA256SUMS")
	os.WriteFile(file, []byte("data\n"), 0o644)
	env := []string{"EIB_PROGRAM=", "EIB_SYSCONFDIR=" + sysconf, "F=" + file}

	// No key id: nothing signed, and no error.
	if _, stderr, err := sh(t, `sign_file "$F"`, append(env, "EIB_IMAGE_SIGNING_KEYID=")...); err != nil || !strings.Contains(stderr, "not signed") {
		t.Errorf("without a key id: %v %s", err, stderr)
	}
	if _, err := os.Stat(file + ".asc"); err == nil {
		t.Error("a signature was made without a key id")
	}
	// A key file that only eib's signer can use is an error, not silence.
	if _, stderr, err := sh(t, `sign_file "$F"`, append(env, "EIB_IMAGE_SIGNING_KEY="+key)...); err == nil || !strings.Contains(stderr, "needs eib's signer") {
		t.Errorf("signing_key without eib: %v %s", err, stderr)
	}
	// The key id from ${EIB_SYSCONFDIR}/gnupg, default and named outputs.
	env = append(env, "EIB_IMAGE_SIGNING_KEYID="+fpr[1])
	if _, stderr, err := sh(t, `sign_file "$F"; sign_file "$F" "$F.gpg"`, env...); err != nil {
		t.Fatalf("sign_file: %v\n%s", err, stderr)
	}
	for _, sig := range []string{file + ".asc", file + ".gpg"} {
		out, err := exec.Command("gpg", "--homedir", home, "--batch", "--verify", sig, file).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Good signature") {
			t.Errorf("gpg --verify %s: %v\n%s", sig, err, out)
		}
	}
	// [image] gpg_homedir, when set, is the keyring.
	if _, stderr, err := sh(t, `sign_file "$F" "$F.other"`, append(env, "EIB_IMAGE_GPG_HOMEDIR="+filepath.Join(dir, "empty"))...); err == nil {
		t.Errorf("signing with an empty gpg_homedir succeeded:\n%s", stderr)
	}
}

func TestEibShUmountUnmountsEveryTrackedMountOfTheTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
	dir := t.TempDir()
	stdout, stderr, err := sh(t, `
eib_mount -t tmpfs one "$D/a"
eib_mount -t tmpfs other "$D/b"
eib_mount -t tmpfs two "$D/a"
eib_umount "$D/a"
echo "tracked=${EIB_MOUNTS[*]}"
eib_umount_all
`, "D="+dir)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts left:\n%s", mi)
		exec.Command("umount", "-R", dir).Run()
	}
	if err != nil || stdout != "tracked="+dir+"/b\n" {
		t.Errorf("got %q %v %s", stdout, err, stderr)
	}
}

func TestEibShPartxAndLoopHelpers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices)")
	}
	harness.Need(t, "losetup", "partx", "sfdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 8<<20)
	cmd := exec.Command("sfdisk", "--quiet", img)
	cmd.Stdin = strings.NewReader("label: gpt\nsize=2MiB\nsize=2MiB\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device here: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	name := filepath.Base(loop)
	t.Cleanup(func() {
		if _, err := os.Stat("/sys/block/" + name + "/loop/backing_file"); err == nil {
			exec.Command("partx", "-d", loop).Run()
			exec.Command("losetup", "-d", loop).Run()
		}
	})
	parts := func() []string {
		m, _ := filepath.Glob("/sys/block/" + name + "/" + name + "p*")
		return m
	}
	env := []string{"L=" + loop, "EIB_RETRY_ATTEMPTS=3", "EIB_RETRY_INTERVAL=0.2"}
	if _, stderr, err := sh(t, `eib_partx_scan "$L"`, env...); err != nil || len(parts()) != 2 {
		t.Fatalf("eib_partx_scan: %v, partitions %v\n%s", err, parts(), stderr)
	}
	if _, stderr, err := sh(t, `eib_partx_delete "$L"`, env...); err != nil || len(parts()) != 0 {
		t.Fatalf("eib_partx_delete: %v, partitions %v\n%s", err, parts(), stderr)
	}
	if _, stderr, err := sh(t, `eib_delete_loop "$L"`, env...); err != nil {
		t.Fatalf("eib_delete_loop: %v\n%s", err, stderr)
	}
	if _, err := os.Stat("/sys/block/" + name + "/loop/backing_file"); err == nil {
		t.Errorf("%s still attached after eib_delete_loop", loop)
	}
	// A device that is not there: retried, then an error.
	if _, stderr, err := sh(t, `eib_delete_loop /dev/eib-no-such-loop`, env...); err == nil || !strings.Contains(stderr, "failed 3 times") {
		t.Errorf("eib_delete_loop of nothing: %v\n%s", err, stderr)
	}
}

func TestEibShOstreeWriteRefsForcesDestToSourceCommit(t *testing.T) {
	harness.Need(t, "ostree")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ostree", append([]string{"--repo=" + repo}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ostree %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "--mode=archive")
	os.WriteFile(filepath.Join(tree, "f"), []byte("1"), 0o644)
	first := run("commit", "--branch=os/amd64/master", tree)
	os.WriteFile(filepath.Join(tree, "f"), []byte("2"), 0o644)
	second := run("commit", "--branch=other", tree)
	if _, stderr, err := sh(t, `ostree_write_refs "$R" other os/amd64/eos6`, "R="+repo); err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	if got := run("rev-parse", "os/amd64/eos6"); got != second {
		t.Errorf("dest = %s, want %s", got, second)
	}
	// An existing dest is forced to the new commit, whatever it held.
	if _, stderr, err := sh(t, `ostree_write_refs "$R" os/amd64/master os/amd64/eos6`, "R="+repo); err != nil {
		t.Fatalf("%v %s", err, stderr)
	}
	if got := run("rev-parse", "os/amd64/eos6"); got != first {
		t.Errorf("dest = %s, want %s", got, first)
	}
	if _, _, err := sh(t, `ostree_write_refs "$R" no/such/ref x`, "R="+repo); err == nil {
		t.Error("a missing source ref was accepted")
	}
}

func TestEibShCompressImageUsesTheConfiguredCompression(t *testing.T) {
	harness.Need(t, "xz", "zstd")
	dir := t.TempDir()
	in := filepath.Join(dir, "disk.img")
	data := bytes.Repeat([]byte("eib image data\n"), 10000)
	os.WriteFile(in, data, 0o644)
	decompress := map[string]func(string) ([]byte, error){
		"gz": func(p string) ([]byte, error) {
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			zr, err := gzip.NewReader(f)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		},
		"xz":  func(p string) ([]byte, error) { return exec.Command("xz", "-dc", p).Output() },
		"zst": func(p string) ([]byte, error) { return exec.Command("zstd", "-dcq", p).Output() },
	}
	for c, dec := range decompress {
		out := in + "." + c
		if _, stderr, err := sh(t, `eib_compress_image "$I" "$O"`, "I="+in, "O="+out, "EIB_IMAGE_COMPRESSION="+c); err != nil {
			t.Errorf("%s: %v %s", c, err, stderr)
			continue
		}
		got, err := dec(out)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: the output does not decompress to the input (%v)", c, err)
		}
		if st, _ := os.Stat(out); st == nil || st.Size() >= int64(len(data))/10 {
			t.Errorf("%s: output not compressed: %v", c, st)
		}
	}
	if _, stderr, err := sh(t, `eib_compress_image "$I" "$I.bz2"`, "I="+in, "EIB_IMAGE_COMPRESSION=bz2"); err == nil || !strings.Contains(stderr, "unknown [image] compression 'bz2'") {
		t.Errorf("bz2: %v %s", err, stderr)
	}
}

func TestEibShFixBootChecksumRunsTheOSToolWhenThere(t *testing.T) {
	deploy := t.TempDir()
	out := filepath.Join(t.TempDir(), "called")
	if _, stderr, err := sh(t, `eib_fix_boot_checksum /dev/loop9 "$D"`, "D="+deploy); err != nil {
		t.Errorf("without the tool: %v %s", err, stderr)
	}
	writeFile(t, filepath.Join(deploy, "usr", "sbin", "amlogic-fix-spl-checksum"), "#!/bin/sh\necho \"$@\" > "+out+"\n", 0o755)
	if _, stderr, err := sh(t, `eib_fix_boot_checksum /dev/loop9 "$D"`, "D="+deploy); err != nil {
		t.Errorf("with the tool: %v %s", err, stderr)
	}
	if got, _ := os.ReadFile(out); string(got) != "/dev/loop9\n" {
		t.Errorf("the tool got %q", got)
	}
	if _, stderr, err := sh(t, `eib_fix_boot_checksum /dev/loop9`); err == nil || !strings.Contains(stderr, "No deployment supplied") {
		t.Errorf("without a deployment: %v %s", err, stderr)
	}
}
