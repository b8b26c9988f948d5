// Package compat checks that eib reads EIB configuration trees as EIB
// itself does: each case of cases/ is a small srcdir config tree (and an
// optional localdir) with the command line to run, and expected/ holds
// what EIB's own `run-build --show-config` printed for it (the merged
// configuration, or its error message), made by running EIB.
//
// A case is laid out like ../shared/eib-compat's cases:
//
//	cases/NAME/config/     the srcdir's config/ tree
//	cases/NAME/localdir/   optional; @LOCALDIR@ in args is its absolute path
//	cases/NAME/args        the command line after the program name
//	cases/NAME/meta        [case] description, expect = ok|error,
//	                       error_mentions = words both error messages contain
//
// The test runs eib on every case and compares its --show-config output,
// byte for byte after normalizing paths and build_version, with
// expected/NAME.ini; for an error case, eib must exit 1 with a message
// that contains every error_mentions word (EIB's message, in
// expected/NAME.err, contains them too).
//
// To make the goldens again, run EIB live (needs its git directory, by
// default ../.mirror/endlessm+eos-image-builder/repo beside the tree, or
// -mirror / $EIB_MIRROR, and /usr/bin/python3):
//
//	go test ./tests/compat -update
package compat

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/tests/harness"
)

var (
	update = flag.Bool("update", false, "run EIB live on every case and rewrite expected/")
	mirror = flag.String("mirror", defaultMirror(), "EIB's git directory (for -update)")
	python = flag.String("python", "/usr/bin/python3", "interpreter for EIB's run-build (for -update)")

	eibBin string
)

func defaultMirror() string {
	if m := os.Getenv("EIB_MIRROR"); m != "" {
		return m
	}
	return filepath.Join(filepath.Dir(harness.Src()), ".mirror", "endlessm+eos-image-builder", "repo")
}

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// Fixed paths of each side, replaced by tokens in outputs.
const (
	eibCacheDir = "/var/cache/eib"
	refCacheDir = "/var/cache/eos-image-builder"
	refSysconf  = "/etc/eos-image-builder"
)

// buildVersionRE is build_version as both sides make it (UTC time of the
// run, %y%m%d-%H%M%S).
var buildVersionRE = regexp.MustCompile(`(?m)^build_version = (\d{6}-\d{6})$`)

type testCase struct {
	name, dir     string
	args          []string
	expect        string // "ok" or "error"
	errorMentions []string
}

func loadCases(t *testing.T) []testCase {
	t.Helper()
	entries, err := os.ReadDir("cases")
	if err != nil {
		t.Fatal(err)
	}
	var cases []testCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c := testCase{name: e.Name(), dir: filepath.Join("cases", e.Name()), expect: "ok"}
		args, err := os.ReadFile(filepath.Join(c.dir, "args"))
		if err != nil {
			t.Fatal(err)
		}
		if c.args, err = shellWords(string(args)); err != nil {
			t.Fatalf("%s/args: %v", c.dir, err)
		}
		meta := filepath.Join(c.dir, "meta")
		if f, ok, err := config.ReadFile(meta); err != nil {
			t.Fatal(err)
		} else if ok {
			cfg := config.New()
			for _, s := range f.Sections {
				for _, k := range s.Keys {
					cfg.Set(s.Name, k.Name, k.Value)
				}
			}
			if v, ok := cfg.Raw("case", "expect"); ok {
				c.expect = strings.TrimSpace(v)
			}
			if v, ok := cfg.Raw("case", "error_mentions"); ok {
				if c.errorMentions, err = shellWords(v); err != nil {
					t.Fatalf("%s: error_mentions: %v", meta, err)
				}
			}
		}
		if c.expect != "ok" && c.expect != "error" {
			t.Fatalf("%s: expect = %q, want ok or error", meta, c.expect)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in cases/")
	}
	return cases
}

// shellWords splits s like Python's shlex.split(s, comments=True) does for
// the simple words of args and error_mentions: blanks separate words,
// single and double quotes group, # starts a comment.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '\'' || ch == '"':
			j := strings.IndexByte(s[i+1:], ch)
			if j < 0 {
				return nil, fmt.Errorf("no closing quote in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// copyTree copies the directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// layout makes WORK/NAME/SIDE (a srcdir: the case's config/, empty hooks/,
// helpers/, data/keys/) and WORK/NAME/localdir, and returns the srcdir,
// the localdir and the arguments with @LOCALDIR@ replaced.
func layout(t *testing.T, c testCase, work, side string) (src, local string, args []string) {
	t.Helper()
	src = filepath.Join(work, side)
	local = filepath.Join(work, "localdir")
	copyTree(t, filepath.Join(c.dir, "config"), filepath.Join(src, "config"))
	for _, d := range []string{"hooks", "helpers", "data/keys"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, "localdir")); err == nil {
		if _, err := os.Stat(local); err != nil {
			copyTree(t, filepath.Join(c.dir, "localdir"), local)
		}
	}
	for _, a := range c.args {
		args = append(args, strings.ReplaceAll(a, "@LOCALDIR@", local))
	}
	return src, local, args
}

// baseEnv is a small fixed environment (no SOURCE_DATE_EPOCH, no EIB_*),
// with a time zone far from UTC: build_version must be UTC regardless.
func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1"}
	if _, err := os.Stat("/usr/share/zoneinfo/Pacific/Kiritimati"); err == nil {
		env = append(env, "TZ=Pacific/Kiritimati")
	}
	return env
}

// normalize replaces the run's paths by tokens and build_version by @BV@.
func normalize(out string, paths map[string]string) string {
	if m := buildVersionRE.FindStringSubmatch(out); m != nil {
		out = strings.ReplaceAll(out, m[1], "@BV@")
	}
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, p := range keys {
		out = strings.ReplaceAll(out, p, paths[p])
	}
	return out
}

func goldenPaths(name string) (ini, errFile string) {
	return filepath.Join("expected", name+".ini"), filepath.Join("expected", name+".err")
}

func TestShowConfigMatchesEIB(t *testing.T) {
	cases := loadCases(t)
	if *update {
		updateGoldens(t, cases)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			src, local, args := layout(t, c, work, "go")
			sysconf := filepath.Join(work, "etc-eib")
			cmd := exec.Command(eibBin, args...)
			cmd.Dir = work
			cmd.Env = append(baseEnv(), "EIB_SRCDIR="+src, "EIB_SYSCONFDIR="+sysconf,
				"EIB_LOCK_FILE="+filepath.Join(work, "eib.lock"))
			r := harness.Run(t, cmd)
			paths := map[string]string{src: "@SRCDIR@", local: "@LOCALDIR@", work: "@WORK@",
				eibCacheDir: "@CACHEDIR@", sysconf: "@SYSCONFDIR@"}
			iniFile, errFile := goldenPaths(c.name)
			switch c.expect {
			case "ok":
				want, err := os.ReadFile(iniFile)
				if err != nil {
					t.Fatalf("no golden (go test ./tests/compat -update makes it with EIB): %v", err)
				}
				if r.Code != 0 {
					t.Fatalf("eib exit %d, EIB succeeded:\n%s", r.Code, r.Stderr)
				}
				if got := normalize(r.Stdout, paths); got != string(want) {
					t.Errorf("--show-config differs from EIB's (%s):\n%s", iniFile, lineDiff(string(want), got))
				}
			case "error":
				want, err := os.ReadFile(errFile)
				if err != nil {
					t.Fatalf("no golden (go test ./tests/compat -update makes it with EIB): %v", err)
				}
				if r.Code != 1 {
					t.Fatalf("eib exit %d, want 1 (EIB failed with: %s)\nstdout:\n%s\nstderr:\n%s", r.Code,
						strings.TrimSpace(string(want)), r.Stdout, r.Stderr)
				}
				msg := normalize(r.Stderr, paths)
				for _, w := range c.errorMentions {
					if !strings.Contains(msg, w) {
						t.Errorf("eib's error lacks %q (EIB: %s):\n%s", w, strings.TrimSpace(string(want)), msg)
					}
				}
				if strings.Contains(msg, "goroutine ") {
					t.Errorf("eib panicked:\n%s", msg)
				}
			}
		})
	}
}

// lineDiff lists the lines that differ, with their numbers.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d: EIB %q, eib %q\n", i+1, w, g)
		}
	}
	return b.String()
}

// exceptionLine is the line where a Python traceback's message starts.
var exceptionLine = regexp.MustCompile(`^(?:[A-Za-z_][\w.]*(?:Error|Exception)|[\w.-]+: error):`)

// updateGoldens runs EIB's run-build --show-config on every case and
// writes expected/NAME.ini (the output) or expected/NAME.err (exit code
// and the exception message without the traceback frames).
func updateGoldens(t *testing.T, cases []testCase) {
	if _, err := os.Stat(*mirror); err != nil {
		t.Fatalf("-update needs EIB's git directory: %v (give -mirror or $EIB_MIRROR)", err)
	}
	ref := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive HEAD run-build lib | tar -x -C "$2"`, "sh", *mirror, ref)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extracting run-build and lib/ from %s: %v\n%s", *mirror, err, out)
	}
	rev, err := exec.Command("git", "-C", *mirror, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	pyVersion, _ := exec.Command(*python, "--version").CombinedOutput()
	if err := os.MkdirAll("expected", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		work := t.TempDir()
		src, local, args := layout(t, c, work, "ref")
		copyTree(t, filepath.Join(ref, "lib"), filepath.Join(src, "lib"))
		data, err := os.ReadFile(filepath.Join(ref, "run-build"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "run-build"), data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(*python, append([]string{"-u", filepath.Join(src, "run-build")}, args...)...)
		cmd.Dir = work
		cmd.Env = baseEnv()
		r := harness.Run(t, cmd)
		paths := map[string]string{src: "@SRCDIR@", local: "@LOCALDIR@", work: "@WORK@",
			refCacheDir: "@CACHEDIR@", refSysconf: "@SYSCONFDIR@"}
		iniFile, errFile := goldenPaths(c.name)
		os.Remove(iniFile)
		os.Remove(errFile)
		if r.Code == 0 {
			if c.expect != "ok" {
				t.Errorf("%s: EIB succeeded, the case expects an error", c.name)
			}
			if err := os.WriteFile(iniFile, []byte(normalize(r.Stdout, paths)), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		lines := strings.Split(strings.TrimRight(normalize(r.Stderr, paths), "\n"), "\n")
		msg := strings.Join(lines, "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if exceptionLine.MatchString(lines[i]) {
				msg = strings.Join(lines[i:], "\n")
				break
			}
		}
		if c.expect != "error" {
			t.Errorf("%s: EIB failed, the case expects success: %s", c.name, msg)
		}
		for _, w := range c.errorMentions {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: EIB's error lacks %q: %s", c.name, w, msg)
			}
		}
		if err := os.WriteFile(errFile, []byte(fmt.Sprintf("exit=%d\n%s\n", r.Code, msg)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	source := fmt.Sprintf("Made by `go test ./tests/compat -update`: EIB's run-build at commit %s, %s",
		strings.TrimSpace(string(rev)), strings.TrimSpace(string(pyVersion)))
	if err := os.WriteFile(filepath.Join("expected", "SOURCE"), []byte(source+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestGoldensMatchCases: every case has exactly the golden its meta says,
// and no golden is left from a removed case.
func TestGoldensMatchCases(t *testing.T) {
	cases := loadCases(t)
	names := map[string]bool{}
	for _, c := range cases {
		names[c.name] = true
		iniFile, errFile := goldenPaths(c.name)
		_, iniErr := os.Stat(iniFile)
		_, errErr := os.Stat(errFile)
		if (c.expect == "ok") != (iniErr == nil) || (c.expect == "error") != (errErr == nil) {
			t.Errorf("%s: expect = %s but expected/ has %s.ini: %v, %s.err: %v", c.name, c.expect,
				c.name, iniErr == nil, c.name, errErr == nil)
		}
	}
	goldens, _ := filepath.Glob("expected/*.*")
	for _, g := range goldens {
		name := strings.TrimSuffix(filepath.Base(g), filepath.Ext(g))
		if !names[name] {
			t.Errorf("%s: no case %s", g, name)
		}
	}
	if _, err := os.Stat(filepath.Join("expected", "SOURCE")); errors.Is(err, os.ErrNotExist) {
		t.Errorf("expected/SOURCE (which EIB made the goldens) is missing")
	}
}
