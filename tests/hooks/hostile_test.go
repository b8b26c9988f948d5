package hooks

// Hostile configuration values against every shipped hook (hooks/*/*,
// enumerated here so a new hook is covered without editing this file) and
// against the lib/eib.sh functions that take a value: a value is data,
// never code. For each run: no canary file was created (no command of the
// value ran, on the host or in the hook's root), the files beside the
// scratch tree and the host's /etc files a hook might target are
// untouched, and either the value was written verbatim (the tree equals
// the one of a run with a benign value, with the benign value replaced by
// the hostile one) or the hook failed, naming the variable or key, and
// wrote nothing.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/hooks"
)

// canaryToken makes this run's canary file names unique.
var canaryToken = fmt.Sprintf("eibtest%d", os.Getpid())

// canaryName is the file a hostile value's command would create: in /tmp
// of the host, or of the hook's root for a .chroot hook.
func canaryName(kind string) string { return "PWNED-" + canaryToken + "-" + kind }

// hostileValues returns the values fed to every hook and function, by a
// short name for the subtest.
func hostileValues() map[string]string {
	c := func(kind string) string { return "/tmp/" + canaryName(kind) }
	return map[string]string{
		"newline":      "x\ntouch " + c("nl"),
		"cmdsubst":     "$(touch " + c("cs") + ")",
		"nl-cmdsubst":  "a\n$(touch " + c("ncs") + ")\nb",
		"backticks":    "`touch " + c("bt") + "`",
		"semicolon":    "x;touch " + c("semi"),
		"ampersand":    "x&touch " + c("amp") + "&",
		"slash":        "../../outside/slash",
		"dotdot":       "..",
		"backslash":    `a\\b\nc\0d`,
		"quotes":       `a'b"c'"'"'d`,
		"sed":          "x/\ne touch " + c("sed") + "\n#",
		"sed-amp":      `&\1/`,
		"dash":         "-n",
		"glob":         "*",
		"hundred-kB":   strings.Repeat("k", 100*1024),
		"arith":        "a[$(touch " + c("ar") + ")]",
		"option-value": "--help",
	}
}

// checkCanaries fails the test if any canary exists under one of roots'
// /tmp (the host's "/" included).
func checkCanaries(t *testing.T, roots ...string) {
	t.Helper()
	for _, r := range append([]string{"/"}, roots...) {
		m, _ := filepath.Glob(filepath.Join(r, "tmp", "PWNED-"+canaryToken+"-*"))
		for _, p := range m {
			t.Errorf("a command of a hostile value ran: %s exists", p)
			os.Remove(p)
		}
	}
}

// hostFiles are host files a hook handling hostname, timezone or language
// would write if it escaped its tree.
var hostFiles = []string{"/etc/hosts", "/etc/hostname", "/etc/timezone", "/etc/locale.conf", "/etc/localtime", "/etc/passwd"}

// snapshot maps every path under dir (relative) to its content: "d" for a
// directory, "-> target" for a symlink, "f:" and the bytes (or their hash
// when big) for a file.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			m[rel] = "-> " + l
		case d.IsDir():
			m[rel] = "d"
		default:
			b, _ := os.ReadFile(p)
			m[rel] = "f:" + string(b)
		}
		return nil
	})
	return m
}

// hostSnapshot hashes hostFiles (a symlink by its target).
func hostSnapshot() map[string]string {
	m := map[string]string{}
	for _, p := range hostFiles {
		if l, err := os.Readlink(p); err == nil {
			m[p] = "-> " + l
			continue
		}
		b, err := os.ReadFile(p)
		m[p] = fmt.Sprintf("%x %v", sha256.Sum256(b), err)
	}
	return m
}

// diffSnap describes how two snapshots differ ("" when equal), values
// shortened.
func diffSnap(want, got map[string]string) string {
	var out []string
	short := func(s string) string {
		if len(s) > 120 {
			return fmt.Sprintf("%q...(%d bytes)", s[:120], len(s))
		}
		return fmt.Sprintf("%q", s)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+short(k))
		} else if g != v {
			out = append(out, fmt.Sprintf("%s: %s, want %s", short(k), short(g), short(v)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+short(k)+" = "+short(got[k]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// shippedHook is one file of hooks/<group>/.
type shippedHook struct{ group, name, path string }

func shippedHooks(t *testing.T) []shippedHook {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(srcRoot, "hooks", "*", "*"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no shipped hooks in %s/hooks: %v", srcRoot, err)
	}
	var hs []shippedHook
	for _, p := range m {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			hs = append(hs, shippedHook{group: filepath.Base(filepath.Dir(p)), name: filepath.Base(p), path: p})
		}
	}
	return hs
}

// configKey is a [section] key a hook reads as EIB_<SECTION>_<KEY>.
type configKey struct{ section, key string }

func (k configKey) env() string { return config.EnvName(k.section, k.key) }

// notConfig are EIB_* variables a hook may read that eib sets itself.
var notConfig = regexp.MustCompile(`^EIB_(HOOK_GROUP|PROGRAM|DEBUG|CACHEDIR_CHROOT|SRCDIR_CHROOT|SRCDIR|CACHEDIR|OUTDIR|TMPDIR|BASELIB|HELPERSDIR|DATADIR|LOCALDIR|TMPCONFIG|TMPFULLCONFIG|OUTVERSION|SYSCONFDIR)$`)

// benign values of known keys: valid, so the run writes what a real build
// would; any other key gets "eibprobe".
var benign = map[configKey]string{
	{"image", "timezone"}: "Etc/Eibprobe",
	{"image", "language"}: "eo_XX.UTF-8",
}

func benignValue(k configKey) string {
	if v, ok := benign[k]; ok {
		return v
	}
	return "eibprobe"
}

// hookKeys returns the config keys a hook's text names as
// EIB_<SECTION>_<KEY> (section = the first word).
func hookKeys(t *testing.T, path string) []configKey {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[configKey]bool{}
	var keys []configKey
	for _, v := range regexp.MustCompile(`EIB_[A-Z0-9]+_[A-Z0-9_]+`).FindAllString(string(b), -1) {
		if notConfig.MatchString(v) || strings.HasSuffix(v, "_CHROOT") {
			continue
		}
		parts := strings.SplitN(strings.TrimPrefix(v, "EIB_"), "_", 2)
		k := configKey{strings.ToLower(parts[0]), strings.ToLower(parts[1])}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// scratch is one run's tree: deploy (the OS tree, root of .chroot hooks),
// var, cache, and outside, a sibling with a sentinel that must stay as is.
type scratch struct{ dir, deploy, varDir, cache, outside string }

func newScratch(t *testing.T, chrootOK bool) scratch {
	t.Helper()
	dir := t.TempDir()
	s := scratch{dir: dir, deploy: filepath.Join(dir, "deploy"), varDir: filepath.Join(dir, "var"),
		cache: filepath.Join(dir, "cache"), outside: filepath.Join(dir, "outside")}
	for _, d := range []string{"etc", "tmp", "usr/share/zoneinfo/Etc", "usr/share/zoneinfo/America"} {
		os.MkdirAll(filepath.Join(s.deploy, d), 0o755)
	}
	for _, d := range []string{s.varDir, s.cache, s.outside} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(s.deploy, "usr/share/zoneinfo/Etc/Eibprobe"), []byte("TZif"), 0o644)
	os.WriteFile(filepath.Join(s.deploy, "usr/share/zoneinfo/America/Guatemala"), []byte("TZif"), 0o644)
	os.WriteFile(filepath.Join(s.deploy, "etc/hosts"), []byte("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n"), 0o644)
	os.WriteFile(filepath.Join(s.outside, "sentinel"), []byte("untouched\n"), 0o644)
	os.WriteFile(filepath.Join(s.outside, "slash"), []byte("untouched\n"), 0o644)
	if chrootOK {
		bb, _ := os.ReadFile("/bin/busybox")
		os.MkdirAll(filepath.Join(s.deploy, "bin"), 0o755)
		os.WriteFile(filepath.Join(s.deploy, "bin", "busybox"), bb, 0o755)
		for _, l := range []string{"sh", "touch", "ln", "cat", "rm", "mkdir", "sed", "grep", "printf", "echo", "mv", "cp"} {
			os.Symlink("busybox", filepath.Join(s.deploy, "bin", l))
		}
	}
	return s
}

// zoneFor makes usr/share/zoneinfo/<value> a file when the value could be
// a zone file name inside the tree, so that a hook accepting the value
// writes it rather than failing for a missing zone.
func (s scratch) zoneFor(v string) {
	if v == "" || strings.ContainsAny(v, "\x00\n") || len(v) > 200 || strings.Contains(v, "..") || strings.HasPrefix(v, "/") {
		return
	}
	p := filepath.Join(s.deploy, "usr/share/zoneinfo", v)
	if !strings.HasPrefix(p, filepath.Join(s.deploy, "usr/share/zoneinfo")+"/") {
		return
	}
	if _, err := os.Lstat(p); err == nil {
		return
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("TZif"), 0o644)
}

// runHook runs one shipped hook through eib's hook runner with values
// for the config keys, in s; it returns the build log and the error.
func runHook(t *testing.T, s scratch, h shippedHook, values map[configKey]string, chrootOK bool) (string, error) {
	t.Helper()
	cfg := config.New()
	cfg.Set("build", "cachedir", s.cache)
	cfg.Set(h.group, "hooks", h.name)
	for k, v := range values {
		// "$$" is a "$" once interpolated: the hook gets v itself.
		cfg.Set(k.section, k.key, strings.ReplaceAll(v, "$", "$$"))
	}
	l := buildlog.New(nil, false, nil)
	logPath := filepath.Join(s.dir, "build.txt")
	l.OpenFile(logPath)
	l.SetStage(h.group)
	b := &build.Build{Config: cfg, Public: cfg, SrcDir: srcRoot, Log: l, Stage: h.group, Hooks: &hooks.Runner{}}
	b.SetEnv("OSTREE_DEPLOYMENT", s.deploy)
	b.SetEnv("OSTREE_VAR", s.varDir)
	root := ""
	if chrootOK {
		root = s.deploy
	}
	err := b.Hooks.RunGroup(context.Background(), b, h.group, root)
	l.Close()
	data, _ := os.ReadFile(logPath)
	os.Remove(logPath)
	return string(data), err
}

// namesKey reports whether a log names the key: EIB_<SECTION>_<KEY> or
// "[section] key".
func namesKey(log string, k configKey) bool {
	return strings.Contains(log, k.env()) || strings.Contains(log, "["+k.section+"] "+k.key)
}

func TestShippedHooksTreatHostileValuesAsData(t *testing.T) {
	chrootOK := os.Geteuid() == 0
	if _, err := exec.LookPath("bwrap"); err != nil {
		chrootOK = false
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		chrootOK = false
	}
	all := shippedHooks(t)
	// The keys of every hook: a hook that reads none gets all of them
	// hostile at once.
	var union []configKey
	seen := map[configKey]bool{}
	keysOf := map[string][]configKey{}
	for _, h := range all {
		keysOf[h.path] = hookKeys(t, h.path)
		for _, k := range keysOf[h.path] {
			if !seen[k] {
				seen[k] = true
				union = append(union, k)
			}
		}
	}
	hostBefore := hostSnapshot()
	for _, h := range all {
		t.Run(h.group+"/"+h.name, func(t *testing.T) {
			if strings.HasSuffix(h.name, hooks.ChrootSuffix) && !chrootOK {
				t.Skip(".chroot hooks need root, bwrap and /bin/busybox (busybox-static) here")
			}
			keys := keysOf[h.path]
			sets := [][]configKey{}
			for _, k := range keys {
				sets = append(sets, []configKey{k})
			}
			if len(keys) == 0 {
				sets = append(sets, union)
			}
			for _, set := range sets {
				// The benign run: what the hook writes for a valid value.
				bs := newScratch(t, chrootOK)
				bvals := map[configKey]string{}
				for _, k := range union {
					bvals[k] = benignValue(k)
				}
				binit := snapshot(t, bs.deploy)
				blog, berr := runHook(t, bs, h, bvals, chrootOK)
				if berr != nil {
					t.Fatalf("benign values %v: %v\n%s", bvals, berr, blog)
				}
				bsnap := snapshot(t, bs.deploy)
				for vname, v := range hostileValues() {
					label := vname
					if len(set) == 1 {
						label = set[0].env() + "/" + vname
					}
					t.Run(label, func(t *testing.T) {
						s := newScratch(t, chrootOK)
						vals := map[configKey]string{}
						for k, bv := range bvals {
							vals[k] = bv
						}
						for _, k := range set {
							vals[k] = v
							if k == (configKey{"image", "timezone"}) {
								s.zoneFor(v)
							}
						}
						before := snapshot(t, s.deploy)
						outsideBefore := snapshot(t, s.outside)
						log, err := runHook(t, s, h, vals, chrootOK)
						checkCanaries(t, s.deploy)
						if d := diffSnap(outsideBefore, snapshot(t, s.outside)); d != "" {
							t.Errorf("files beside the scratch tree changed:\n%s", d)
						}
						if d := diffSnap(hostBefore, hostSnapshot()); d != "" {
							t.Fatalf("host files changed:\n%s", d)
						}
						after := snapshot(t, s.deploy)
						if err != nil {
							named := false
							for _, k := range set {
								named = named || namesKey(log, k)
							}
							if !named {
								t.Errorf("the hook failed (%v) without naming %v:\n%.2000s", err, set, log)
							}
							if d := diffSnap(before, after); d != "" {
								t.Errorf("the hook failed but wrote:\n%s", d)
							}
							return
						}
						// Accepted: the hostile run's starting tree with
						// what the benign run wrote (or removed), the
						// benign value replaced by this one, verbatim.
						want := map[string]string{}
						for p, c := range before {
							want[p] = c
						}
						for p := range binit {
							if _, ok := bsnap[p]; !ok {
								delete(want, p)
							}
						}
						for p, c := range bsnap {
							if binit[p] == c {
								continue
							}
							for _, k := range set {
								p = strings.ReplaceAll(p, benignValue(k), v)
								c = strings.ReplaceAll(c, benignValue(k), v)
							}
							want[p] = c
						}
						if d := diffSnap(want, after); d != "" {
							t.Errorf("the value was not written verbatim:\n%s\nlog:\n%.2000s", d, log)
						}
					})
				}
			}
		})
	}
}

// eibSh runs script under "bash -e" with lib/eib.sh sourced, env added.
func eibSh(t *testing.T, script string, env ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-e", "-c", ". \"$1\"\n"+script, "bash", filepath.Join(srcRoot, "lib", "eib.sh"))
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// writeExec writes an executable script.
func writeExec(t *testing.T, path, body string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// fnCase is one lib/eib.sh function fed a hostile value V (in the
// environment; the script passes "$V" or exports it as the key). check
// judges the outcome; dir is a scratch directory, outside its sibling.
type fnCase struct {
	name   string
	script string
	env    func(dir, v string) []string
	check  func(t *testing.T, dir, v, stdout, stderr string, err error)
}

// mustNameOrSucceed requires an error naming key, or success checked by ok.
func failNaming(t *testing.T, key string, stderr string, err error) bool {
	t.Helper()
	if err == nil {
		return false
	}
	if !strings.Contains(stderr, key) {
		t.Errorf("failed (%v) without naming %s: %.2000s", err, key, stderr)
	}
	return true
}

func TestEibShFunctionsTreatHostileValuesAsData(t *testing.T) {
	cases := []fnCase{{
		name:   "eib_retry/EIB_RETRY_ATTEMPTS",
		script: `eib_retry true`,
		env:    func(dir, v string) []string { return []string{"EIB_RETRY_ATTEMPTS=" + v, "EIB_RETRY_INTERVAL=0"} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if !failNaming(t, "EIB_RETRY_ATTEMPTS", stderr, err) {
				t.Errorf("eib_retry accepted EIB_RETRY_ATTEMPTS=%.100q", v)
			}
		},
	}, {
		name:   "eib_retry/EIB_RETRY_INTERVAL",
		script: `eib_retry true`,
		env:    func(dir, v string) []string { return []string{"EIB_RETRY_INTERVAL=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if !failNaming(t, "EIB_RETRY_INTERVAL", stderr, err) {
				t.Errorf("eib_retry accepted EIB_RETRY_INTERVAL=%.100q", v)
			}
		},
	}, {
		name:   "eib_outfile/EIB_OUTVERSION",
		script: `eib_outfile img.gz`,
		env:    func(dir, v string) []string { return []string{"EIB_OUTDIR=" + dir, "EIB_OUTVERSION=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if !failNaming(t, "EIB_OUTVERSION", stderr, err) && stdout != dir+"/"+v+".img.gz\n" {
				t.Errorf("eib_outfile printed %.200q", stdout)
			}
		},
	}, {
		name:   "eib_write_version_xattr/EIB_OUTVERSION",
		script: `mkdir -p "$D/part"; eib_write_version_xattr "$D/part"`,
		env:    func(dir, v string) []string { return []string{"D=" + dir, "EIB_OUTVERSION=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if failNaming(t, "EIB_OUTVERSION", stderr, err) {
				return
			}
			buf := make([]byte, 200*1024)
			n, xerr := syscall.Getxattr(filepath.Join(dir, "part"), "user.eos-image-version", buf)
			if xerr != nil || string(buf[:n]) != v {
				t.Errorf("xattr %.200q %v, want the value verbatim", buf[:max(n, 0)], xerr)
			}
		},
	}, {
		name:   "eib_compress_image/EIB_IMAGE_COMPRESSION",
		script: `echo data > "$D/in"; eib_compress_image "$D/in" "$D/out"`,
		env:    func(dir, v string) []string { return []string{"D=" + dir, "EIB_IMAGE_COMPRESSION=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if !failNaming(t, "[image] compression", stderr, err) {
				t.Errorf("eib_compress_image accepted %.100q", v)
			}
		},
	}, {
		name:   "locale_to_iso_639_1",
		script: `locale_to_iso_639_1 "$V"`,
		env:    func(dir, v string) []string { return []string{"V=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if err != nil {
				t.Errorf("locale_to_iso_639_1: %v %s", err, stderr)
				return
			}
			l, _, _ := strings.Cut(v, "@")
			l, _, _ = strings.Cut(l, ".")
			if want := strings.Replace(l, "_", "-", 1) + "\n"; stdout != want {
				t.Errorf("locale_to_iso_639_1 printed %.200q, want %.200q", stdout, want)
			}
		},
	}, {
		name: "ostree_uid",
		script: `mkdir -p "$D/deploy/usr/lib"
if [[ $V != *[:$'\n']* ]]; then printf '%s:x:4242:4242::/:/bin/false\n' "$V" > "$D/deploy/usr/lib/passwd"; else : > "$D/deploy/usr/lib/passwd"; fi
OSTREE_DEPLOYMENT=$D/deploy ostree_uid "$V"`,
		env: func(dir, v string) []string { return []string{"D=" + dir, "V=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if strings.ContainsAny(v, ":\n") {
				if err == nil {
					t.Errorf("ostree_uid found %.100q: %q", v, stdout)
				}
				return
			}
			if err != nil || stdout != "4242\n" {
				t.Errorf("ostree_uid of a user named %.100q: %q %v %s", v, stdout, err, stderr)
			}
		},
	}, {
		name: "run_hooks/EIB_TEST_HOOKS",
		script: `mkdir -p "$D/hooks/test" "$D/helpers"
printf '#!/bin/sh\ntouch "%s/escaped"\n' "$D" > "$D/hooks/evil"; chmod +x "$D/hooks/evil"
run_hooks test`,
		env: func(dir, v string) []string {
			return []string{"D=" + dir, "EIB_HOOKSDIR=" + dir + "/hooks", "EIB_SRCDIR=/nonexistent", "EIB_HELPERSDIR=" + dir + "/helpers",
				"EIB_TEST_HOOKS=" + v + " ../evil"}
		},
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if _, serr := os.Stat(filepath.Join(dir, "escaped")); serr == nil {
				t.Errorf("run_hooks ran a hook outside the group's directory")
			}
			if !failNaming(t, "EIB_TEST_HOOKS", stderr, err) {
				t.Errorf("run_hooks accepted EIB_TEST_HOOKS=%.100q", v)
			}
		},
	}, {
		name: "sign_file/EIB_IMAGE_SIGNING_KEYID",
		script: `printf '#!/bin/sh\nfor a; do printf "%%s\\0" "$a"; done > "%s/args"\n' "$D" > "$D/bin/gpg"; chmod +x "$D/bin/gpg"
echo data > "$D/f"; PATH=$D/bin:$PATH sign_file "$D/f"`,
		env: func(dir, v string) []string {
			os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
			return []string{"D=" + dir, "EIB_PROGRAM=", "EIB_IMAGE_SIGNING_KEYID=" + v, "EIB_IMAGE_GPG_HOMEDIR=" + dir + "/gnupg"}
		},
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if failNaming(t, "EIB_IMAGE_SIGNING_KEYID", stderr, err) {
				return
			}
			b, _ := os.ReadFile(filepath.Join(dir, "args"))
			args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
			for i, a := range args {
				if a == "--local-user" && i+1 < len(args) && args[i+1] == v {
					return
				}
			}
			t.Errorf("gpg did not get the key id verbatim after --local-user: %.300q", args)
		},
	}, {
		name:   "checksum_file/TARGET",
		script: `echo hello > "$D/f"; checksum_file "$D/f" "$D/sum" "$V"`,
		env:    func(dir, v string) []string { return []string{"D=" + dir, "V=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if err != nil {
				t.Errorf("checksum_file: %v %s", err, stderr)
				return
			}
			b, _ := os.ReadFile(filepath.Join(dir, "sum"))
			want := "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  " + v[strings.LastIndex(v, "/")+1:] + "\n"
			if string(b) != want {
				t.Errorf("checksum_file wrote %.200q, want %.200q", b, want)
			}
		},
	}, {
		name: "ostree_write_refs/DEST",
		script: `mkdir -p "$D/bin" "$D/repo/refs/heads"
printf '#!/bin/sh\necho 0123abcd\n' > "$D/bin/ostree"; chmod +x "$D/bin/ostree"
PATH=$D/bin:$PATH ostree_write_refs "$D/repo" src/ref "$V"`,
		env: func(dir, v string) []string { return []string{"D=" + dir, "V=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			if err != nil {
				if !strings.Contains(stderr, "ref") {
					t.Errorf("failed (%v) without naming the ref: %.500s", err, stderr)
				}
				return
			}
			p := filepath.Join(dir, "repo", "refs", "heads", v)
			if !strings.HasPrefix(p, filepath.Join(dir, "repo", "refs", "heads")+"/") {
				t.Errorf("ostree_write_refs accepted a ref that leaves refs/heads: %.100q", v)
				return
			}
			if b, _ := os.ReadFile(p); string(b) != "0123abcd\n" {
				t.Errorf("ref %.100q holds %q", v, b)
			}
		},
	}, {
		name:   "ostree_write_refs/SRC",
		script: `mkdir -p "$D/repo/refs/heads"; ostree_write_refs "$D/repo" "$V" dest`,
		env:    func(dir, v string) []string { return []string{"D=" + dir, "V=" + v} },
		check: func(t *testing.T, dir, v, stdout, stderr string, err error) {
			// No such ref in an empty repo: a failure, never a command.
			if err == nil {
				t.Errorf("ostree_write_refs found %.100q in an empty repo", v)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "ostree_write_refs/SRC" {
				if _, err := exec.LookPath("ostree"); err != nil {
					t.Skip("ostree not installed")
				}
			}
			for vname, v := range hostileValues() {
				t.Run(vname, func(t *testing.T) {
					top := t.TempDir()
					dir := filepath.Join(top, "scratch")
					outside := filepath.Join(top, "outside")
					os.MkdirAll(dir, 0o755)
					os.MkdirAll(outside, 0o755)
					os.WriteFile(filepath.Join(outside, "sentinel"), []byte("untouched\n"), 0o644)
					hostBefore := hostSnapshot()
					before := snapshot(t, outside)
					stdout, stderr, err := eibSh(t, c.script, c.env(dir, v)...)
					checkCanaries(t)
					if d := diffSnap(before, snapshot(t, outside)); d != "" {
						t.Errorf("files beside the scratch dir changed:\n%s", d)
					}
					if _, serr := os.Stat(filepath.Join(top, "slash")); serr == nil {
						t.Errorf("a file was written outside the scratch dir: %s", filepath.Join(top, "slash"))
					}
					if d := diffSnap(hostBefore, hostSnapshot()); d != "" {
						t.Fatalf("host files changed:\n%s", d)
					}
					c.check(t, dir, v, stdout, stderr, err)
				})
			}
		})
	}
}
