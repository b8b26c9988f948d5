package ostree

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
	"github.com/eib-builder/eib/tests/harness"
)

const recordHook = `d="$OSTREE_DEPLOYMENT"
{
  echo "deployment=$OSTREE_CURRENT_DEPLOYMENT"
  echo "var=$OSTREE_VAR"
  echo "mark=$(cat "$d/etc/eib-content-mark")"
  echo "hostname=$(cat "$d/etc/hostname")"
  for k in "$d"/usr/lib/modules/*/vmlinuz "$d"/usr/lib/modules/*/initramfs.img "$EIB_OSTREE_CHECKOUT"/boot/ostree/*/*; do
    echo "kernel=${k#"$EIB_OSTREE_CHECKOUT"}"
  done
  echo "object=$(find "$EIB_OSTREE_CHECKOUT/ostree/repo/objects" -samefile "$d/usr/bin/busybox")"
  awk -v d="$d" 'index($5, d) == 1 { print "mount=" substr($5, length(d) + 1) }' /proc/self/mountinfo
  test -e "$d/proc/self/status" && echo "proc=yes"
  test -s "$d/etc/resolv.conf" && echo "resolv=yes"
  ostree --repo="$EIB_OSTREE_CHECKOUT/ostree/repo" refs | sed 's/^/ref=/'
  echo "remote=$(ostree --repo="$EIB_OSTREE_CHECKOUT/ostree/repo" config get 'remote "eib-demo".url')"
} > "$EIB_TMPDIR/record.txt"
`

// TestDemoBuildRunsContentAndImageHooksOnTheDeployment pulls the demo OS
// from helpers/serve-repo, deploys it and checks, from the hooks, what
// they see; a last failing image hook shows that every mount and the
// sysroot go away even when a hook fails.
func TestDemoBuildRunsContentAndImageHooksOnTheDeployment(t *testing.T) {
	demo := demoRepo(t)
	p := newProject(t, "[content]\nhooks = 50-mark\n\n[image]\nhooks = 50-record 60-os-release.chroot 99-stop\n\n"+
		"[ostree]\nref_deploy = eib-demo/amd64/stable\n"+
		// The demo product points the image at a fixed placeholder URL;
		// empty, the image's remote is the URL pulled from.
		"deploy_url =\n")
	demo.Install(t, p.Local)
	url := demo.URL
	p.Write("hooks/content/50-mark", `echo content-hook > "$OSTREE_DEPLOYMENT/etc/eib-content-mark"`+"\n", 0o644)
	p.Write("hooks/image/50-record", recordHook, 0o644)
	p.Write("hooks/image/60-os-release.chroot", "#!/bin/sh\nset -e\nsed 's/^/chroot-saw-/' /etc/os-release\n", 0o755)
	p.Write("hooks/image/99-stop", "echo EIB-TEST-STOP\nexit 3\n", 0o644)

	code, _, stderr := p.run()
	if code != 2 || !strings.Contains(harness.LastLine(stderr), "image/99-stop") {
		t.Fatalf("eib exited %d with %q; want 2 naming hook image/99-stop", code, harness.LastLine(stderr))
	}
	record, err := os.ReadFile(filepath.Join(p.Tmpdir(), "record.txt"))
	if err != nil {
		t.Fatalf("the image hook 50-record did not run: %v", err)
	}
	rec := string(record)
	t.Logf("record.txt:\n%s", rec)
	osDir := "/ostree/deploy/eib-demo"
	dep := osDir + "/deploy/" + demo.Commit + ".0"
	for _, want := range []string{
		"deployment=" + demo.Commit + ".0\n",
		"var=" + p.checkout() + osDir + "/var\n",
		"mark=content-hook\n",                 // the content hook wrote into the deployment
		"hostname=eib-demo\n",                 // /etc merged from /usr/etc
		"kernel=" + dep + "/usr/lib/modules/", // the kernel in the tree
		"/vmlinuz\n",
		"/initramfs.img\n",
		"kernel=/boot/ostree/eib-demo-",                    // and where ostree deployed it
		"object=" + p.checkout() + "/ostree/repo/objects/", // hardlinked to the repo object
		"mount=\n", "mount=/proc\n", "mount=/sys\n", "mount=/dev\n", "mount=/dev/pts\n", "mount=/tmp\n",
		"mount=/var\n", "mount=/sysroot\n", "mount=" + hooks.ChrootCacheDir + "\n", "mount=" + hooks.ChrootSrcDir + "\n",
		"proc=yes\n", "resolv=yes\n",
		"remote=" + url + "\n",                 // deploy_url is empty: the URL pulled from
		"ref=eib-demo:eib-demo/amd64/stable\n", // the system follows ref_deploy
	} {
		if !strings.Contains(rec, want) {
			t.Errorf("record.txt lacks %q", want)
		}
	}
	log, err := os.ReadFile(filepath.Join(p.Tmpdir(), "build.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"chroot-saw-ID=eib-demo", "EIB-TEST-STOP", "pulled eib-demo/amd64/master " + demo.Commit} {
		if !strings.Contains(string(log), want) {
			t.Errorf("build.txt lacks %q", want)
		}
	}
	info, err := os.ReadFile(filepath.Join(p.Tmpdir(), "ostree.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Branch eib-demo/amd64/master\n", "commit " + demo.Commit, "Good signature"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("ostree.txt lacks %q:\n%s", want, info)
		}
	}
	// The cache repo keeps the commit for the next build, under the
	// pulled ref and its ref_deploy alias.
	for _, ref := range []string{ostreetest.DemoRef, "eib-demo/amd64/stable"} {
		got, err := ostree.Open(filepath.Join(p.Cache, "ostree", "eib-demo")).RevParse(context.Background(), ref)
		if err != nil || got != demo.Commit {
			t.Errorf("cache repo has %s = %q (%v), want %s", ref, got, err, demo.Commit)
		}
	}
}

// TestPullFailuresStopTheBuildWithOneClearError: a commit signed by an
// unknown key, an unsigned commit, an unsigned summary, a wrong ref and an
// unreachable URL each stop the build in the ostree stage with one final
// line naming the cause, leaving no mount and no sysroot; no trusted key is
// a configuration error, found before the build begins (exit 1).
func TestPullFailuresStopTheBuildWithOneClearError(t *testing.T) {
	good, goodPub := ostreetest.Key(t, "good")
	other, _ := ostreetest.Key(t, "other")
	const ref = "eibtest/amd64/master"
	goodRepo, _ := ostreetest.ArchiveRepo(t, ref, good)
	otherRepo, _ := ostreetest.ArchiveRepo(t, ref, other)
	unsignedRepo, _ := ostreetest.ArchiveRepo(t, ref, nil)
	unsignedCommitRepo, _ := ostreetest.ArchiveRepoSigned(t, ref, nil, good)
	goodURL := ostreetest.Serve(t, goodRepo)

	srcKeys, _ := filepath.Glob(filepath.Join(srcRoot, "data", "keys", "*.asc"))
	for _, tc := range []struct {
		name, url, ref string
		noKey          bool
		want           []string
	}{
		{name: "signed by an unknown key", url: ostreetest.Serve(t, otherRepo), ref: ref,
			want: []string{"ostree pull", "public key not found"}},
		{name: "unsigned commit", url: ostreetest.Serve(t, unsignedCommitRepo), ref: ref,
			want: []string{"ostree pull", "GPG verification enabled, but no signatures found"}},
		{name: "unsigned repo", url: ostreetest.Serve(t, unsignedRepo), ref: ref,
			want: []string{"ostree pull", "no summary.sig found"}},
		{name: "wrong ref", url: goodURL, ref: "eibtest/amd64/nope",
			want: []string{"ostree pull", "No such branch 'eibtest/amd64/nope'"}},
		{name: "unreachable", url: ostreetest.DeadURL(t), ref: ref,
			want: []string{"ostree pull", "127.0.0.1", "connect"}},
		{name: "no trusted key", url: goodURL, ref: ref, noKey: true,
			want: []string{"[ostree] gpg_verify is on but no trusted key", filepath.Join(srcRoot, "data", "keys"), "/local/data/keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noKey && len(srcKeys) > 0 {
				t.Skipf("the eib tree trusts %v", srcKeys)
			}
			p := newProject(t, "[content]\nhooks =\n\n[image]\nhooks =\n")
			if !tc.noKey {
				p.trust(goodPub, "good.asc")
			}
			p.Write("config/product/demo.ini", "[ostree]\npull_url = "+tc.url+"\nref = "+tc.ref+"\n", 0o644)
			code, _, stderr := p.run()
			final := harness.LastLine(stderr)
			t.Logf("final line: %s", final)
			if tc.noKey {
				if code != 1 || strings.Contains(stderr, "build failed") {
					t.Fatalf("eib exited %d with %q; want 1, before the build", code, final)
				}
			} else if code != 2 || !strings.Contains(final, "build failed in stage ostree") {
				t.Fatalf("eib exited %d with %q; want 2, failing in stage ostree", code, final)
			}
			for _, want := range tc.want {
				if !strings.Contains(final, want) {
					t.Errorf("final line lacks %q", want)
				}
			}
			if n := strings.Count(stderr, "build failed"); n != 1 && !tc.noKey {
				t.Errorf("%d 'build failed' lines, want one:\n%s", n, stderr)
			}
			if _, err := os.Stat(filepath.Join(p.Tmpdir(), "ostree.txt")); !os.IsNotExist(err) {
				t.Errorf("ostree.txt written by a failed pull (%v)", err)
			}
		})
	}
}

// TestDemoOSBootsToItsMarker deploys the demo commit with lib/ostree,
// makes an ext4 file system of the sysroot and boots the deployment's
// kernel and initramfs (from its boot entry) in QEMU: the initramfs must
// find the deployment and print EIB-DEMO-BOOT-OK.
func TestDemoOSBootsToItsMarker(t *testing.T) {
	ostreetest.Need(t, "qemu-system-x86_64", "mkfs.ext4", "chattr")
	demo := demoRepo(t)
	ctx := context.Background()
	dir := t.TempDir()
	sysroot, err := ostree.InitFS(ctx, filepath.Join(dir, "sysroot"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hostclean.RemoveAll(sysroot.Path, nil); err != nil {
			t.Error(err)
		}
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sysroot.OSInit(ctx, "eib-demo"))
	repo := sysroot.Repo()
	must(repo.AddRemote(ctx, ostree.Remote{Name: "eib-demo", URL: "http://127.0.0.1:1/", GPGVerify: true, Keys: []string{demo.Key}}))
	must(repo.PullLocal(ctx, demo.Repo, "eib-demo", ostreetest.DemoRef))
	must(repo.ConfigSet(ctx, "sysroot.bootloader", "none"))
	dep, err := sysroot.Deploy(ctx, ostree.Deploy{OS: "eib-demo", Refspec: "eib-demo:" + ostreetest.DemoRef,
		Kargs: []string{"root=LABEL=ostree", "console=ttyS0", "panic=-1"}})
	must(err)
	if dep.Checksum != demo.Commit {
		t.Fatalf("deployed %s, want %s", dep.Checksum, demo.Commit)
	}
	entries, err := filepath.Glob(filepath.Join(sysroot.Path, "boot/loader/entries/*.conf"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("boot entries %v (%v), want one", entries, err)
	}
	entry, err := os.ReadFile(entries[0])
	must(err)
	fields := map[string]string{}
	for _, line := range strings.Split(string(entry), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			fields[k] = v
		}
	}
	if fields["linux"] == "" || fields["initrd"] == "" {
		t.Fatalf("boot entry without linux or initrd:\n%s", entry)
	}
	img := filepath.Join(dir, "root.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "ostree", "-d", sysroot.Path, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	console := filepath.Join(dir, "console.log")
	qctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(qctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
		"-smp", "2", "-m", "512", "-display", "none", "-monitor", "none", "-serial", "file:"+console,
		"-no-reboot", "-snapshot", "-drive", "file="+img+",format=raw,if=virtio",
		"-kernel", filepath.Join(sysroot.Path, "boot", fields["linux"]),
		"-initrd", filepath.Join(sysroot.Path, "boot", fields["initrd"]),
		"-append", fields["options"])
	out, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(console)
	want := "EIB-DEMO-BOOT-OK eib-demo " + dep.Name()
	if !strings.Contains(string(log), want) {
		t.Fatalf("console lacks %q (qemu: %v %s); console:\n%s", want, err, out, log)
	}
	t.Logf("demo OS printed its marker and powered off in %.1f s", time.Since(start).Seconds())
}

// TestMakeDemoRepoReusesItsCache: a second run with unchanged inputs
// reuses the repo, and --localdir installs the public key.
func TestMakeDemoRepoReusesItsCache(t *testing.T) {
	demo := demoRepo(t)
	local := t.TempDir()
	cmd := exec.Command(filepath.Join(srcRoot, "helpers", "make-demo-repo"), "--cache", demo.Cache, "--localdir", local)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make-demo-repo: %v\n%s", err, stderr.String())
	}
	if strings.TrimSpace(string(out)) != demo.Repo || !strings.Contains(stderr.String(), "reusing") {
		t.Errorf("second run printed %q and %q; want the same repo, reused", out, stderr.String())
	}
	if !strings.Contains(stderr.String(), demo.Commit) {
		t.Errorf("second run did not keep commit %s: %s", demo.Commit, stderr.String())
	}
	key, err := os.ReadFile(filepath.Join(local, "data", "keys", "eib-demo.asc"))
	if err != nil || !strings.Contains(string(key), "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Errorf("--localdir key: %v", err)
	}
	t.Logf("cached run took %s", strconv.FormatFloat(time.Since(start).Seconds(), 'f', 1, 64))
}
