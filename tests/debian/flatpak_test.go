package debian

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/check"
	"github.com/eib-builder/eib/lib/check/checktest"
	"github.com/eib-builder/eib/tests/harness"
)

// flatpakDeployURL is the remote URL the image's installation must keep
// (the build pulls from the test's server).
const flatpakDeployURL = "https://flatpak.eib.invalid/repo/"

// TestDebianListsItsPreinstalledFlatpakApps: the Debian demo (with
// Debian's flatpak package) built with an app of the test Flatpak
// repository (tests/flatpak/make-repo.sh), booted once with BIOS firmware:
// in the guest, `flatpak list` shows the app and its runtime from the
// remote, and `flatpak remotes` the remote at its deploy URL. The build
// runs the OS's own Flatpak triggers on the installation.
func TestDebianListsItsPreinstalledFlatpakApps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the build deploys an OSTree sysroot and needs root")
	}
	harness.Need(t, "mmdebstrap", "ostree", "gpg", "flatpak", "bwrap", "qemu-system-x86_64", "qemu-img", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage")
	cache := debianRepo(t)
	fpDir := harness.FlatpakTestRepo(t)
	p := harness.NewProject(t)
	t.Cleanup(func() {
		if left := checktest.QEMUProcesses(t, p.Dir); len(left) != 0 {
			t.Errorf("qemu processes left behind: %v", left)
		}
	})
	osURL := harness.Serve(t, filepath.Join(cache, "repo"))
	fpURL := harness.Serve(t, filepath.Join(fpDir, "repo"))
	key, err := os.ReadFile(filepath.Join(cache, "keys", "eib-demo.asc"))
	if err != nil {
		t.Fatal(err)
	}
	fpKey, err := os.ReadFile(filepath.Join(fpDir, "key.gpg"))
	if err != nil {
		t.Fatal(err)
	}
	p.Write("data/keys/eib-demo.asc", string(key), 0o644)
	p.Write("config/product/demo.ini", "[ostree]\npull_url = "+osURL+"\n", 0o644)
	repoFile := p.Write("eibtest.flatpakrepo", "[Flatpak Repo]\nTitle=eib test apps\nUrl="+fpURL+
		"\nGPGKey="+base64.StdEncoding.EncodeToString(fpKey)+"\n", 0o644)
	// No boot check in the build: the test boots the image once itself.
	p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n[publish]\ndir = "+filepath.Join(p.Dir, "pub")+
		"\n\n[check]\nboot = false\n\n[flatpak-remote-eibtest]\nrepo_file = "+repoFile+"\ndeploy_url = "+flatpakDeployURL+
		"\ndefault_branch = stable\napps_add = org.eib.test.Hello\n", 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := p.Command(ctx, eibBin, srcRoot, "--product", "demo", "debian").CombinedOutput()
	if err != nil {
		t.Fatalf("eib --product demo debian: %v\n%s", err, lastLines(string(out), 60))
	}
	t.Logf("Debian image with Flatpak apps built in %.1f s", time.Since(start).Seconds())
	// The Debian flatpak package's triggers ran on the installation.
	for _, trig := range []string{"desktop-database", "gtk-icon-cache", "mime-database"} {
		if want := "flatpak: ran the OS's trigger /usr/share/flatpak/triggers/" + trig + ".trigger on /var/lib/flatpak"; !strings.Contains(string(out), want) {
			t.Errorf("the build log lacks %q:\n%s", want, lastLines(string(out), 40))
		}
	}
	imgs, _ := filepath.Glob(filepath.Join(p.Tmpdir(), "*.img"))
	if len(imgs) != 1 {
		t.Fatalf("want one raw image in %s, found %v", p.Tmpdir(), imgs)
	}

	dir := t.TempDir()
	log, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s, err := check.NewSession(ctx, check.SessionOptions{Image: imgs[0], Dir: dir, Firmware: check.BIOS, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boot := time.Now()
	if err := s.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expect(ctx, marker, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("bios: booted after %.0f s", time.Since(boot).Seconds())
	if err := s.Login(ctx, "root", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	sh := func(cmd string) [][]string {
		t.Helper()
		// Piped: flatpak prints tab-separated columns, not a table cut
		// to the console's width.
		got, rc, err := s.Run(ctx, cmd+" | cat", 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if rc != 0 {
			t.Fatalf("%s in the guest exited %d:\n%s", cmd, rc, got)
		}
		t.Logf("guest: %s:\n%s", cmd, got)
		var rows [][]string
		for _, l := range strings.Split(got, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				rows = append(rows, f)
			}
		}
		return rows
	}
	has := func(rows [][]string, want ...string) bool {
		for _, r := range rows {
			if strings.Join(r, " ") == strings.Join(want, " ") {
				return true
			}
		}
		return false
	}
	list := sh("flatpak list --columns=application,branch,origin")
	for _, want := range [][]string{{"org.eib.test.Hello", "stable", "eibtest"}, {"org.eib.test.Platform", "1", "eibtest"}} {
		if !has(list, want...) {
			t.Errorf("flatpak list in the guest lacks %v: %v", want, list)
		}
	}
	if remotes := sh("flatpak remotes --columns=name,url"); !has(remotes, "eibtest", flatpakDeployURL) || len(remotes) != 1 {
		t.Errorf("flatpak remotes in the guest: %v, want only eibtest at %s", remotes, flatpakDeployURL)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}
