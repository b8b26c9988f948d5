package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/sign/signtest"
	"github.com/eib-builder/eib/tests/harness"
)

// beforeAnyWork bounds how long eib may take to report a configuration
// mistake: the plan reads the configuration and the files it names, no
// more (a pull, a deploy or a disk image takes minutes). Not a benchmark.
const beforeAnyWork = 2 * time.Second

// heldLock returns a lock file that this test holds (flock, as another
// build would) until it ends.
func heldLock(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eib.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigurationMistakesExit1BeforeTheLockAndAnyWork: each kind of
// configuration mistake that a stage used to find only minutes into the
// build (after the pull, the deploy, the disk image) exits 1 at once,
// before the lock (held here by another "build", with eib willing to wait
// a minute for it), naming the file and line, the section and the key.
func TestConfigurationMistakesExit1BeforeTheLockAndAnyWork(t *testing.T) {
	dir := t.TempDir()
	key := signtest.NewKey(t, dir, "right passphrase")
	wrongPass := filepath.Join(dir, "wrong-passphrase")
	os.WriteFile(wrongPass, []byte("wrong\n"), 0o600)
	junkKey := filepath.Join(dir, "junk.asc")
	os.WriteFile(junkKey, []byte("not a key\n"), 0o600)

	// A configuration that would build: the mistakes are made on top.
	const base = "[ostree]\ndev_pull_url = http://127.0.0.1:1/repo\ngpg_verify = false\n"
	var slowest time.Duration
	defer func() { t.Logf("slowest mistake reported in %s", slowest.Round(time.Millisecond)) }()
	for _, tc := range []struct {
		name  string
		files map[string]string // the localdir; @DIR@ is dir
		args  []string
		want  []string // in stderr; @LOCAL@ is the localdir
	}{
		{name: "bad boot_marker regex",
			files: map[string]string{"config/defaults.ini": base + "[check]\nboot_marker = login(\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [check] boot_marker: "login(" is not a regular expression`}},
		// The kinds of config.KeysRead, each refused by config.Reader
		// before any work.
		{name: "relative path",
			files: map[string]string{"config/defaults.ini": base + "[image]\ngpg_homedir = gnupg\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [image] gpg_homedir: "gnupg" is a relative path: write an absolute one`}},
		{name: "relative directory of the plan",
			files: map[string]string{"config/defaults.ini": base + "[build]\noutdir = out\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [build] outdir: "out" is a relative path`}},
		{name: "bad URL",
			files: map[string]string{"config/defaults.ini": base + "deploy_url = updates.example/repo\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:4: [ostree] deploy_url: "updates.example/repo" is not an absolute URL: it has no scheme`}},
		{name: "bad enum",
			files: map[string]string{"config/defaults.ini": base + "[image]\npartition_table = mbr\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [image] partition_table: "mbr" is not one of gpt, dos`}},
		{name: "bad enum where an environment variable overrides it",
			files: map[string]string{"config/defaults.ini": base + "[check]\naccel = hvf\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [check] accel: "hvf" is not one of auto, kvm, tcg`}},
		{name: "bad int",
			files: map[string]string{"config/defaults.ini": base + "[check]\nqemu_memory = 1G\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [check] qemu_memory: "1G" is not an integer`}},
		{name: "empty int with a default",
			files: map[string]string{"config/defaults.ini": base + "[check]\nqemu_memory =\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [check] qemu_memory: empty, but it must be an integer (config/defaults.ini sets it to "1024")`}},
		{name: "negative seconds",
			files: map[string]string{"config/defaults.ini": base + "[image]\nbootloader_timeout = -1\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [image] bootloader_timeout: -1 seconds: must be 0 or more`}},
		{name: "missing guest password file",
			files: map[string]string{"config/defaults.ini": base + "[check]\nguest_commands = true\nguest_password_file = @DIR@/absent-guest-pw\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:6: [check] guest_password_file: open @DIR@/absent-guest-pw: no such file or directory`}},
		{name: "guest command timeout of 0",
			files: map[string]string{"config/defaults.ini": base + "[check]\nguest_commands =\n  systemctl is-system-running --wait\nguest_command_timeout = 0\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:7: [check] guest_command_timeout: 0: must be a positive number of seconds`}},
		{name: "guest command timeout not a number",
			files: map[string]string{"config/defaults.ini": base + "[check]\nguest_command_timeout = 2m\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [check] guest_command_timeout: "2m" is not an integer`}},
		{name: "bad bool (a key config/schema.ini does not list)",
			files: map[string]string{"config/defaults.ini": base + "enable_p2p_updates = sometimes\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:4: [ostree] enable_p2p_updates: "sometimes" is not a boolean`}},
		{name: "unknown platform on the command line",
			args:  []string{"-a", "arm64", "--platform", "pinebook"},
			files: map[string]string{"config/defaults.ini": base},
			want:  []string{`command line: [build] platform = pinebook: unsupported combination of arch "arm64" and platform "pinebook"`, "pinebookpro"}},
		{name: "unknown board in a file",
			args:  []string{"-a", "arm64"},
			files: map[string]string{"config/defaults.ini": base + "[build]\nplatform = rpi4\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [build] platform = rpi4: unsupported combination`}},
		{name: "systemd-boot on a board",
			args:  []string{"-a", "arm64", "--platform", "rpi"},
			files: map[string]string{"config/defaults.ini": base + "[image]\nsdboot = true\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:5: [image] sdboot = true: systemd-boot is only laid out for arch amd64"}},
		{name: "missing signing key (key file absent, gpg keyring absent)",
			files: map[string]string{"config/defaults.ini": base + "[image]\nsigning_key = @DIR@/absent.asc\nsigning_keyid = 0123456789ABCDEF\ngpg_homedir = @DIR@/no-gnupg\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:7: [image] gpg_homedir: signing key file \"@DIR@/absent.asc\" absent", "no-gnupg is not a directory"}},
		{name: "missing passphrase file",
			files: map[string]string{"config/defaults.ini": base + "[image]\nsigning_key = " + key.Secret + "\nsigning_passphrase_file = @DIR@/absent-passphrase\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:6: [image] signing_passphrase_file: signing key " + key.Secret + ": passphrase:", "absent-passphrase"}},
		{name: "wrong passphrase",
			files: map[string]string{"config/private.ini": "[image]\nsigning_key = " + key.Secret + "\nsigning_passphrase_file = " + wrongPass + "\n",
				"config/defaults.ini": base},
			want: []string{"@LOCAL@/config/private.ini:3: [image] signing_passphrase_file: signing key " + key.Secret + ": wrong passphrase in " + wrongPass}},
		{name: "not a key",
			files: map[string]string{"config/defaults.ini": base + "[image]\nsigning_key = " + junkKey + "\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:5: [image] signing_key: signing key " + junkKey + ": not an OpenPGP key file"}},
		{name: "misspelt hook",
			files: map[string]string{"config/defaults.ini": base + "[image]\nhooks_add = 50-hostnmae\n"},
			want: []string{"@LOCAL@/config/defaults.ini:5: [image] hooks_add: hook image/50-hostnmae: missing hook: 50-hostnmae is listed in [image] hooks but is not a file in @LOCAL@/hooks/image or " +
				srcRoot + "/hooks/image"}},
		{name: "hook name with a slash and ..",
			files: map[string]string{"config/defaults.ini": base + "[publish]\nhooks_add = ../image/50-hostname\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:5: [publish] hooks_add: hook publish/../image/50-hostname: invalid hook name in [publish] hooks: a hook name is a file name"}},
		{name: "hook name ..",
			files: map[string]string{"config/defaults.ini": base + "[error]\nhooks = ..\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:5: [error] hooks: hook error/..: invalid hook name"}},
		{name: "bad compression",
			files: map[string]string{"config/defaults.ini": base + "[image]\ncompression = zstd\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [image] compression: "zstd" is not one of gz, xz, zst`}},
		{name: "bad integer",
			files: map[string]string{"config/defaults.ini": base + "[check]\nboot_timeout = 5m\n"},
			want:  []string{`eib: @LOCAL@/config/defaults.ini:5: [check] boot_timeout: "5m" is not an integer`}},
		{name: "bad size",
			files: map[string]string{"config/defaults.ini": base + "[image]\nmax_size = 12G\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [image] max_size: "12G" is not an integer`}},
		{name: "unknown firmware",
			files: map[string]string{"config/defaults.ini": base + "[check]\nfirmware = coreboot\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [check] firmware: "coreboot" is not one of bios, uefi, both`}},
		{name: "firmware the image cannot boot with",
			files: map[string]string{"config/defaults.ini": base + "[image]\nsdboot = true\n[check]\nboot = true\nfirmware = bios\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:8: [check] firmware = bios: amd64/amd64 image: firmware "bios": the image boots only with uefi`}},
		{name: "no trusted key",
			files: map[string]string{"config/defaults.ini": "[ostree]\ndev_pull_url = http://127.0.0.1:1/repo\n\ngpg_verify = true\n"},
			want:  []string{"@LOCAL@/config/defaults.ini:4: [ostree] gpg_verify is on but no trusted key (*.asc) was found in " + srcRoot + "/data/keys and @LOCAL@/data/keys"}},
		{name: "a trusted key that is no key",
			files: map[string]string{"config/defaults.ini": "[ostree]\ndev_pull_url = http://127.0.0.1:1/repo\n", "data/keys/os.asc": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64\n-----END PGP PUBLIC KEY BLOCK-----\n"},
			want:  []string{"eib: @LOCAL@/data/keys/os.asc: not an OpenPGP public key", "(a trusted key"}},
		{name: "credentials in a private pull_url and no deploy_url",
			files: map[string]string{"config/defaults.ini": base, "config/private.ini": "[ostree]\npull_url = http://user:password@127.0.0.1:1/repo\n"},
			want: []string{"[ostree] deploy_url is empty, so the image's OSTree remote URL would be [ostree] pull_url, " +
				"which holds a private value (@LOCAL@/config/private.ini:2): set [ostree] deploy_url"}},
		{name: "credentials in a private Flatpak remote url and no deploy_url",
			files: map[string]string{"config/defaults.ini": base + "[flatpak-remote-test]\napps = org.example.App\n",
				"config/private.ini": "[flatpak-remote-test]\nurl = http://user:password@127.0.0.1:1/repo\n"},
			want: []string{"[flatpak-remote-test] deploy_url is empty, so the image's Flatpak remote test URL would be [flatpak-remote-test] url, " +
				"which holds a private value (@LOCAL@/config/private.ini:2): set [flatpak-remote-test] deploy_url"}},
		{name: "relative publish dir (publish and error stages)",
			files: map[string]string{"config/defaults.ini": base + "[publish]\ndir = relative/out\n"},
			want:  []string{`@LOCAL@/config/defaults.ini:5: [publish] dir: "relative/out" is a relative path`}},
		{name: "two mistakes, both named",
			files: map[string]string{"config/defaults.ini": base + "[check]\nboot_marker = (\n[image]\nbootloader_timeout = soon\n"},
			want: []string{"eib: 2 configuration errors:\n",
				"@LOCAL@/config/defaults.ini:7: [image] bootloader_timeout: \"soon\" is not an integer (a number of seconds)\n",
				`@LOCAL@/config/defaults.ini:5: [check] boot_marker: "(" is not a regular expression`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := t.TempDir()
			cache := filepath.Join(t.TempDir(), "cache")
			// The cache in a file of its own, so the lines of the
			// files of each row are as written.
			files := map[string]string{"config/product/eoscustom.ini": "[build]\ncachedir = " + cache + "\n"}
			for rel, text := range tc.files {
				files[rel] = strings.ReplaceAll(text, "@DIR@", dir)
			}
			harness.WriteFiles(t, local, files)
			lockFile := heldLock(t)
			args := append(append([]string{"-d", local}, tc.args...), "--lock-timeout", "60", "master")
			start := time.Now()
			r := eibEnv(t, []string{"EIB_SRCDIR=" + srcRoot, "EIB_LOCK_FILE=" + lockFile}, args...)
			took := time.Since(start)
			slowest = max(slowest, took)
			t.Logf("exit %d in %s:\n%s", r.Code, took.Round(time.Millisecond), r.Stderr)
			if r.Code != 1 {
				t.Errorf("exit %d, want 1\nstderr:\n%s", r.Code, r.Stderr)
			}
			if took > beforeAnyWork {
				t.Errorf("took %s: the mistake was not found before any work (bound %s)", took, beforeAnyWork)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(strings.ReplaceAll(w, "@LOCAL@", local), "@DIR@", dir)
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks\n%s\nstderr:\n%s", w, r.Stderr)
				}
			}
			// The private value of the private.ini rows ("password"
			// alone is in key names such as guest_password_file).
			if strings.Contains(r.Stderr, "user:password") {
				t.Errorf("the private value is printed:\n%s", r.Stderr)
			}
			if strings.Contains(r.Stdout+r.Stderr, "waiting up to") {
				t.Errorf("eib reached the lock:\n%s%s", r.Stdout, r.Stderr)
			}
			if _, err := os.Stat(cache); !os.IsNotExist(err) {
				t.Errorf("the build touched %s: %v", cache, err)
			}
		})
	}
}

// TestCorrectConfigurationGoesOnToTheLock: the configuration the mistakes
// above are made on passes the plan: eib goes on to the lock (held here,
// so it fails there, exit 2) and only then touches the build directories.
func TestCorrectConfigurationGoesOnToTheLock(t *testing.T) {
	local := t.TempDir()
	cache := filepath.Join(t.TempDir(), "cache")
	harness.WriteFiles(t, local, map[string]string{
		"config/defaults.ini": "[build]\ncachedir = " + cache + "\n[ostree]\ndev_pull_url = http://127.0.0.1:1/repo\ngpg_verify = false\n" +
			"deploy_url = https://ostree.example.org/repo\n",
		"config/private.ini": "[ostree]\npull_url = http://user:password@127.0.0.1:1/repo\n",
	})
	lockFile := heldLock(t)
	r := eibEnv(t, []string{"EIB_SRCDIR=" + srcRoot, "EIB_LOCK_FILE=" + lockFile}, "-d", local, "--lock-timeout", "0", "master")
	if r.Code != 2 || !strings.Contains(harness.LastLine(r.Stderr), lockFile) {
		t.Errorf("exit %d, want 2 failing on the held lock %s\nstderr:\n%s", r.Code, lockFile, r.Stderr)
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Errorf("the build touched %s without the lock: %v", cache, err)
	}
}
