package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// readAs reads k through the Reader accessor of its kind. A kind without
// an accessor fails the test, so a new Kind needs one.
func readAs(t *testing.T, r *Reader, section, key string, kind Kind) any {
	t.Helper()
	switch kind {
	case KindString:
		return r.String(section, key)
	case KindBool:
		return r.Bool(section, key)
	case KindInt:
		return r.Int(section, key)
	case KindSeconds:
		return r.Seconds(section, key)
	case KindEnum:
		return r.Enum(section, key)
	case KindPath:
		return r.Path(section, key)
	case KindRegex:
		return r.Regex(section, key)
	case KindList:
		return r.List(section, key)
	case KindURL:
		return r.URL(section, key)
	}
	t.Fatalf("[%s] %s: kind %q has no Reader accessor", section, key, kind)
	return nil
}

var allKinds = []Kind{KindBool, KindInt, KindSeconds, KindEnum, KindPath, KindRegex, KindList, KindURL, KindString}

// loadShipped loads the shipped tree (../..) for product, as a build of it
// on amd64 would, with no localdir and an empty sysconfdir.
func loadShipped(t *testing.T, product string) *Loaded {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return mustLoad(t, Options{SrcDir: src, SysConfDir: t.TempDir(), Product: product, Branch: "master",
		Arch: "amd64", Platform: "amd64", Personality: "base", BuildVersion: "200101-000000"})
}

// TestReaderReadsEveryKeyOfTheShippedTree: every KeysRead entry, and
// every [build] key of BuildKeys, reads without an error through the
// accessor of its kind, from the configuration of every shipped product
// (config/defaults.ini and config/product/*.ini), in both the public and
// the full configuration. So the table, the accessors and the shipped
// files cannot drift apart.
func TestReaderReadsEveryKeyOfTheShippedTree(t *testing.T) {
	products, err := filepath.Glob(filepath.Join("..", "..", "config", "product", "*.ini"))
	if err != nil || len(products) == 0 {
		t.Fatalf("no shipped products: %v", err)
	}
	for _, p := range products {
		product := strings.TrimSuffix(filepath.Base(p), ".ini")
		l := loadShipped(t, product)
		for _, c := range []*Config{l.Public, l.Full} {
			r := c.Read()
			for _, k := range KeysRead {
				v := readAs(t, r, k.Section, k.Key, k.Type.Kind)
				if err := r.Err(); err != nil {
					t.Fatalf("product %s: %v", product, err)
				}
				if k.HasDefault() && k.Default != "" && reflect.ValueOf(v).IsZero() && k.Type.Kind != KindBool && k.Type.Kind != KindInt {
					t.Errorf("product %s: [%s] %s reads as %#v, but its default is %q", product, k.Section, k.Key, v, k.Default)
				}
			}
			for _, b := range BuildKeys {
				d, ok := Declared("build", b)
				if !ok {
					t.Fatalf("Declared(build, %s): not declared", b)
				}
				readAs(t, r, "build", b, d.Type.Kind)
				if err := r.Err(); err != nil {
					t.Fatalf("product %s: %v", product, err)
				}
			}
		}
	}
}

// TestReaderRefusesUndeclaredKeysAndOtherKinds: every accessor refuses a
// key the table lacks, and every declared key read with another kind's
// accessor; the error names the section and key.
func TestReaderRefusesUndeclaredKeysAndOtherKinds(t *testing.T) {
	c := New()
	c.Set("check", "nosuchkey", "1")
	for _, kind := range allKinds {
		r := c.Read()
		readAs(t, r, "check", "nosuchkey", kind)
		if err := r.Err(); err == nil || !strings.Contains(err.Error(), "[check] nosuchkey: not declared in config.KeysRead") {
			t.Errorf("%s accessor of an undeclared key: %v", kind, err)
		}
	}
	for _, kind := range allKinds {
		for _, k := range KeysRead {
			if k.Type.Kind == kind {
				continue
			}
			r := c.Read()
			readAs(t, r, k.Section, k.Key, kind)
			want := "[" + k.Section + "] " + k.Key + ": not declared in config.KeysRead as " + string(kind) + ": it is a " + string(k.Type.Kind) + " setting"
			if err := r.Err(); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s accessor of [%s] %s: %v, want %q", kind, k.Section, k.Key, err, want)
			}
		}
	}
	r := c.Read()
	if r.Has("check", "nosuchkey") || r.Err() == nil || !strings.Contains(r.Err().Error(), "not declared in config.KeysRead") {
		t.Errorf("Has of an undeclared key: %v", r.Err())
	}
	if _, ok := Declared("image", "arch"); ok {
		t.Error("Declared(image, arch): a BuildKeys key outside [build]")
	}
	if d, ok := Declared("build", "dry_run"); !ok || d.Type.Kind != KindBool || d.HasDefault() {
		t.Errorf("Declared(build, dry_run) = %+v, %v", d, ok)
	}
}

// TestReaderValues: what each accessor returns for good values, and that
// keys are case-insensitive as in the files.
func TestReaderValues(t *testing.T) {
	c := New()
	set := map[[2]string]string{
		{"build", "outversion"}:          "${product}-x",
		{"build", "product"}:             "demo",
		{"build", "dry_run"}:             "Yes",
		{"build", "srcdir"}:              "/src/./eib/",
		{"check", "boot"}:                "off",
		{"check", "qemu_memory"}:         " 2048 ",
		{"check", "boot_timeout"}:        "0",
		{"check", "firmware"}:            "uefi",
		{"check", "boot_marker"}:         "login: |ok",
		{"ostree", "kargs"}:              "a=1\n b  c",
		{"ostree", "pull_url"}:           "file:///srv/repo",
		{"ostree", "dev_pull_url"}:       "https://example.com:8443/r",
		{"image", "max_size"}:            "",
		{"publish", "dir"}:               "",
		{"image", "signing_key"}:         "${build:srcdir}/../k.asc",
		{"publish", "rsync_options"}:     "",
		{"ostree", "enable_p2p_updates"}: "true",
	}
	for k, v := range set {
		c.Set(k[0], k[1], v)
	}
	r := c.Read()
	got := []any{
		r.String("build", "OutVersion"), r.Bool("build", "dry_run"), r.Path("build", "srcdir"),
		r.Bool("check", "boot"), r.Int("check", "qemu_memory"), r.Seconds("check", "boot_timeout"),
		r.Enum("check", "firmware"), r.Regex("check", "boot_marker").String(),
		r.List("ostree", "kargs"), r.URL("ostree", "pull_url"), r.URL("ostree", "dev_pull_url"),
		r.Int("image", "max_size"), r.Path("publish", "dir"), r.Path("image", "signing_key"),
		r.List("publish", "rsync_options"), r.Bool("ostree", "enable_p2p_updates"),
	}
	want := []any{
		"demo-x", true, "/src/eib",
		false, int64(2048), time.Duration(0),
		"uefi", "login: |ok",
		[]string{"a=1", "b", "c"}, "file:///srv/repo", "https://example.com:8443/r",
		int64(0), "", "/src/k.asc",
		[]string(nil), true,
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("read %d: got %#v, want %#v", i, got[i], want[i])
		}
	}
}

// TestReaderUnsetKeys: a key config/defaults.ini does not set reads as its
// zero value without an error when unset (Has tells); a key it sets is an
// error when unset.
func TestReaderUnsetKeys(t *testing.T) {
	r := New().Read()
	if r.Bool("ostree", "enable_p2p_updates") || r.String("image", "product_name") != "" || r.Path("build", "localdir") != "" || r.Err() != nil {
		t.Fatalf("unset keys without a default: %v", r.Err())
	}
	if r.Has("ostree", "enable_p2p_updates") || r.Err() != nil {
		t.Fatalf("Has of an unset key: %v", r.Err())
	}
	if r.Bool("check", "boot") {
		t.Error("unset [check] boot read as true")
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), `[check] boot: not set (config/defaults.ini sets it to "true"`) {
		t.Errorf("unset [check] boot: %v", err)
	}
	c := New()
	c.Set("image", "product_name", "Demo")
	if r := c.Read(); !r.Has("image", "product_name") || r.String("image", "product_name") != "Demo" || r.Err() != nil {
		t.Errorf("set [image] product_name: %v", r.Err())
	}
}

// TestReaderBadValues: each kind's wrong values, and empty values where
// the default is not empty, are errors naming the key and the value.
func TestReaderBadValues(t *testing.T) {
	cases := []struct {
		section, key string
		kind         Kind
		value, want  string
	}{
		{"check", "boot", KindBool, "maybe", `[check] boot: "maybe" is not a boolean`},
		{"check", "boot", KindBool, "", `[check] boot: "" is not a boolean`},
		{"check", "qemu_memory", KindInt, "1G", `[check] qemu_memory: "1G" is not an integer`},
		{"check", "qemu_memory", KindInt, " ", `[check] qemu_memory: empty, but it must be an integer (config/defaults.ini sets it to "1024")`},
		{"check", "boot_timeout", KindSeconds, "5m", `[check] boot_timeout: "5m" is not an integer`},
		{"check", "boot_timeout", KindSeconds, "-1", `[check] boot_timeout: -1 seconds: must be 0 or more`},
		{"check", "boot_timeout", KindSeconds, "99999999999", `[check] boot_timeout: 99999999999 seconds is out of range`},
		{"check", "boot_timeout", KindSeconds, "", `[check] boot_timeout: empty, but it must be a number of seconds`},
		{"check", "accel", KindEnum, "fast", `[check] accel: "fast" is not one of auto, kvm, tcg`},
		{"check", "accel", KindEnum, "", `[check] accel: "" is not one of auto, kvm, tcg`},
		{"build", "builddir", KindPath, "build", `[build] builddir: "build" is a relative path`},
		{"build", "builddir", KindPath, "", `[build] builddir: empty, but it must be an absolute path`},
		{"check", "boot_marker", KindRegex, "(", `[check] boot_marker: "(" is not a regular expression`},
		{"check", "boot_marker", KindRegex, "", `[check] boot_marker: empty, but it must be a regular expression`},
		{"ostree", "pull_url", KindURL, "example.com/repo", `[ostree] pull_url: "example.com/repo" is not an absolute URL: it has no scheme`},
		{"ostree", "pull_url", KindURL, "http:///repo", `[ostree] pull_url: "http:///repo" is not an absolute URL: it has no host`},
		{"ostree", "pull_url", KindURL, "http://a b/", `[ostree] pull_url: "http://a b/" is not a URL`},
		{"build", "outversion", KindString, "${nosuch}", `[build] outversion: `},
	}
	for _, tc := range cases {
		c := New()
		c.Set(tc.section, tc.key, tc.value)
		r := c.Read()
		v := readAs(t, r, tc.section, tc.key, tc.kind)
		err := r.Err()
		var ce *Error
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ce) {
			t.Errorf("%s [%s] %s = %q: %v, want an *Error with %q", tc.kind, tc.section, tc.key, tc.value, err, tc.want)
		}
		if v != nil && !reflect.ValueOf(v).IsZero() {
			t.Errorf("%s [%s] %s = %q: read as %#v after an error, want the zero value", tc.kind, tc.section, tc.key, tc.value, v)
		}
	}
}

// TestReaderKeepsTheFirstErrorAtItsFileAndLine: the first error is kept,
// reads after it give zero values, and the error is located at the file
// and line that set the key; Reject records errors the same way.
func TestReaderKeepsTheFirstErrorAtItsFileAndLine(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[check]\nboot = true\nqemu_memory = lots\nfirmware = none\n",
		"config/product/eos.ini": "[check]\n" +
			"# comment\n" +
			"boot = perhaps\n",
	})
	l := mustLoad(t, opts(src))
	r := l.Full.Read()
	mem := r.Int("check", "qemu_memory")
	boot := r.Bool("check", "boot")
	fw := r.Enum("check", "firmware")
	err := r.Err()
	want := filepath.Join(src, "config", "defaults.ini") + `:3: [check] qemu_memory: "lots" is not an integer`
	if err == nil || err.Error() != want {
		t.Fatalf("first error: %v, want %s", err, want)
	}
	if mem != 0 || boot || fw != "" {
		t.Errorf("reads after the error: %v %v %q, want zero values", mem, boot, fw)
	}
	// The later error on its own, at the later file's line.
	r = l.Full.Read()
	r.Bool("check", "boot")
	want = filepath.Join(src, "config", "product", "eos.ini") + `:3: [check] boot: "perhaps" is not a boolean`
	if err := r.Err(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error: %v, want %s...", err, want)
	}
	// Reject: located the same way; only the first is kept.
	r = l.Full.Read()
	first := r.Reject("check", "firmware", "not for this platform")
	r.Reject("check", "boot", "second")
	want = filepath.Join(src, "config", "defaults.ini") + `:4: [check] firmware: not for this platform`
	if err := r.Err(); err != first || err.Error() != want {
		t.Errorf("Reject: %v, want %s", err, want)
	}
	// A [build] key set from the command line.
	r = l.Full.Read()
	r.Reject("build", "arch", "unknown")
	if err := r.Err(); err == nil || err.Error() != "command line: [build] arch: unknown" {
		t.Errorf("Reject of [build] arch: %v", err)
	}
	// Config.Enum and Config.Duration are the Reader's.
	if _, err := l.Full.Enum("check", "firmware"); err == nil || !strings.Contains(err.Error(), `defaults.ini:4: [check] firmware: "none" is not one of bios, uefi, both`) {
		t.Errorf("Config.Enum: %v", err)
	}
}

// TestReaderWithoutConfig: a nil configuration reads nothing, naming the
// key.
func TestReaderWithoutConfig(t *testing.T) {
	r := NewReader(nil)
	if r.Bool("check", "boot") || r.Has("check", "boot") {
		t.Error("nil config read as set")
	}
	if err := r.Err(); err == nil || err.Error() != "[check] boot: no configuration to read it from" {
		t.Errorf("nil config: %v", err)
	}
}

// TestReaderAccessorsDocumented: every accessor's doc comment says what
// an unset key reads as (the package's rule for NotInDefaults).
func TestReaderAccessorsDocumented(t *testing.T) {
	data, err := os.ReadFile("reader.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	for _, name := range []string{"String", "Bool", "Int", "Seconds", "Enum", "Path", "Regex", "List", "URL"} {
		sig := "\nfunc (r *Reader) " + name + "("
		i := strings.Index(src, sig)
		if i < 0 {
			t.Errorf("no accessor %s", name)
			continue
		}
		doc := src[strings.LastIndex(src[:i], "\n\n"):i]
		if !strings.Contains(doc, "Unset:") {
			t.Errorf("Reader.%s's doc does not say what an unset key reads as (\"Unset: ...\")", name)
		}
	}
}
