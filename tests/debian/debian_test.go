// Package debian builds the Debian variant of the demo OS (systemd,
// dracut with ostree's module, ostree-prepare-root), images it with eib,
// boots it with BIOS and UEFI, and runs the update test: inside the
// installed system, `ostree admin upgrade` to a newer commit served by the
// test, reboot into it, roll back, reboot into the old one.
//
// The OS is built by helpers/make-demo-repo --debian into
// EIB_TEST_DEBIAN_CACHE (default /var/cache/eib-demo-deb), which keeps the
// .debs and reuses the committed tree while its inputs are unchanged.
package debian

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check"
	"github.com/eib-builder/eib/lib/check/checktest"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

const ref = "eib-demo/amd64/debian"

// marker is the line the Debian demo's unit prints once multi-user.target
// is reached, with the booted deployment (<commit>.<serial>).
var marker = regexp.MustCompile(`EIB-DEMO-BOOT-OK debian ([0-9a-f]{64})\.[0-9]+`)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return strings.TrimSpace(string(out))
}

// debianRepo builds (or reuses) the Debian demo and returns its cache.
func debianRepo(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("EIB_TEST_DEBIAN_CACHE")
	if cache == "" {
		cache = "/var/cache/eib-demo-deb"
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(srcRoot, "helpers", "make-demo-repo"), "--debian", "--cache", cache)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helpers/make-demo-repo --debian --cache %s: %v\n%s", cache, err, out)
	}
	t.Logf("Debian demo OS ready in %.1f s (cache %s)", time.Since(start).Seconds(), cache)
	return cache
}

// updateRepo makes the test's own archive repo: the Debian commit of the
// cache, then a newer commit of the same branch (one more file), signed
// with the demo key like the first. It returns the repo, the old and the
// new commit, and publish, which points the branch at a commit and signs
// the summary again.
func updateRepo(t *testing.T, cache, dir string) (repo, old, newer string, publish func(commit string)) {
	t.Helper()
	repo = filepath.Join(dir, "repo")
	run(t, "ostree", "--repo="+repo, "init", "--mode=archive")
	run(t, "ostree", "--repo="+repo, "pull-local", filepath.Join(cache, "repo"), ref)
	old = run(t, "ostree", "--repo="+repo, "rev-parse", ref)
	// A short path: gpg-agent's socket lives in the home.
	gnupg, err := os.MkdirTemp("/tmp", "eibgpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run()
		os.RemoveAll(gnupg)
	})
	run(t, "gpg", "--batch", "--quiet", "--homedir", gnupg, "--import", filepath.Join(cache, "keys", "eib-demo.sec.asc"))
	key := run(t, "sh", "-c", "gpg --batch --homedir "+gnupg+" --with-colons --list-secret-keys | awk -F: '$1 == \"fpr\" { print $10; exit }'")
	extra := filepath.Join(dir, "extra")
	harness.WriteFiles(t, extra, map[string]string{"usr/share/eib-update-test": "the newer commit\n"})
	newer = run(t, "ostree", "--repo="+repo, "commit", "--branch="+ref, "--tree=ref="+old, "--tree=dir="+extra,
		"--owner-uid=0", "--owner-gid=0", "--subject=eib update test", "--add-metadata-string=version=update-test",
		"--gpg-sign="+key, "--gpg-homedir="+gnupg)
	publish = func(commit string) {
		t.Helper()
		run(t, "ostree", "--repo="+repo, "reset", ref, commit)
		run(t, "ostree", "--repo="+repo, "summary", "--update", "--gpg-sign="+key, "--gpg-homedir="+gnupg)
	}
	return repo, old, newer, publish
}

// TestDebianBootsAndFollowsItsUpdates is the whole of issue 14's proof for
// a real OS: image, boot with both firmwares, update, rollback.
func TestDebianBootsAndFollowsItsUpdates(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the build deploys an OSTree sysroot and needs root")
	}
	harness.Need(t, "mmdebstrap", "ostree", "gpg", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage")
	cache := debianRepo(t)
	p := harness.NewProject(t)
	t.Cleanup(func() {
		if left := checktest.QEMUProcesses(t, p.Dir); len(left) != 0 {
			t.Errorf("qemu processes left behind: %v", left)
		}
	})
	repo, old, newer, publish := updateRepo(t, cache, p.Dir)
	// The repo holds both commits: the build takes the branch's head,
	// so it is served with the branch at the old commit first.
	publish(old)
	url := strings.TrimSuffix(harness.Serve(t, repo), "/")
	port := url[strings.LastIndex(url, ":")+1:]
	guestURL := "http://10.0.2.2:" + port
	key, err := os.ReadFile(filepath.Join(cache, "keys", "eib-demo.asc"))
	if err != nil {
		t.Fatal(err)
	}
	p.Write("data/keys/eib-demo.asc", string(key), 0o644)
	// The image's remote is the URL the guest reaches the host's server
	// at (QEMU's user network).
	p.Write("config/product/demo.ini", "[ostree]\npull_url = "+url+"\ndeploy_url = "+guestURL+"\n", 0o644)
	// The distribution's own in-guest checks ([check] guest_commands):
	// run once, after the marker boots, in a boot of their own.
	defaults := "[build]\ncachedir = " + p.Cache + "\n\n[publish]\ndir = " + filepath.Join(p.Dir, "pub") + "\n\n[check]\nboot_timeout = 300\n"
	p.Write("config/defaults.ini", defaults+guestChecks, 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := p.Command(ctx, eibBin, srcRoot, "--product", "demo", "debian").CombinedOutput()
	if err != nil {
		t.Fatalf("eib --product demo debian: %v\n%s", err, lastLines(string(out), 60))
	}
	t.Logf("image built and boot-checked in %.1f s", time.Since(start).Seconds())
	if !strings.Contains(string(out), "boot loader: GRUB reads ostree's menu") {
		t.Errorf("the build did not install the menu that follows the deployments:\n%s", lastLines(string(out), 40))
	}
	for _, fw := range []string{"bios", "uefi"} {
		m := regexp.MustCompile(`booted with ` + fw + ` firmware in ([0-9.]+) s`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("no %s boot in the build output:\n%s", fw, lastLines(string(out), 40))
		}
		t.Logf("Debian boot to the marker with %s: %s s", fw, m[1])
	}
	guestChecksPassed(t, string(out), p.Tmpdir(), old)
	imgs, _ := filepath.Glob(filepath.Join(p.Tmpdir(), "*.img"))
	if len(imgs) != 1 {
		t.Fatalf("want one raw image in %s, found %v", p.Tmpdir(), imgs)
	}
	publish(newer)

	for _, fw := range []check.Firmware{check.BIOS, check.UEFI} {
		t.Run(string(fw), func(t *testing.T) {
			updateTest(t, imgs[0], fw, guestURL, old, newer)
		})
	}

	// The same image, checked again (--from check) with BIOS only and a
	// guest command that fails: the check stage fails naming it, and
	// nothing more is published.
	t.Run("failing guest command", func(t *testing.T) {
		pub := filepath.Join(p.Dir, "pub")
		before := filesUnder(t, pub)
		p.Write("config/defaults.ini", defaults+"firmware = bios\nguest_commands =\n  true\n  echo about to fail; false\n  echo never run\n", 0o644)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		start := time.Now()
		out, err := p.Command(ctx, eibBin, srcRoot, "--product", "demo", "--from", "check", "debian").CombinedOutput()
		t.Logf("eib --from check with a failing guest command: %.1f s", time.Since(start).Seconds())
		if err == nil {
			t.Fatalf("the check passed with a guest command that exits 1:\n%s", lastLines(string(out), 40))
		}
		want := `[check] guest_commands: ` + filepath.Base(imgs[0]) + ` with bios firmware: command 2 of 3 "echo about to fail; false": exit status 1; last 1 lines of its output:` + "\n" + `  | about to fail`
		if !strings.Contains(string(out), want) {
			t.Errorf("the build did not fail naming the command, its status and its output (want %q):\n%s", want, lastLines(string(out), 40))
		}
		if strings.Contains(string(out), "| never run") {
			t.Errorf("a command after the failed one ran:\n%s", lastLines(string(out), 40))
		}
		for _, f := range filesUnder(t, pub) {
			if !slices.Contains(before, f) && !strings.HasSuffix(f, ".failed.build.txt") {
				t.Errorf("a build that failed its guest command published %s", f)
			}
		}
	})
}

// guestChecks are the [check] keys of the Debian build's in-guest checks:
// the system is up with no failed unit, and the booted deployment is the
// one built.
const guestChecks = "guest_commands =\n  systemctl is-system-running --wait\n  ostree admin status\nguest_command_timeout = 180\n"

// guestChecksPassed checks what the build says of its guest commands: both
// passed, their output is in the build log, and the results file lists
// them.
func guestChecksPassed(t *testing.T, out, tmpdir, commit string) {
	t.Helper()
	for _, want := range []string{
		"guest $ systemctl is-system-running --wait | running",
		"guest command 1 of 2 passed",
		"guest $ ostree admin status | * ",
		"guest command 2 of 2 passed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the build output lacks %q:\n%s", want, lastLines(out, 60))
		}
	}
	if !regexp.MustCompile(`guest \$ ostree admin status \| \* \S+ ` + commit + `\.[0-9]+`).MatchString(out) {
		t.Errorf("ostree admin status in the guest does not show the booted deployment of %s:\n%s", commit, lastLines(out, 40))
	}
	if m := regexp.MustCompile(`guest commands: logged in as root after ([0-9.]+) s`).FindStringSubmatch(out); m != nil {
		t.Logf("guest session: logged in after %s s", m[1])
	}
	data, err := os.ReadFile(filepath.Join(tmpdir, "guest-commands.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"command": "systemctl is-system-running --wait"`, `"exit_status": 0`, `"result": "ok"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("guest-commands.json lacks %s:\n%s", want, data)
		}
	}
}

// filesUnder lists the files under dir (relative paths).
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	return files
}

// updateTest boots the image, upgrades to newer, reboots into it, rolls
// back and reboots into old.
func updateTest(t *testing.T, img string, fw check.Firmware, url, old, newer string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s, err := check.NewSession(ctx, check.SessionOptions{Image: img, Dir: dir, Firmware: fw, Net: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bootInto := func(want string) {
		t.Helper()
		if err := s.Boot(); err != nil {
			t.Fatal(err)
		}
		m, err := s.Expect(ctx, marker, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if m[1] != want {
			t.Fatalf("booted deployment of commit %s, want %s", m[1], want)
		}
		t.Logf("%s: booted %s after %.0f s", fw, want[:12], time.Since(start).Seconds())
		if err := s.Login(ctx, "root", 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	sh := func(cmd string, timeout time.Duration) string {
		t.Helper()
		out, rc, err := s.Run(ctx, cmd, timeout)
		if err != nil {
			t.Fatal(err)
		}
		if rc != 0 {
			t.Fatalf("%s in the guest exited %d:\n%s", cmd, rc, out)
		}
		return out
	}
	reboot := func() {
		t.Helper()
		if err := s.Send("systemctl reboot"); err != nil {
			t.Fatal(err)
		}
		if err := s.WaitExit(3 * time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	bootInto(old)
	sh("ip link set lo up; d=$(ls /sys/class/net | grep -v '^lo$' | head -n1); ip link set $d up && ip addr add 10.0.2.15/24 dev $d", time.Minute)
	if got := sh("ostree remote show-url eib-demo", time.Minute); !strings.Contains(got, url) {
		t.Fatalf("the image's remote is %q, want %s", got, url)
	}
	sh("ostree admin upgrade", 10*time.Minute)
	if got := sh("ostree admin status", time.Minute); !strings.Contains(got, newer) {
		t.Fatalf("ostree admin status after the upgrade does not list %s:\n%s", newer, got)
	}
	reboot()
	bootInto(newer)
	sh("test -f /usr/share/eib-update-test", time.Minute)
	// Roll back: select the previous deployment, ostree's second entry,
	// in the menu (the booted deployment cannot be undeployed). A longer
	// TIMEOUT (ostree keeps that line) gives the test time to choose.
	if got := sh("grep -c '^LABEL' /boot/syslinux/syslinux.cfg", time.Minute); strings.TrimSpace(got) != "2" {
		t.Fatalf("ostree's menu after the upgrade lists %s entries, want 2", got)
	}
	sh("sed -i 's/^TIMEOUT .*/TIMEOUT 300/' /boot/syslinux/syslinux.cfg", time.Minute)
	reboot()
	if err := s.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expect(ctx, regexp.MustCompile(`\(ostree:1\)`), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	// Down, then Enter (Send ends the line).
	if err := s.Send("\x1b[B"); err != nil {
		t.Fatal(err)
	}
	m, err := s.Expect(ctx, marker, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != old {
		t.Fatalf("the rollback booted commit %s, want %s", m[1], old)
	}
	t.Logf("%s: update test (boot, upgrade, reboot, rollback, reboot) in %.0f s", fw, time.Since(start).Seconds())
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestABrokenMenuFailsTheImageStage: an image hook leaves ostree's menu
// with an entry that boots nothing; the image stage fails naming the file
// and nothing is published.
func TestABrokenMenuFailsTheImageStage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the build deploys an OSTree sysroot and needs root")
	}
	harness.Need(t, "mmdebstrap", "ostree", "gpg", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage")
	cache := debianRepo(t)
	p := harness.NewProject(t)
	url := harness.Serve(t, filepath.Join(cache, "repo"))
	key, err := os.ReadFile(filepath.Join(cache, "keys", "eib-demo.asc"))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(p.Dir, "pub")
	p.Write("data/keys/eib-demo.asc", string(key), 0o644)
	p.Write("config/product/demo.ini", "[ostree]\npull_url = "+url+"\n", 0o644)
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+pub+
		"\n\n[image]\nhooks_add = 70-break-menu\n\n[check]\nboot = false\n", 0o644)
	p.Write("hooks/image/70-break-menu", "#!/bin/bash\nset -e\n"+
		`printf 'LABEL broken by a hook\n\tAPPEND quiet\n' >> "$OSTREE_DEPLOYMENT/sysroot/boot/syslinux/syslinux.cfg"`+"\n", 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	out, err := p.Command(ctx, eibBin, srcRoot, "--product", "demo", "debian").CombinedOutput()
	if err == nil {
		t.Fatalf("the build passed with a broken menu:\n%s", lastLines(string(out), 30))
	}
	if !regexp.MustCompile(`boot/syslinux/syslinux\.cfg: LABEL "broken by a hook" has no KERNEL line`).Match(out) {
		t.Errorf("the build did not fail in the image stage naming the menu file:\n%s", lastLines(string(out), 30))
	}
	// Only the error stage's failed-build log may be published.
	filepath.WalkDir(pub, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, ".failed.build.txt") {
			t.Errorf("a build that failed its image stage published %s", path)
		}
		return nil
	})
}
