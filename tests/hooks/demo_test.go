package hooks

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// The hooks of the demo build below, each using contracts of EIB's hooks;
// they write what they saw into ${EIB_EIBTEST_RESULTS} ([eibtest]
// results), which the test reads.
var eibStyleHooks = map[string]string{
	// The Python module: get_config (every key as the hook's environment
	// has it, private values included), retry, recreate_dir, disk_usage,
	// get_ostree_trusted_keys, setup_logging at EIB_DEBUG's level, and a
	// module of the localdir's lib/.
	"hooks/content/10-eib-py": `#!/usr/bin/python3
import json
import logging
import os
import sys

import eib
import eibtest

eib.setup_logging()
logging.getLogger('10-eib-py').debug('EIB-TEST debug logging is on')
config = eib.get_config()
env = config.get_environment()
mismatched = {k: [v, os.environ.get(k)] for k, v in env.items()
              if os.environ.get(k) != v}
attempts = []


def flaky():
    attempts.append(1)
    if len(attempts) < 2:
        raise OSError('transient')
    return 'ok'


results = config['eibtest']['results']
eib.recreate_dir(os.path.join(results, 'scratch'))
with open(os.path.join(results, 'content-py.json'), 'w') as f:
    json.dump({
        'keys': len(env),
        'mismatched': mismatched,
        'secret': config['eibtest']['secret'],
        'retry': eib.retry(flaky, timeout=0),
        'attempts': len(attempts),
        'trusted_keys': [os.path.basename(k)
                         for k in eib.get_ostree_trusted_keys(config)],
        'localdir_module': eibtest.NAME,
        'usage': eib.disk_usage(os.environ['OSTREE_DEPLOYMENT']),
        'python': sys.executable,
    }, f)
`,
	"lib/eibtest.py": "NAME = 'eibtest from the localdir'\n",

	// The EIB_* variables of EIB's [build] keys and of the image stage.
	"hooks/image/20-vars": `r=${EIB_EIBTEST_RESULTS}
for v in EIB_DATADIR EIB_HELPERSDIR EIB_BASELIB EIB_TMPCONFIG EIB_TMPFULLCONFIG \
         EIB_SSH_OPTIONS EIB_DEBUG EIB_CACHEDIR_CHROOT EIB_SRCDIR_CHROOT; do
  echo "${v}=${!v-unset}"
done > "${r}/vars"
[ -f "${EIB_BASELIB}" ] && [ -x "${EIB_HELPERSDIR}/eib-chroot" ]
grep -c '^secret = ' "${EIB_TMPFULLCONFIG}" > "${r}/secret-in-full" || :
grep -c '^secret = ' "${EIB_TMPCONFIG}" > "${r}/secret-in-public" || :
`,
	// lib/eib.sh's chroot function, as a host hook calls it.
	"hooks/image/25-chroot-fn": `chroot "${OSTREE_DEPLOYMENT}" /bin/sh -c '
echo "outdir=${EIB_OUTDIR}"
echo "srcdir=${EIB_SRCDIR}"
echo "pythonpath=${PYTHONPATH}"
echo "home=${HOME-unset}"
test -f "${EIB_SRCDIR}/lib/eib.py" && echo "eib.py visible"
. /etc/os-release && echo "os=${ID}"
' > "${EIB_EIBTEST_RESULTS}/chroot-fn"
`,
	// The other functions of lib/eib.sh EIB's stages use.
	"hooks/image/30-shell-lib": `r=${EIB_EIBTEST_RESULTS}
m=${EIB_TMPDIR}/mnt-test
eib_mount -t tmpfs one "${m}"
eib_mount -t tmpfs two "${m}"
eib_umount "${m}"
if mountpoint -q "${m}"; then echo still-mounted; else echo unmounted; fi > "${r}/umount"

img=${EIB_TMPDIR}/parts.img
truncate -s 8M "${img}"
printf 'label: gpt\nsize=2MiB\nsize=2MiB\n' | sfdisk --quiet "${img}"
loop=$(losetup -f --show "${img}")
trap 'partx -d "${loop}" || :; losetup -d "${loop}" || :' EXIT
name=${loop#/dev/}
eib_partx_scan "${loop}"
parts=(/sys/block/"${name}"/"${name}"p*)
echo "${#parts[@]}" > "${r}/partitions"
eib_partx_delete "${loop}"
parts=(/sys/block/"${name}"/"${name}"p*)
echo "${#parts[@]}" >> "${r}/partitions"
eib_delete_loop "${loop}"
trap - EXIT
eib_fix_boot_checksum "${img}" "${OSTREE_DEPLOYMENT}"

for _ in $(seq 1000); do echo "compress me"; done > "${r}/plain"
eib_compress_image "${r}/plain" "${r}/plain.${EIB_IMAGE_COMPRESSION}"
`,
	// EIB's 60-dconf-prepare / 61-dconf-compile.chroot hand-over through
	// the deployment's /tmp.
	"hooks/image/60-prepare": `tgt=${OSTREE_DEPLOYMENT}/tmp/handover
mkdir -p "${tgt}"
cp "${EIB_LOCALDATADIR}"/settings/* "${tgt}"/
`,
	"hooks/image/61-compile.chroot": `#!/bin/sh
set -e
mkdir -p /etc/eib-test
cat /tmp/handover/* > /etc/eib-test/compiled
echo "answer of the chroot, cachedir ${EIB_CACHEDIR}" > /tmp/handover/answer
`,
	"hooks/image/62-collect": `cp "${OSTREE_DEPLOYMENT}/etc/eib-test/compiled" "${OSTREE_DEPLOYMENT}/tmp/handover/answer" "${EIB_EIBTEST_RESULTS}/"
rm -r "${OSTREE_DEPLOYMENT}/etc/eib-test"
`,
	"data/settings/10-a": "[org/gnome/a]\nkey=1\n",
	"data/settings/20-b": "[org/gnome/b]\nkey=2\n",
	"hooks/image/70-write-refs": `ostree_write_refs "${EIB_OSTREE_REPODIR}" "${EIB_OSTREE_REF}" eib-test/alias
ostree --repo="${EIB_OSTREE_REPODIR}" rev-parse eib-test/alias > "${EIB_EIBTEST_RESULTS}/alias"
ostree --repo="${EIB_OSTREE_REPODIR}" rev-parse "${EIB_OSTREE_REF}" >> "${EIB_EIBTEST_RESULTS}/alias"
`,
	// A manifest fragment from the configuration.
	"hooks/manifest/50-eib-fragment": `#!/usr/bin/python3
import json
import os

import eib

config = eib.get_config()
path = os.path.join(config['build']['manifestdir'], 'eib-test.json')
with open(path, 'w') as f:
    json.dump({'eib_test': {'outversion': config['build']['outversion']}}, f)
`,
	// The merged manifest, and run_hooks of lib/eib.sh for a group of
	// the localdir, from publish hooks.
	"hooks/publish/60-get-manifest": `#!/usr/bin/python3
import json
import os

import eib

manifest = eib.get_manifest()
with open(os.path.join(os.environ['EIB_EIBTEST_RESULTS'], 'manifest-seen.json'), 'w') as f:
    json.dump({'eib_test': manifest.get('eib_test'),
               'images': sorted(manifest.get('images', {}))}, f)
`,
	"hooks/publish/65-run-hooks": `run_hooks extra
`,
	"hooks/extra/10-first":  "echo \"first ${EIB_HOOK_GROUP}\" >> \"${EIB_EIBTEST_RESULTS}/extra\"\n",
	"hooks/extra/20-second": "#!/bin/sh\necho \"second ${EIB_HOOK_GROUP}\" >> \"${EIB_EIBTEST_RESULTS}/extra\"\n",
}

func TestDemoBuildRunsHooksWrittenForEIB(t *testing.T) {
	demo := needDemo(t)
	harness.Need(t, "zstd", "partx", "losetup", "mountpoint")
	p := harness.NewProject(t)
	t.Cleanup(func() { harness.AssertNoLeftovers(t, p.Dir) })
	results := filepath.Join(p.Dir, "results")
	pubs := filepath.Join(p.Dir, "published")
	os.MkdirAll(results, 0o755)
	for rel, body := range eibStyleHooks {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(body, "#!") {
			mode = 0o755
		}
		p.Write(rel, body, mode)
	}
	demo.Install(t, p.Local)
	p.Write("config/defaults.ini", `[build]
cachedir = `+p.Cache+`

[content]
hooks_add = 10-eib-py

[image]
hooks_add = 20-vars 25-chroot-fn 30-shell-lib 60-prepare 61-compile.chroot 62-collect 70-write-refs

[check]
# The boot is not what this test is about.
boot = false

[manifest]
hooks_add = 50-eib-fragment

[publish]
dir = `+pubs+`
hooks_add = 60-get-manifest 65-run-hooks

[extra]
hooks = 20-second 10-first

[eibtest]
results = `+results+`
`, 0o644)
	p.Write("config/private.ini", "[eibtest]\nsecret = eib-test-private-value\n", 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := p.Command(ctx, eibBin, srcRoot, "--product", "demo", "--debug", "master")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := harness.Code(t, err, cmd)
	t.Logf("eib --debug --product demo master: exit %d in %.1f s", code, time.Since(start).Seconds())
	if code != 0 {
		t.Fatalf("the build exited %d:\n%s", code, tail(string(out), 80))
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(results, name))
		if err != nil {
			t.Errorf("hook result %s: %v", name, err)
		}
		return string(b)
	}

	// The Python module in a host hook.
	var py struct {
		Keys           int
		Mismatched     map[string][]*string
		Secret         string
		Retry          string
		Attempts       int
		TrustedKeys    []string `json:"trusted_keys"`
		LocaldirModule string   `json:"localdir_module"`
		Usage          int64
		Python         string
	}
	if err := json.Unmarshal([]byte(read("content-py.json")), &py); err != nil {
		t.Fatalf("content-py.json: %v", err)
	}
	if py.Keys < 50 || len(py.Mismatched) != 0 {
		t.Errorf("eib.get_config() against the hook's environment: %d keys, these differ ([config, env]): %v", py.Keys, py.Mismatched)
	}
	if py.Secret != "eib-test-private-value" || py.Retry != "ok" || py.Attempts != 2 ||
		strings.Join(py.TrustedKeys, " ") != "eib-demo.asc" || py.LocaldirModule != "eibtest from the localdir" ||
		py.Usage < 1<<20 || py.Python != debianPython {
		t.Errorf("the Python hook saw %+v", py)
	}
	if _, err := os.Stat(filepath.Join(results, "scratch")); err != nil {
		t.Errorf("eib.recreate_dir: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(p.Tmpdir(), "build.txt"))
	if !regexp.MustCompile(`DEBUG 10-eib-py: EIB-TEST debug logging is on`).Match(log) {
		t.Errorf("eib.setup_logging() under --debug did not log at DEBUG level")
	}

	// EIB's [build] keys and the image stage's variables.
	tmpdir := p.Tmpdir()
	wantVars := strings.Join([]string{
		"EIB_DATADIR=" + srcRoot + "/data",
		"EIB_HELPERSDIR=" + srcRoot + "/helpers",
		"EIB_BASELIB=" + srcRoot + "/lib/eib.sh",
		"EIB_TMPCONFIG=" + tmpdir + "/config.ini",
		"EIB_TMPFULLCONFIG=" + tmpdir + "/fullconfig.ini",
		"EIB_SSH_OPTIONS=-i " + p.Sysconf + "/ssh-key.pem -o StrictHostKeyChecking=no",
		"EIB_DEBUG=1",
		"EIB_CACHEDIR_CHROOT=/tmp/eos-image-builder",
		"EIB_SRCDIR_CHROOT=/tmp/eos-image-builder/src",
	}, "\n") + "\n"
	if got := read("vars"); got != wantVars {
		t.Errorf("image hook variables:\n%s\nwant\n%s", got, wantVars)
	}
	if full, public := read("secret-in-full"), read("secret-in-public"); full != "1\n" || public != "0\n" {
		t.Errorf("the private key is %q times in EIB_TMPFULLCONFIG (want 1) and %q in EIB_TMPCONFIG (want 0)", full, public)
	}

	// The chroot function: in the deployment, EIB_* paths moved to the
	// image stage's binds, no host environment.
	wantChroot := "outdir=/tmp/eos-image-builder/build/out\nsrcdir=/tmp/eos-image-builder/src\n" +
		"pythonpath=/tmp/eos-image-builder/src/lib\nhome=unset\neib.py visible\nos=eib-demo\n"
	if got := read("chroot-fn"); got != wantChroot {
		t.Errorf("chroot in a host hook printed\n%s\nwant\n%s", got, wantChroot)
	}

	// eib_umount, the partx and loop helpers, eib_compress_image.
	if got := read("umount"); got != "unmounted\n" {
		t.Errorf("eib_umount of a twice-mounted point: %q", got)
	}
	if got := read("partitions"); got != "2\n0\n" {
		t.Errorf("partitions after eib_partx_scan, then eib_partx_delete: %q, want 2 then 0", got)
	}
	plain, err := exec.Command("zstd", "-dcq", filepath.Join(results, "plain.zst")).Output()
	if err != nil || string(plain) != read("plain") {
		t.Errorf("eib_compress_image with the demo's zst: %v", err)
	}

	// The hand-over through the deployment's /tmp.
	if got := read("compiled"); got != "[org/gnome/a]\nkey=1\n[org/gnome/b]\nkey=2\n" {
		t.Errorf("the .chroot hook compiled %q from what 60-prepare left in /tmp", got)
	}
	if got := read("answer"); got != "answer of the chroot, cachedir /tmp/eos-image-builder\n" {
		t.Errorf("62-collect found %q in the deployment's /tmp", got)
	}

	// ostree_write_refs on the cache repo.
	if refs := strings.Fields(read("alias")); len(refs) != 2 || refs[0] != refs[1] || len(refs[0]) != 64 {
		t.Errorf("ostree_write_refs: alias and ref are %v", refs)
	}

	// The manifest fragment, and eib.get_manifest() in a publish hook.
	var seen struct {
		EIBTest map[string]string `json:"eib_test"`
		Images  []string
	}
	if err := json.Unmarshal([]byte(read("manifest-seen.json")), &seen); err != nil {
		t.Fatalf("manifest-seen.json: %v", err)
	}
	if ov := seen.EIBTest["outversion"]; !strings.HasPrefix(ov, "demo-master-amd64-amd64.") || len(seen.Images) == 0 {
		t.Errorf("eib.get_manifest() in a publish hook saw %+v", seen)
	}

	// run_hooks from a hook: sorted, EIB_HOOK_GROUP set.
	if got := read("extra"); got != "first extra\nsecond extra\n" {
		t.Errorf("run_hooks extra: %q", got)
	}
}

// tail returns the last n lines of out.
func tail(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
