package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bombINI is a small INI whose [bomb] keys nest references ten levels
// deep, each level repeating the one below eight times: l9 would expand
// to 10 * 8^9 bytes (1.3 GB), and every key of [bomb] refers to it.
func bombINI() string {
	var b strings.Builder
	b.WriteString("[bomb]\nl0 = 0123456789\n")
	for i := 1; i < MaxInterpolationDepth; i++ {
		fmt.Fprintf(&b, "l%d = %s\n", i, strings.Repeat(fmt.Sprintf("${l%d}", i-1), 8))
	}
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&b, "use%d = ${l9}\n", i)
	}
	return b.String()
}

// zeroBombINI nests references that expand to nothing: no value grows,
// but reading l9 naively follows 16^9 references.
func zeroBombINI() string {
	var b strings.Builder
	b.WriteString("[zero]\nl0 =\n")
	for i := 1; i < MaxInterpolationDepth; i++ {
		fmt.Fprintf(&b, "l%d = %s\n", i, strings.Repeat(fmt.Sprintf("${l%d}", i-1), 16))
	}
	return b.String()
}

// within runs f and fails the test if it takes longer than d (each case
// here takes milliseconds; without the bounds they run out of memory or
// take hours).
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not finish within %s", what, d)
	}
	t.Logf("%s: %s", what, time.Since(start))
}

func configFromText(t *testing.T, path, text string) *Config {
	t.Helper()
	f, err := Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return configFromFile(f)
}

func TestBombIsSmall(t *testing.T) {
	if n := len(bombINI()); n > 600 {
		t.Errorf("bombINI is %d bytes, want a small file", n)
	}
}

func TestLoadRefusesAValueThatExpandsPastMaxValueLen(t *testing.T) {
	src := tree(t, map[string]string{"config/local.ini": bombINI()})
	var err error
	within(t, 10*time.Second, "Load", func() { _, err = Load(opts(src)) })
	file := filepath.Join(src, "config", "local.ini")
	// l6 (10 * 8^6 bytes, 2.6 MB) is the first key past 1 MiB.
	want := file + ":8: [bomb] l6: the value grows past 1048576 bytes (1 MiB, eib's limit; configparser has none) as its references are expanded: bomb:l6 -> bomb:l5"
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v\nwant %s", err, want)
	}
}

func TestGetEnvExplainOfABombFinishFast(t *testing.T) {
	c := configFromText(t, "bomb.ini", bombINI())
	within(t, 10*time.Second, "Get", func() {
		_, err := c.Get("bomb", "use2")
		var e *Error
		if !errors.As(err, &e) || e.File != "bomb.ini" || e.Line != 14 || e.Section != "bomb" || e.Key != "use2" ||
			!strings.Contains(e.Msg, "grows past 1048576 bytes") || !strings.Contains(e.Msg, "bomb:use2 -> bomb:l9 -> bomb:l8 -> bomb:l7 -> bomb:l6 -> bomb:l5") {
			t.Errorf("Get = %#v", err)
		}
	})
	within(t, 10*time.Second, "Env", func() {
		if _, err := c.Env(); err == nil || !strings.HasPrefix(err.Error(), "bomb.ini:8: [bomb] l6: the value grows past") {
			t.Errorf("Env = %v", err)
		}
	})
	within(t, 10*time.Second, "Explain", func() {
		var b bytes.Buffer
		l := &Loaded{Full: c}
		if err := l.Explain(&b, "bomb", "l9"); err == nil || !strings.HasPrefix(err.Error(), "bomb.ini:11: [bomb] l9: the value grows past") {
			t.Errorf("Explain = %v", err)
		}
	})
	within(t, 10*time.Second, "PrivateValues", func() { PrivateValues(c, New()) })
}

func TestReferencesThatExpandToNothingFinishFast(t *testing.T) {
	src := tree(t, map[string]string{"config/local.ini": zeroBombINI()})
	var (
		l   *Loaded
		err error
	)
	within(t, 10*time.Second, "Load", func() { l, err = Load(opts(src)) })
	if err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "Env", func() {
		env, err := l.Full.Env()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range env {
			found = found || e == "EIB_ZERO_L9="
		}
		if !found {
			t.Errorf("EIB_ZERO_L9= not in the environment: %q", env)
		}
	})
	within(t, 10*time.Second, "Get", func() {
		if v, err := l.Full.Get("zero", "l9"); err != nil || v != "" {
			t.Errorf("Get = %q, %v", v, err)
		}
	})
}

func TestMaxValueLenIsTheLongestValue(t *testing.T) {
	text := "[s]\nkib = " + strings.Repeat("x", 1024) + "\n" +
		"mib = " + strings.Repeat("${kib}", 1024) + "\n" +
		"more = ${mib}!\n" +
		"literal = $$${mib}\n"
	c := configFromText(t, "f.ini", text)
	if v, err := c.Get("s", "mib"); err != nil || len(v) != MaxValueLen {
		t.Errorf("Get(mib) = %d bytes, %v; want exactly MaxValueLen", len(v), err)
	}
	for _, k := range []string{"more", "literal"} {
		_, err := c.Get("s", k)
		var e *Error
		if !errors.As(err, &e) || e.Key != k || !strings.Contains(e.Msg, "grows past 1048576 bytes") {
			t.Errorf("Get(%s) = %v, want too long", k, err)
		}
	}
}

func TestTheValuesOfAConfigAddUpToAtMostMaxConfigLen(t *testing.T) {
	var b strings.Builder
	b.WriteString("[s]\nkib = " + strings.Repeat("x", 1024) + "\nmib = " + strings.Repeat("${kib}", 1000) + "\n")
	n := MaxConfigLen/(1000*1024) + 1
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "k%d = ${mib}\n", i)
	}
	src := tree(t, map[string]string{"config/local.ini": b.String()})
	file := filepath.Join(src, "config", "local.ini")
	var err error
	within(t, 20*time.Second, "Load", func() { _, err = Load(opts(src)) })
	want := fmt.Sprintf("%s:%d: [s] k%d: the interpolated values of the keys up to this one add up to more than %d bytes", file, n+2, n-2, MaxConfigLen)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load = %v\nwant %s...", err, want)
	}
	c := configFromText(t, "f.ini", b.String())
	within(t, 20*time.Second, "Env", func() {
		if _, err := c.Env(); err == nil || !strings.Contains(err.Error(), "add up to more than") {
			t.Errorf("Env = %v", err)
		}
	})
}

func TestParseRefusesNUL(t *testing.T) {
	for name, tc := range map[string]struct{ text, want string }{
		"value":        {"[s]\na = 1\nb = x\x00y\n", "f.ini:3: [s] b: a NUL byte"},
		"key":          {"[s]\nb\x00c = x\n", "f.ini:2: [s] b\\x00c: a NUL byte"},
		"continuation": {"[s]\nb = x\n  y\x00\n", "f.ini:3: [s] b: a NUL byte"},
		"default":      {"[DEFAULT]\nb = \x00\n", "f.ini:2: [DEFAULT] b: a NUL byte"},
		"comment":      {"[s]\n# \x00\n", "f.ini:2: [s] a NUL byte"},
		"section":      {"[s]\n[t\x00]\n", "f.ini:2: [t\\x00] a NUL byte"},
		"no section":   {"\x00\n", "f.ini:1: \"\\x00\" comes before any [section] header"},
	} {
		_, err := Parse("f.ini", []byte(tc.text))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %v, want %s...", name, err, tc.want)
		}
	}
	src := tree(t, map[string]string{"config/defaults.ini": "[image]\nhooks_add = 10-a\x00\n"})
	want := filepath.Join(src, "config", "defaults.ini") + ":2: [image] hooks_add: a NUL byte"
	if _, err := Load(opts(src)); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load = %v, want %s...", err, want)
	}
}

func TestConfigFilesMustBeRegularFiles(t *testing.T) {
	type maker func(path string) error
	for name, tc := range map[string]struct {
		make maker
		kind string
	}{
		"fifo": {func(p string) error { return syscall.Mkfifo(p, 0o644) }, "a FIFO"},
		"dir":  {func(p string) error { return os.Mkdir(p, 0o755) }, "a directory"},
		"socket": {func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		}, "a socket"},
		"device":         {func(p string) error { return os.Symlink("/dev/null", p) }, "a character device"},
		"link to a fifo": {func(p string) error { syscall.Mkfifo(p+".fifo", 0o644); return os.Symlink(p+".fifo", p) }, "a FIFO"},
	} {
		t.Run(name, func(t *testing.T) {
			// A short directory: a socket's path is limited to 108 bytes.
			src, err := os.MkdirTemp("", "eibcfg")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(src) })
			os.WriteFile(filepath.Join(src, "defaults.ini"), []byte("[s]\na = 1\n"), 0o644)
			os.MkdirAll(filepath.Join(src, "config"), 0o755)
			os.Rename(filepath.Join(src, "defaults.ini"), filepath.Join(src, "config", "defaults.ini"))
			path := filepath.Join(src, "config", "local.ini")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			var lerr error
			within(t, 10*time.Second, "Load", func() { _, lerr = Load(opts(src)) })
			want := path + ": not a regular file (" + tc.kind + ")"
			if lerr == nil || !strings.HasPrefix(lerr.Error(), want) {
				t.Errorf("Load = %v, want %s...", lerr, want)
			}
		})
	}
	t.Run("link to a regular file", func(t *testing.T) {
		src := tree(t, map[string]string{"config/defaults.ini": "[s]\na = 1\n", "elsewhere.ini": "[s]\na = 2\n"})
		if err := os.Symlink(filepath.Join(src, "elsewhere.ini"), filepath.Join(src, "config", "local.ini")); err != nil {
			t.Fatal(err)
		}
		l := mustLoad(t, opts(src))
		if v := get(t, l.Full, "s", "a"); v != "2" {
			t.Errorf("[s] a = %q, want 2 from the linked file", v)
		}
	})
	t.Run("dangling link", func(t *testing.T) {
		src := tree(t, map[string]string{"config/defaults.ini": "[s]\na = 1\n"})
		os.Symlink(filepath.Join(src, "nowhere.ini"), filepath.Join(src, "config", "local.ini"))
		if v := get(t, mustLoad(t, opts(src)).Full, "s", "a"); v != "1" {
			t.Errorf("[s] a = %q", v)
		}
	})
}

func TestLoadRefusesShortPrivateValues(t *testing.T) {
	for name, tc := range map[string]struct {
		private string
		line    int
		section string
		key     string
	}{
		"value":           {"[publish]\nuser = robot-user\nshort = abc\n", 3, "publish", "short"},
		"line of a value": {"[publish]\nmulti = first-line\n  ab\n", 2, "publish", "multi"},
		"default":         {"[DEFAULT]\nx = 1\n", 2, "DEFAULT", "x"},
		"merged list":     {"[image]\nhooks_add = 10-public z\n", 2, "image", "hooks"},
		"reference":       {"[publish]\nshort = ${build:arch}x\nport = 22\n", 3, "publish", "port"},
	} {
		t.Run(name, func(t *testing.T) {
			src := tree(t, map[string]string{
				"config/defaults.ini": "[publish]\nport = 2222\nuser = deploy\n[image]\nhooks_add = 10-public\n",
				"config/private.ini":  tc.private,
			})
			_, err := Load(opts(src))
			want := fmt.Sprintf("%s:%d: [%s] %s: a private value (or a line of one) of ", filepath.Join(src, "config", "private.ini"), tc.line, tc.section, tc.key)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "shorter than 4 bytes") {
				t.Fatalf("Load = %v\nwant %s...", err, want)
			}
			var ke *KeyError
			if !errors.As(err, &ke) || ke.Section != tc.section || ke.Key != tc.key {
				t.Errorf("Load = %#v, want a *KeyError of [%s] %s", err, tc.section, tc.key)
			}
		})
	}
	// Not refused: values that are not private, or not short.
	for name, private := range map[string]string{
		"the public value again":  "[publish]\nport = 2222\n",
		"empty":                   "[publish]\nempty =\n",
		"long enough":             "[publish]\nport = 2200\nuser = abcd\n",
		"public lines of a list":  "[image]\nhooks_add = 20-private\n",
		"a public default copied": "[new-section]\nkey = secret-value\n",
	} {
		t.Run("not "+name, func(t *testing.T) {
			src := tree(t, map[string]string{
				"config/defaults.ini": "[DEFAULT]\nflag = on\n[publish]\nport = 2222\nuser = deploy\n[image]\nhooks_add = 10-a\n",
				"config/private.ini":  private,
			})
			mustLoad(t, opts(src))
		})
	}
}

// BenchmarkEnvOfABomb shows the time Env takes to refuse bombINI (and to
// read zeroBombINI): milliseconds, where expanding every reference took
// minutes and gigabytes.
func BenchmarkEnvOfABomb(b *testing.B) {
	for _, text := range []string{bombINI(), zeroBombINI()} {
		f, err := Parse("bomb.ini", []byte(text))
		if err != nil {
			b.Fatal(err)
		}
		c := configFromFile(f)
		b.Run(c.Sections()[0], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.Env()
			}
		})
	}
}
