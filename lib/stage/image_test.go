package stage

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/mount"
	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
)

func TestInRootFollowsLinksInsideTheRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/lib", "var", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"usr/local":       "../var/local",           // relative, from /usr
		"etc/os-release":  "/usr/lib/os-release",    // absolute: from the root, not the host's /usr
		"usr/escape":      "../../../../../../../x", // ".." stops at the root
		"etc/loop":        "loop",
		"usr/lib/modules": "/var/lib/../../usr/lib/mods",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for in, want := range map[string]string{
		"/usr/local":           "var/local",
		"/usr/local/bin":       "var/local/bin",
		"usr/local/../lib":     "var/lib",
		"/etc/os-release":      "usr/lib/os-release",
		"/usr/escape/y":        "x/y",
		"/usr/lib/modules/6.1": "usr/lib/mods/6.1",
		"/":                    "",
	} {
		got, err := inRoot(root, in)
		if err != nil {
			t.Errorf("inRoot(%q): %v", in, err)
			continue
		}
		if got != filepath.Join(root, want) {
			t.Errorf("inRoot(%q) = %s, want <root>/%s", in, got, want)
		}
	}
	if _, err := inRoot(root, "/etc/loop/x"); err == nil || !strings.Contains(err.Error(), "symbolic links") {
		t.Errorf("a link loop: %v, want an error", err)
	}
}

// fixtureRepo commits ostreetest.Tree, with /usr/local a link to
// ../var/local and an /etc/resolv.conf of the OS's own, into an archive
// repo (pulled locally, as from eib's cache repo), with collection ID
// collectionID unless "".
func fixtureRepo(t *testing.T, ref, collectionID string) string {
	t.Helper()
	ctx := context.Background()
	tree := ostreetest.Tree(t)
	if err := os.Symlink("../var/local", filepath.Join(tree, "usr", "local")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr", "etc", "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "repo"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	if collectionID != "" {
		if err := repo.ConfigSet(ctx, "core.collection-id", collectionID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := repo.Commit(ctx, ostree.Commit{Branch: ref, Tree: tree, Subject: "fixture", Version: "1.0"}); err != nil {
		t.Fatal(err)
	}
	// With a collection ID, this also commits ostree-metadata.
	if err := repo.UpdateSummary(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return repo.Path
}

// imageBuild is a build of the fixture repo for arch, with a stale file in
// outdir; set adds or replaces "section:key" values.
func imageBuild(t *testing.T, arch string, set map[string]string) (*build.Build, string) {
	t.Helper()
	ostreetest.Need(t, "ostree", "chattr")
	if os.Geteuid() != 0 {
		t.Skip("deploying and mounting need root")
	}
	const ref = "eibtest/os/master"
	dir := t.TempDir()
	c := config.New()
	for k, v := range map[string]string{"arch": arch, "cachedir": filepath.Join(dir, "cache"),
		"outdir": filepath.Join(dir, "out"), "tmpdir": filepath.Join(dir, "tmp")} {
		c.Set("build", k, v)
	}
	for k, v := range map[string]string{"os": "eibtest", "remote": "eibtest", "pull_url": "http://127.0.0.1:1/",
		"deploy_url": "", "ref": ref, "ref_deploy": "", "gpg_verify": "false", "checkout": filepath.Join(dir, "sysroot"),
		"kargs": "root=LABEL=ostree rw"} {
		c.Set("ostree", k, v)
	}
	collectionID := set["test:collection-id"]
	delete(set, "test:collection-id")
	repoDir := fixtureRepo(t, ref, collectionID)
	c.Set("ostree", "repodir", repoDir)
	if collectionID != "" {
		c.Set("ostree", "deploy_url", ostreetest.Serve(t, repoDir))
	}
	for k, v := range set {
		section, key, _ := strings.Cut(k, ":")
		c.Set(section, key, v)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "out", "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	b := &build.Build{Config: c, Public: c, SrcDir: src, Log: buildlog.New(&log, false, nil)}
	t.Cleanup(func() {
		if err := b.Cleanup(); err != nil {
			t.Error(err)
		}
		if left, _ := mount.MountPoints(dir); len(left) > 0 {
			t.Errorf("left mounted: %v", left)
		}
		t.Logf("build log:\n%s", log.String())
	})
	return b, dir
}

// prepare runs what the image stage runs before the image hooks.
func prepare(t *testing.T, b *build.Build) int {
	t.Helper()
	s, err := readOSTreeSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := deploy(context.Background(), b, s); err != nil {
		t.Fatal(err)
	}
	mark := b.CleanupMark()
	if err := setupImageRoot(b); err != nil {
		t.Fatal(err)
	}
	if err := recreateOutDir(b); err != nil {
		t.Fatal(err)
	}
	return mark
}

// hook runs a shell script as an image hook would: on the host, with the
// build's environment.
func hook(t *testing.T, b *build.Build, script string) string {
	t.Helper()
	env, err := b.Environ()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euc", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hook: %v\n%s", err, out)
	}
	return string(out)
}

// TestImageHooksFindTheDeploymentAsEIBPreparesIt: what EIB's
// stages/eib_image gives the image hooks, seen from a hook: the field case
// (`mkdir -p "$OSTREE_DEPLOYMENT/usr/local/bin"` with /usr/local a link to
// ../var/local) works and lands in OSTREE_VAR; the mounts, in EIB's order
// and places; the host's resolv.conf; an empty outdir; the sysroot's
// boot/grub and repo config; the OSTREE_* variables. Teardown puts the
// OS's resolv.conf back and unmounts everything.
func TestImageHooksFindTheDeploymentAsEIBPreparesIt(t *testing.T) {
	b, dir := imageBuild(t, "amd64", nil)
	mark := prepare(t, b)
	dep, varDir, sysroot := b.Deployment.Path, b.Deployment.VarDir, b.Deployment.Sysroot

	hook(t, b, `mkdir -p "$OSTREE_DEPLOYMENT/usr/local/bin"; echo hello > "$OSTREE_DEPLOYMENT/usr/local/bin/eib-hello"`)
	if got, err := os.ReadFile(filepath.Join(varDir, "local", "bin", "eib-hello")); err != nil || string(got) != "hello\n" {
		t.Errorf("the hook's /usr/local/bin/eib-hello is not in OSTREE_VAR/local/bin: %q %v", got, err)
	}

	env := hook(t, b, `echo "D=$OSTREE_DEPLOYMENT V=$OSTREE_VAR C=$OSTREE_CURRENT_DEPLOYMENT P=${OSTREE_DEPLOY_PAYG-unset}"`)
	want := "D=" + dep + " V=" + sysroot + "/ostree/deploy/eibtest/var C=" + filepath.Base(dep) + " P=unset\n"
	if env != want {
		t.Errorf("hook environment\n got %q\nwant %q", env, want)
	}

	points, err := mount.MountPoints(dep)
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, p := range points {
		rel = append(rel, "/"+strings.TrimPrefix(strings.TrimPrefix(p, dep), "/"))
	}
	wantMounts := []string{"/", "/", "/sys", "/proc", "/dev", "/dev/pts", "/tmp", "/var", "/sysroot",
		hooks.ChrootCacheDir, hooks.ChrootSrcDir}
	if !slices.Equal(rel, wantMounts) {
		t.Errorf("mounts in the deployment\n got %v\nwant %v (EIB's order)", rel, wantMounts)
	}
	// The cache is writable there, as in EIB.
	hook(t, b, `touch "$OSTREE_DEPLOYMENT`+hooks.ChrootCacheDir+`/written"`)
	if _, err := os.Stat(filepath.Join(dir, "cache", "written")); err != nil {
		t.Errorf("the cache bind is not the cachedir or not writable: %v", err)
	}

	host, _ := os.ReadFile("/etc/resolv.conf")
	if got, _ := os.ReadFile(filepath.Join(dep, "etc", "resolv.conf")); string(got) != string(host) {
		t.Errorf("the deployment's resolv.conf during the hooks is not the host's: %q", got)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "out")); err != nil || len(ents) != 0 {
		t.Errorf("outdir is not empty for the image hooks: %v %v", ents, err)
	}
	if st, err := os.Stat(filepath.Join(sysroot, "boot", "grub")); err != nil || !st.IsDir() {
		t.Errorf("no boot/grub in the sysroot: %v", err)
	}
	repo := ostree.Open(filepath.Join(sysroot, "ostree", "repo"))
	// ostree's syslinux backend keeps the menu eib's GRUB reads.
	if target, err := os.Readlink(filepath.Join(sysroot, "boot", "syslinux", "syslinux.cfg")); err != nil || target != "../loader/syslinux.cfg" {
		t.Errorf("boot/syslinux/syslinux.cfg is not ostree's link into boot/loader: %q, %v", target, err)
	}
	for key, want := range map[string]string{"sysroot.bootloader": "syslinux", "core.add-remotes-config-dir": "false"} {
		if got, err := repo.ConfigGet(context.Background(), key); got != want {
			t.Errorf("sysroot repo %s = %q (%v), want %q", key, got, err, want)
		}
	}
	if _, err := repo.ConfigGet(context.Background(), `remote "eibtest".collection-id`); err == nil {
		t.Errorf("the remote has a collection-id without enable_p2p_updates")
	}

	if err := b.CleanupTo(mark); err != nil {
		t.Fatal(err)
	}
	if left, _ := mount.MountPoints(dep); len(left) > 0 {
		t.Errorf("left mounted after the hooks: %v", left)
	}
	if got, err := os.ReadFile(filepath.Join(dep, "etc", "resolv.conf")); string(got) != "nameserver 192.0.2.53\n" {
		t.Errorf("the OS's resolv.conf was not put back: %q %v", got, err)
	}
}

// TestArm64SysrootGetsEIBsUBootSetup: on arm64 EIB prepares boot/loader.0
// with an empty uEnv.txt, links boot/loader and boot/uEnv.txt, and makes
// ostree's u-boot backend write the deployment's uEnv.txt; image:sdboot
// exports OSTREE_DEPLOY_PAYG=1 to the hooks.
func TestArm64SysrootGetsEIBsUBootSetup(t *testing.T) {
	b, _ := imageBuild(t, "arm64", map[string]string{"image:sdboot": "true"})
	prepare(t, b)
	sysroot := b.Deployment.Sysroot
	repo := ostree.Open(filepath.Join(sysroot, "ostree", "repo"))
	if got, err := repo.ConfigGet(context.Background(), "sysroot.bootloader"); got != "uboot" {
		t.Errorf("sysroot.bootloader = %q (%v), want uboot", got, err)
	}
	if target, err := os.Readlink(filepath.Join(sysroot, "boot", "uEnv.txt")); err != nil || target != "loader/uEnv.txt" {
		t.Errorf("boot/uEnv.txt -> %q (%v), want loader/uEnv.txt", target, err)
	}
	env, err := os.ReadFile(filepath.Join(sysroot, "boot", "uEnv.txt"))
	if err != nil || !strings.Contains(string(env), "kernel_image=") {
		t.Errorf("ostree wrote no uEnv.txt for the deployment: %q %v", env, err)
	}
	if _, err := os.Stat(filepath.Join(sysroot, "boot", "grub")); err == nil {
		t.Errorf("boot/grub made on arm64")
	}
	if got := hook(t, b, `echo "${OSTREE_DEPLOY_PAYG-unset}"`); got != "1\n" {
		t.Errorf("OSTREE_DEPLOY_PAYG = %q with image:sdboot, want 1", got)
	}
}

// TestP2PGivesTheDeployedRemoteItsCollectionID: with [ostree]
// enable_p2p_updates, as EIB's stages/eib_image, the deployed remote gets
// the collection ID of the deploy URL's summary and gpg-verify-summary =
// false, and the sysroot repo the remote's ostree-metadata ref.
func TestP2PGivesTheDeployedRemoteItsCollectionID(t *testing.T) {
	b, _ := imageBuild(t, "amd64", map[string]string{"ostree:enable_p2p_updates": "true", "test:collection-id": "org.example.EibTest"})
	prepare(t, b)
	ctx := context.Background()
	repo := ostree.Open(filepath.Join(b.Deployment.Sysroot, "ostree", "repo"))
	for key, want := range map[string]string{`remote "eibtest".collection-id`: "org.example.EibTest",
		`remote "eibtest".gpg-verify-summary`: "false"} {
		if got, err := repo.ConfigGet(ctx, key); got != want {
			t.Errorf("%s = %q (%v), want %q", key, got, err, want)
		}
	}
	refs, err := repo.Refs(ctx)
	if err != nil || !slices.Contains(refs, "eibtest:ostree-metadata") {
		t.Errorf("sysroot refs %v (%v), want eibtest:ostree-metadata", refs, err)
	}
}
