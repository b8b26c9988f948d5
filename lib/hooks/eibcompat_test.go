package hooks

// The parts of the runner that EIB's hooks rely on: the deployment's /tmp
// shared by host and .chroot hooks, EIB_DEBUG, PYTHONPATH, EIB_HOOKSDIR,
// EIB_CACHEDIR_CHROOT/EIB_SRCDIR_CHROOT and the EIB_X_CHROOT overrides.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// handOverHooks are EIB's 60-dconf-prepare / 61-dconf-compile.chroot
// pattern: a host hook leaves files in ${OSTREE_DEPLOYMENT}/tmp, a .chroot
// hook reads them in /tmp and leaves an answer, a later host hook reads it.
func handOverHooks(t *testing.T, f *fixture, out string) {
	f.cfg.Set("image", "hooks", "60-prepare 61-compile.chroot 62-after")
	writeHook(t, f.src, "image", "60-prepare", `mkdir -p "$OSTREE_DEPLOYMENT/tmp/overrides"
echo from-host > "$OSTREE_DEPLOYMENT/tmp/overrides/settings"
`, false)
	writeHook(t, f.src, "image", "61-compile.chroot", `#!/bin/sh
set -e
cat /tmp/overrides/settings > /compiled
echo from-chroot > /tmp/overrides/answer
`, true)
	writeHook(t, f.src, "image", "62-after", `cat "$OSTREE_DEPLOYMENT/tmp/overrides/answer" > "`+out+`"`+"\n", false)
}

func TestChrootHookSharesTheDeploymentsTmpfsWithHostHooks(t *testing.T) {
	f := newFixture(t)
	root := busyboxRoot(t)
	// As the image stage does: a tmpfs on the deployment's /tmp.
	if err := syscall.Mount("tmpfs", filepath.Join(root, "tmp"), "tmpfs", 0, "mode=1777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(root, "tmp"), syscall.MNT_DETACH) })
	out := filepath.Join(t.TempDir(), "answer")
	handOverHooks(t, f, out)
	f.b.SetEnv("OSTREE_DEPLOYMENT", root)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", root); err != nil {
		t.Fatalf("%v\n%s", err, f.logText(t))
	}
	if got, _ := os.ReadFile(filepath.Join(root, "compiled")); string(got) != "from-host\n" {
		t.Errorf("the .chroot hook read %q from /tmp, want what the host hook wrote", got)
	}
	if got, _ := os.ReadFile(out); string(got) != "from-chroot\n" {
		t.Errorf("the host hook after it read %q, want what the .chroot hook wrote", got)
	}
	syscall.Unmount(filepath.Join(root, "tmp"), 0)
	assertNoMountsUnder(t, root)
	// Nothing reached the deployment under the tmpfs.
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("written under the tmpfs into the deployment: %v", ents)
	}
}

func TestChrootHookOnAPlainTmpLeavesNoMountPointsBehind(t *testing.T) {
	// The content group: no tmpfs, the deployment's own /tmp directory.
	f := newFixture(t)
	root := busyboxRoot(t)
	out := filepath.Join(t.TempDir(), "answer")
	handOverHooks(t, f, out)
	f.b.SetEnv("OSTREE_DEPLOYMENT", root)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", root); err != nil {
		t.Fatalf("%v\n%s", err, f.logText(t))
	}
	if got, _ := os.ReadFile(out); string(got) != "from-chroot\n" {
		t.Errorf("hand-over through /tmp: got %q", got)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "tmp"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"overrides"}) {
		t.Errorf("the root's /tmp holds %v, want only what the hooks wrote (overrides)", names)
	}
	// A root without /tmp gets none left behind either.
	os.RemoveAll(filepath.Join(root, "tmp"))
	f.cfg.Set("image", "hooks", "10-nothing.chroot")
	writeHook(t, f.src, "image", "10-nothing.chroot", "#!/bin/sh\ntrue\n", true)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", root); err != nil {
		t.Fatalf("%v\n%s", err, f.logText(t))
	}
	if _, err := os.Lstat(filepath.Join(root, "tmp")); err == nil {
		t.Error("the runner left a /tmp in a root that had none")
	}
}

// hostEnv runs one executable host hook that dumps its environment.
func hostEnv(t *testing.T, f *fixture, root string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "env")
	f.cfg.Set("image", "hooks", "50-env")
	writeHook(t, f.src, "image", "50-env", "#!/bin/sh\nenv > "+out+"\n", true)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", root); err != nil {
		t.Fatalf("%v\n%s", err, f.logText(t))
	}
	got, _ := os.ReadFile(out)
	return string(got)
}

func TestHostHooksGetEIBDebugAndThePythonModulePath(t *testing.T) {
	f := newFixture(t)
	t.Setenv("PYTHONPATH", "/host/py")
	t.Setenv("EIB_DEBUG", "")
	os.Unsetenv("EIB_DEBUG")
	env := hostEnv(t, f, "")
	if !strings.Contains(env, "\nPYTHONPATH="+filepath.Join(f.src, "lib")+":/host/py\n") {
		t.Errorf("PYTHONPATH without <localdir>/lib:\n%s", env)
	}
	if strings.Contains(env, "EIB_DEBUG=") {
		t.Errorf("EIB_DEBUG set without --debug:\n%s", env)
	}
	if strings.Contains(env, "_CHROOT=") {
		t.Errorf("EIB_*_CHROOT set without an install root:\n%s", env)
	}

	os.MkdirAll(filepath.Join(f.local, "lib"), 0o755)
	f.b.Debug = true
	env = hostEnv(t, f, "")
	if !strings.Contains(env, "\nPYTHONPATH="+filepath.Join(f.local, "lib")+":"+filepath.Join(f.src, "lib")+":/host/py\n") {
		t.Errorf("PYTHONPATH with <localdir>/lib:\n%s", env)
	}
	if !strings.Contains(env, "\nEIB_DEBUG=1\n") {
		t.Errorf("no EIB_DEBUG=1 with --debug:\n%s", env)
	}
}

func TestChrootDirsAreExportedWhereTheRootHasThemBound(t *testing.T) {
	f := newFixture(t)
	root := busyboxRoot(t)
	// A root without the binds: the chroot function could not find
	// the eib tree there, so no EIB_*_CHROOT.
	if env := hostEnv(t, f, root); strings.Contains(env, "_CHROOT=") {
		t.Errorf("EIB_*_CHROOT exported for a root without the binds:\n%s", env)
	}
	// As the image stage binds them.
	for _, m := range [][2]string{{f.cache, ChrootCacheDir}, {f.src, ChrootSrcDir}} {
		dst := filepath.Join(root, m[1])
		os.MkdirAll(dst, 0o755)
		if err := syscall.Mount(m[0], dst, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(dst, syscall.MNT_DETACH) })
	}
	env := hostEnv(t, f, root)
	for _, want := range []string{"\nEIB_CACHEDIR_CHROOT=/tmp/eos-image-builder\n", "\nEIB_SRCDIR_CHROOT=/tmp/eos-image-builder/src\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("host hook environment lacks %q:\n%s", strings.TrimSpace(want), env)
		}
	}
}

func TestEIBHooksdirReplacesTheTreesHooks(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "out")
	other := filepath.Join(t.TempDir(), "other-hooks")
	f.cfg.Set("image", "hooks", "10-a 20-b")
	writeHook(t, f.src, "image", "10-a", "echo src-a >> "+out+"\n", false)
	os.MkdirAll(filepath.Join(other, "image"), 0o755)
	os.WriteFile(filepath.Join(other, "image", "10-a"), []byte("echo other-a >> "+out+"\n"), 0o644)
	writeHook(t, f.local, "image", "20-b", "echo local-b >> "+out+"\n", false)
	t.Setenv("EIB_HOOKSDIR", other)
	if err := f.runner.RunGroup(context.Background(), f.b, "image", ""); err != nil {
		t.Fatalf("%v\n%s", err, f.logText(t))
	}
	if got, _ := os.ReadFile(out); string(got) != "other-a\nlocal-b\n" {
		t.Errorf("hooks ran as %q, want EIB_HOOKSDIR's 10-a and the localdir's 20-b", got)
	}
	t.Setenv("EIB_HOOKSDIR", "relative/hooks")
	if err := f.runner.RunGroup(context.Background(), f.b, "image", ""); err == nil || !strings.Contains(err.Error(), "EIB_HOOKSDIR=relative/hooks: not an absolute path") {
		t.Errorf("relative EIB_HOOKSDIR: %v", err)
	}
}

func TestChrootEnvRewritesPathsAndAppliesChrootOverrides(t *testing.T) {
	local := t.TempDir()
	os.MkdirAll(filepath.Join(local, "lib"), 0o755)
	env := ChrootEnv([]string{
		"HOME=/root", "PYTHONPATH=/host/py",
		"EIB_CACHEDIR=/c", "EIB_SRCDIR=/c/src", "EIB_LOCALDIR=" + local,
		"EIB_LOCALDATADIR=" + local + "/data", "EIB_TMPFULLCONFIG=/c/build/tmp/fullconfig.ini",
		"EIB_IMAGE_FOO=/host/value", "EIB_IMAGE_FOO_CHROOT=/in/root",
		"EIB_CACHEDIR_CHROOT=/tmp/eos-image-builder", "SOURCE_DATE_EPOCH=1700000000",
	}, "/c", "/c/src", local)
	want := []string{
		"PATH=" + chrootPath, "LANG=C.UTF-8", "SHELL=/bin/bash",
		"PYTHONPATH=/tmp/eib-local/lib:/tmp/eos-image-builder/src/lib",
		"EIB_CACHEDIR=/tmp/eos-image-builder", "EIB_IMAGE_FOO=/in/root", "EIB_LOCALDATADIR=/tmp/eib-local/data",
		"EIB_LOCALDIR=/tmp/eib-local", "EIB_SRCDIR=/tmp/eos-image-builder/src",
		"EIB_TMPFULLCONFIG=/tmp/eos-image-builder/build/tmp/fullconfig.ini",
		"SOURCE_DATE_EPOCH=1700000000",
	}
	if !slices.Equal(env, want) {
		t.Errorf("ChrootEnv =\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
	// Without a localdir (or one without lib/), the eib tree's lib only.
	env = ChrootEnv([]string{"EIB_X=1"}, "/c", "/c/src", "")
	if !slices.Contains(env, "PYTHONPATH=/tmp/eos-image-builder/src/lib") {
		t.Errorf("ChrootEnv without localdir = %v", env)
	}
}
