package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tree writes files (path relative to root -> content) and returns root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func opts(src string) Options {
	return Options{
		SrcDir: src, SysConfDir: filepath.Join(src, "etc"), Product: "eos", Branch: "eos3.8",
		Arch: "amd64", Platform: "pinebookpro", Personality: "en_GB_orkney", BuildVersion: "200101-000000",
	}
}

func mustLoad(t *testing.T, o Options) *Loaded {
	t.Helper()
	l, err := Load(o)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return l
}

func get(t *testing.T, c *Config, s, k string) string {
	t.Helper()
	v, err := c.Get(s, k)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", s, k, err)
	}
	return v
}

func TestLoadOrderAndNamespaces(t *testing.T) {
	// Every candidate file sets [order] seen_<ns> and overrides last = <ns>.
	var files = map[string]string{}
	src := tree(t, nil)
	local := filepath.Join(src, "local")
	o := opts(src)
	o.LocalDir = local
	refs := Candidates(o)
	for _, r := range refs {
		rel, err := filepath.Rel(src, r.Path)
		if err != nil {
			t.Fatal(err)
		}
		files[rel] = "[order]\nlast = " + r.Namespace + "\nhooks_add = " + r.Namespace + "\n"
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		os.WriteFile(full, []byte(c), 0o644)
	}
	want := []string{
		"defaults", "product_eos", "branch_eos3.8", "arch_amd64", "platform_pinebookpro",
		"personality_en", "personality_en_GB", "personality_en_GB_orkney",
		"product_branch_eos_eos3.8", "product_arch_eos_amd64", "product_platform_eos_pinebookpro",
		"product_personality_eos_en", "product_personality_eos_en_GB", "product_personality_eos_en_GB_orkney",
		"branch_arch_eos3.8_amd64", "branch_platform_eos3.8_pinebookpro",
		"branch_personality_eos3.8_en", "branch_personality_eos3.8_en_GB", "branch_personality_eos3.8_en_GB_orkney",
		"arch_platform_amd64_pinebookpro",
		"arch_personality_amd64_en", "arch_personality_amd64_en_GB", "arch_personality_amd64_en_GB_orkney",
		"platform_personality_pinebookpro_en", "platform_personality_pinebookpro_en_GB", "platform_personality_pinebookpro_en_GB_orkney",
		"system_config",
	}
	n := len(want)
	want = append(want, "local_defaults")
	for _, ns := range want[1 : n-1] {
		want = append(want, "local_"+ns)
	}
	want = append(want, "local", "system_private", "local_private", "private")
	var got []string
	for _, r := range refs {
		got = append(got, r.Namespace)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("namespaces:\n%q\nwant\n%q", got, want)
	}
	if filepath.Base(refs[5].Path) != "en.ini" || filepath.Base(filepath.Dir(refs[5].Path)) != "personality" {
		t.Errorf("personality_en file = %s", refs[5].Path)
	}
	if p := refs[10].Path; !strings.HasSuffix(p, "config/product-platform/eos-pinebookpro.ini") {
		t.Errorf("product_platform file = %s", p)
	}

	l := mustLoad(t, o)
	if v := get(t, l.Public, "order", "last"); v != "local" {
		t.Errorf("public last = %q, want local (config/local.ini is the last public file)", v)
	}
	if v := get(t, l.Full, "order", "last"); v != "private" {
		t.Errorf("full last = %q, want private", v)
	}
	if len(l.Files) != len(refs) {
		t.Errorf("read %d files, want %d", len(l.Files), len(refs))
	}
	h := l.Full.History("order", "last")
	if len(h) != len(refs) || h[0].Namespace != "defaults" || h[0].Line != 2 {
		t.Errorf("history = %d entries, first %+v", len(h), h[0])
	}
}

func TestBuildKeysSetBeforeFiles(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini":      "[build]\nout = ${product}-${series}\n",
		"config/product/other.ini": "[build]\nproduct = other\n",
		"config/product/eos.ini":   "[build]\narch = i386\n",
	})
	o := opts(src)
	o.LocalDir = filepath.Join(src, "loc")
	o.DryRun = true
	l := mustLoad(t, o)
	for k, want := range map[string]string{
		"product": "eos", "branch": "eos3.8", "series": "eos3", "arch": "i386", "platform": "pinebookpro",
		"personality": "en_GB_orkney", "srcdir": src, "cachedir": "/var/cache/eib",
		"sysconfdir": filepath.Join(src, "etc"), "build_version": "200101-000000", "dry_run": "true",
		"use_production_ostree": "false", "localdir": o.LocalDir, "localdatadir": o.LocalDir + "/data",
		"out": "eos-eos3",
	} {
		if v := get(t, l.Full, "build", k); v != want {
			t.Errorf("[build] %s = %q, want %q", k, v, want)
		}
	}
	if raw, _ := l.Full.Raw("build", "localdatadir"); raw != "${localdir}/data" {
		t.Errorf("localdatadir raw = %q", raw)
	}
}

func TestSeries(t *testing.T) {
	for in, want := range map[string]string{"eos3.8": "eos3", "master": "master", "eos3.8.1": "eos3.8", "eos4.0": "eos4"} {
		if got := Series(in); got != want {
			t.Errorf("Series(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultSectionIsGlobalAndCopiedIntoSectionsOfItsFile(t *testing.T) {
	// EIB (lib/eib.py read_config_file) adds each file with configparser's
	// read_dict: [DEFAULT] goes to the whole configuration's DEFAULT, and
	// each section of the file gets the file's DEFAULT keys as its own.
	src := tree(t, map[string]string{
		"config/defaults.ini":    "[DEFAULT]\nshared = d\n[build]\nx = 1\n[image]\nshared = own\n",
		"config/product/eos.ini": "[content]\ny = ${shared}\n",
	})
	l := mustLoad(t, opts(src))
	if v := get(t, l.Full, "build", "shared"); v != "d" {
		t.Errorf("[build] shared = %q", v)
	}
	if v := get(t, l.Full, "image", "shared"); v != "own" {
		t.Errorf("[image] shared = %q", v)
	}
	if got := l.Full.Options("content"); !reflect.DeepEqual(got, []string{"y", "hooks"}) {
		t.Errorf("[content] own keys = %q: a section of another file does not get DEFAULT's keys as its own", got)
	}
	if v := get(t, l.Full, "content", "y"); v != "d" {
		t.Errorf("[content] y = %q: interpolation falls back to DEFAULT", v)
	}
	var b strings.Builder
	l.Full.Write(&b)
	if !strings.HasPrefix(b.String(), "[DEFAULT]\nshared = d\n\n[build]\n") {
		t.Errorf("[DEFAULT] is not written first:\n%s", b.String())
	}
	b.Reset()
	l.Public.Write(&b)
	if strings.Contains(b.String(), "[DEFAULT]") || !strings.Contains(b.String(), "[content]\nshared = d\ny = ${shared}\n") {
		t.Errorf("the public copy has no DEFAULT: its keys are in every section, first:\n%s", b.String())
	}
}

func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
		gone  []string // keys that must not remain
	}{
		{
			name: "AddsInFirstSeenOrderDelsCancel",
			files: map[string]string{
				"config/defaults.ini":    "[image]\nhooks_add = 10-a 20-b\n  30-c\n",
				"config/product/eos.ini": "[image]\nhooks_del = 20-b\nhooks_add = 05-z\n",
			},
			want: "10-a\n30-c\n05-z",
			gone: []string{"hooks_add_defaults", "hooks_add_product_eos", "hooks_del_product_eos"},
		},
		{
			name: "DeleteCancelsAddFromLaterFile",
			files: map[string]string{
				"config/defaults.ini":    "[image]\nhooks_del = 10-a\n",
				"config/product/eos.ini": "[image]\nhooks_add = 10-a 20-b\n",
			},
			want: "20-b",
		},
		{
			name: "TwoAddsOneDelKeepsWord",
			files: map[string]string{
				"config/defaults.ini":    "[image]\nhooks_add = a\n",
				"config/product/eos.ini": "[image]\nhooks_add = a\nhooks_del = a\n",
			},
			want: "a",
		},
		{
			name: "ExplicitOptionWinsVerbatim",
			files: map[string]string{
				"config/defaults.ini":    "[image]\nhooks_add = a b\n",
				"config/product/eos.ini": "[image]\nhooks =\n",
			},
			want: "",
			gone: []string{"hooks_add_defaults"},
		},
		{
			name: "PrefixMatchCountsHooksAddress",
			files: map[string]string{
				"config/defaults.ini": "[image]\nhooks_address = x\nhooks_deleted = y\nhooks_add = y\n",
			},
			want: "x",
		},
		{
			name: "EmptyWhenSectionHasNoKeys",
			files: map[string]string{
				"config/defaults.ini": "[image]\nother = 1\n",
			},
			want: "",
		},
		{
			name: "InterpolatedWords",
			files: map[string]string{
				"config/defaults.ini": "[build]\nextra = p q\n[image]\nhooks_add = ${build:extra} r\n",
			},
			want: "p\nq\nr",
		},
		{
			name: "GlobSection",
			files: map[string]string{
				"config/defaults.ini": "[flatpak-remote-flathub]\napps_add = org.a org.b\napps_del = org.b\n",
			},
			want: "org.a",
		},
		{
			name: "DefaultOptionWinsVerbatim",
			files: map[string]string{
				"config/defaults.ini":    "[DEFAULT]\nhooks = d\n",
				"config/product/eos.ini": "[image]\nhooks_add = a\n",
			},
			want: "d",
		},
		{
			name: "WordsFromDefault",
			files: map[string]string{
				"config/defaults.ini":    "[DEFAULT]\nw = from-default\n",
				"config/product/eos.ini": "[image]\nhooks_add = ${w}\n",
			},
			want: "from-default",
		},
		{
			name: "DollarDollarStaysLiteral",
			files: map[string]string{
				"config/defaults.ini": "[image]\nhooks_add = $${x} $$$${y}\n",
			},
			want: "${x}\n$${y}",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tree(t, tc.files)
			l := mustLoad(t, opts(src))
			sect := "image"
			opt := "hooks"
			if strings.Contains(tc.name, "Glob") {
				sect, opt = "flatpak-remote-flathub", "apps"
			}
			raw, ok := l.Full.Raw(sect, opt)
			if !ok || raw != tc.want {
				t.Errorf("[%s] %s = %q (set %v), want %q", sect, opt, raw, ok, tc.want)
			}
			if v := get(t, l.Full, sect, opt); v != tc.want {
				t.Errorf("[%s] %s reads %q, want %q (a merged value is not interpolated again)", sect, opt, v, tc.want)
			}
			for _, k := range tc.gone {
				if l.Full.Has(sect, k) {
					t.Errorf("%s still set", k)
				}
			}
			for _, k := range l.Full.Options(sect) {
				if strings.HasPrefix(k, opt+"_add") || strings.HasPrefix(k, opt+"_del") {
					t.Errorf("%s left in the merged config", k)
				}
			}
		})
	}
}

func TestMergedLiteralIsKeptWhenReadAndInterpolatedWhenReferred(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[content]\nhooks_add = $${image:word}\n[image]\nword = w\nhooks_add = ${content:hooks}\nplain = ${content:hooks}\n",
	})
	l := mustLoad(t, opts(src))
	for _, c := range []struct{ section, key, want string }{
		{"content", "hooks", "${image:word}"}, // read as stored
		{"image", "hooks", "w"},               // merged from a reference to it: interpolated again, as EIB does
		{"image", "plain", "w"},
	} {
		if v := get(t, l.Full, c.section, c.key); v != c.want {
			t.Errorf("[%s] %s = %q, want %q", c.section, c.key, v, c.want)
		}
	}
}

func TestRenamedKeyOverwritesInPlace(t *testing.T) {
	// read_config_file sets <opt>_add_<ns> (a dict assignment: in place if
	// the key exists) and then deletes <opt>_add.
	src := tree(t, map[string]string{
		"config/defaults.ini": "[image]\nhooks_add_defaults = explicit\nhooks_add = renamed\nz = 1\nsettings_add = s\nhooks_del = h\n",
	})
	c := New()
	f, _, err := ReadFile(filepath.Join(src, "config/defaults.ini"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.loadFile(FileRef{Path: f.Path, Namespace: "defaults"}, f); err != nil {
		t.Fatal(err)
	}
	if got := c.Options("image"); !reflect.DeepEqual(got, []string{"hooks_add_defaults", "z", "hooks_del_defaults", "settings_add_defaults"}) {
		t.Errorf("keys = %q", got)
	}
	if raw, _ := c.Raw("image", "hooks_add_defaults"); raw != "renamed" {
		t.Errorf("hooks_add_defaults = %q", raw)
	}
}

func TestMergedAddInDefaultIsError(t *testing.T) {
	for name, content := range map[string]string{
		// The file's own [image] cannot be renamed (EIB: KeyError in
		// read_config_file).
		"same file": "[DEFAULT]\nhooks_add = x\n[image]\ny = 1\n",
		// No section of the file has hooks: the key reaches the DEFAULT of
		// the configuration, and the merge cannot remove it from [image].
		"other file": "[DEFAULT]\nhooks_add = x\n[other]\ny = 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			src := tree(t, map[string]string{"config/defaults.ini": "[image]\nz = 1\n", "config/product/eos.ini": content})
			_, err := Load(opts(src))
			var e *Error
			if !errors.As(err, &e) || e.Key != "hooks_add" || e.Line != 2 || e.Section != "image" {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestPublicAddReferringToPrivateValueIsError(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[image]\nhooks_add = ${secret:hook}\n",
		"config/private.ini":  "[secret]\nhook = x\n",
	})
	_, err := Load(opts(src))
	var e *Error
	if !errors.As(err, &e) || e.Section != "image" || e.Key != "hooks_add_defaults" || e.Line != 2 ||
		!strings.Contains(e.Error(), "no section [secret]") {
		t.Fatalf("err = %v", err)
	}
}

func TestPrivateValuesAreSecretsAndOnlyInFull(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[publish]\ntoken = public\nurl = https://${token}@example.com\n[image]\nx = 1\n",
		"config/private.ini":  "[publish]\ntoken = s3cr3t-value\n[image]\nhooks_add = private-hook\n",
		"etc/private.ini":     "[publish]\nuser = admin-user\n",
	})
	l := mustLoad(t, opts(src))
	if v := get(t, l.Public, "publish", "token"); v != "public" {
		t.Errorf("public token = %q", v)
	}
	if l.Public.Has("publish", "user") {
		t.Errorf("public config has a private key")
	}
	if v := get(t, l.Full, "publish", "url"); v != "https://s3cr3t-value@example.com" {
		t.Errorf("full url = %q", v)
	}
	// The url only refers to the private token, but its value differs from
	// the public one: it is private too (PrivateValues).
	if !reflect.DeepEqual(l.Secrets, []string{"https://s3cr3t-value@example.com", "s3cr3t-value", "private-hook", "admin-user"}) {
		t.Errorf("secrets = %q", l.Secrets)
	}
	// The full configuration is merged once, after the private files: the
	// private hooks_add counts; the public configuration does not have it.
	if v := get(t, l.Full, "image", "hooks"); v != "private-hook" {
		t.Errorf("[image] hooks = %q", v)
	}
	if v := get(t, l.Public, "image", "hooks"); v != "" {
		t.Errorf("public [image] hooks = %q", v)
	}
}

func TestSchema(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[image]\ncompression = zstd\nsplit = ${build:srcdir}/nope\n[publish]\nkeys = ${build:srcdir}/config ${build:srcdir}/missing\nodd = x\n",
		"config/schema.ini":   "[image]\ncompression_values = gz xz zst\nsplit_type = path\nsize_required = true\n[publish]\nkeys_type = paths\nodd_type = number\n",
	})
	_, err := Load(opts(src))
	var se *SchemaError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"5 schema violations",
		"config/defaults.ini:2: [image] compression: \"zstd\" is not one of gz, xz, zst (schema " + src + "/config/schema.ini:2)",
		"[image] split: ", "no such path: " + src + "/nope",
		"[image] size: required but not set",
		"[publish] keys: ", "no such path: " + src + "/missing",
		"config/schema.ini:7: [publish] odd_type: unknown schema type \"number\"",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("schema error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "no such path: "+src+"/config") {
		t.Errorf("existing path reported:\n%s", msg)
	}
}

func TestSchemaAsEIBChecksIt(t *testing.T) {
	// run-build check_value: _required only when "true" (any case); _type
	// skips empty values; keys without a suffix are no rules; the schema's
	// DEFAULT rules apply to every schema section and to [build]; a schema
	// section the config lacks is reported once.
	src := tree(t, map[string]string{
		"config/defaults.ini": "[build]\ntier = bronze\nnothing =\n[image]\nempty =\nblank = ${build:nothing}\ntier = gold\n",
		"config/schema.ini": "[DEFAULT]\ntier_values = gold\n[image]\nempty_type = path\nblank_type = paths\nx_required = yes\nnote = ${nope}x\n" +
			"[absent]\na_required = false\nb_values = 1\nc_type = path\n",
	})
	_, err := Load(opts(src))
	var se *SchemaError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, v := range se.Violations {
		got = append(got, strings.ReplaceAll(v.Error(), src, "SRC"))
	}
	want := []string{
		"SRC/config/defaults.ini:2: [build] tier: \"bronze\" is not one of gold (schema SRC/config/schema.ini:2)",
		"SRC/config/schema.ini:7: [image] note: bad reference ${nope}: no key \"nope\" in [image] (in the schema)",
		// The DEFAULT rule is the first of [absent] to look into it.
		"SRC/config/schema.ini:2: [absent] tier_values: the schema has a section [absent] that the configuration does not have",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLocalSchemaOverrides(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini":            "[image]\ncompression = zstd\n",
		"config/schema.ini":              "[image]\ncompression_values = gz xz zst\n",
		"local/config/schema.ini":        "[image]\ncompression_values = gz zstd\n",
		"local/config/product/eos.ini":   "[image]\nlocal = yes\n",
		"local/config/local_private.ini": "[image]\nnot = read\n",
	})
	o := opts(src)
	o.LocalDir = filepath.Join(src, "local")
	l := mustLoad(t, o)
	if h := l.Full.History("image", "local"); len(h) != 1 || h[0].Namespace != "local_product_eos" {
		t.Errorf("history = %+v", h)
	}
}

func TestErrorsNameFileLineSectionKey(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		want    string
	}{
		"syntax":                   {"[image]\njust words\n", ":2: [image] "},
		"duplicate":                {"[image]\na = 1\nA = 2\n", ":3: [image] a: key already set"},
		"lone dollar":              {"[image]\na = $5\n", ":2: [image] a: invalid interpolation syntax"},
		"bad reference in a merge": {"[image]\nhooks_add = ${nope}\n", ":2: [image] hooks_add_product_eos: bad reference ${nope}: no key \"nope\" in [image] (while merging [image] hooks)"},
		"depth in a merge":         {"[image]\nhooks_add = ${a}\na = ${a}\n", ":2: [image] hooks_add_product_eos: more than 10 nested references"},
		"lone dollar after merge":  {"[image]\nhooks_add = a$$b\n", ":2: [image] hooks: the merged value \"a$b\" is not valid"},
		"no section":               {"a = 1\n", ":1: \"a = 1\" comes before any [section] header"},
	} {
		t.Run(name, func(t *testing.T) {
			src := tree(t, map[string]string{"config/product/eos.ini": tc.content})
			_, err := Load(opts(src))
			if err == nil || !strings.Contains(err.Error(), filepath.Join(src, "config/product/eos.ini")+tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPlainReferencesAreResolvedWhenRead(t *testing.T) {
	// EIB loads and prints plain options raw: a reference is resolved (and
	// may fail) only where the value is used.
	src := tree(t, map[string]string{
		"config/defaults.ini": "[image]\nmissing = ${nope}\nsection = ${Build:arch}\nloop = ${loop}\nupper = ${BUILD:arch}\n",
	})
	l := mustLoad(t, opts(src))
	file := filepath.Join(src, "config/defaults.ini")
	for key, want := range map[string]string{
		"missing": file + ":2: [image] missing: bad reference ${nope}: no key \"nope\" in [image]",
		"section": file + ":3: [image] section: bad reference ${Build:arch}: no section [Build]",
		"loop":    file + ":4: [image] loop: more than 10 nested references",
		"upper":   file + ":5: [image] upper: bad reference ${BUILD:arch}: no section [BUILD]",
	} {
		if _, err := l.Full.Get("image", key); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Get(image, %s) = %v, want %q", key, err, want)
		}
	}
	if _, err := l.Full.Env(); err == nil || !strings.Contains(err.Error(), "[image] missing: bad reference") {
		t.Errorf("Env() = %v, want the first bad key named", err)
	}
}

func TestEnv(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[build]\nflag = True\n[flatpak-remote-eos.apps]\nurl = ${build:product}\nmulti = a\n  b\n[image]\nyes = FALSE\nword = Yes\n",
	})
	l := mustLoad(t, opts(src))
	env, err := l.Full.Env()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, want := range map[string]string{
		"EIB_PRODUCT": "eos", "EIB_FLAG": "true", "EIB_DRY_RUN": "false",
		"EIB_FLATPAK_REMOTE_EOS_APPS_URL": "eos", "EIB_FLATPAK_REMOTE_EOS_APPS_MULTI": "a\nb",
		"EIB_IMAGE_YES": "false", "EIB_IMAGE_WORD": "Yes", "EIB_IMAGE_HOOKS": "",
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, want)
		}
	}
	if env[0] != "EIB_PRODUCT=eos" {
		t.Errorf("env not in config order: %q", env[:3])
	}
}

func TestWriteFormat(t *testing.T) {
	c := New()
	c.Set("s", "Key", "a\nb\n\nc")
	c.Set("s", "empty", "")
	c.Set("t", "raw", "${s:key}")
	var b strings.Builder
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "[s]\nkey = a\n\tb\n\t\n\tc\nempty = \n\n[t]\nraw = ${s:key}\n\n"
	if b.String() != want {
		t.Errorf("Write = %q, want %q", b.String(), want)
	}
}

func TestTypedGetters(t *testing.T) {
	c := New()
	c.Set("s", "b", "On")
	c.Set("s", "n", " 42 ")
	c.Set("s", "w", "a  b\n c")
	c.Set("s", "bad", "maybe")
	if v, err := c.Bool("s", "b"); err != nil || !v {
		t.Errorf("Bool = %v, %v", v, err)
	}
	if v, err := c.Int("s", "n"); err != nil || v != 42 {
		t.Errorf("Int = %v, %v", v, err)
	}
	if v, err := c.Words("s", "w"); err != nil || !reflect.DeepEqual(v, []string{"a", "b", "c"}) {
		t.Errorf("Words = %q, %v", v, err)
	}
	if _, err := c.Bool("s", "bad"); err == nil || !strings.Contains(err.Error(), "[s] bad: \"maybe\" is not a boolean") {
		t.Errorf("Bool(bad) err = %v", err)
	}
	if _, err := c.Get("s", "missing"); err == nil || !strings.Contains(err.Error(), "[s] missing: not set") {
		t.Errorf("Get(missing) err = %v", err)
	}
}

func TestExplain(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini":    "[image]\nhooks_add = 10-a 20-b\n[build]\nx = ${product}\n",
		"config/product/eos.ini": "[image]\nhooks_del = 20-b\n[build]\nx = ${product}-${arch}\n",
	})
	l := mustLoad(t, opts(src))
	var b strings.Builder
	if err := l.Explain(&b, "image", "hooks"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"+ " + src + "/config/defaults.ini:2 (defaults): hooks_add = 10-a 20-b -> 10-a 20-b",
		"- " + src + "/config/product/eos.ini:2 (product_eos): hooks_del = 20-b -> 20-b",
		"10-a = 1 (kept)", "20-b = 0 (dropped)", "interpolated value:\n    10-a\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := l.Explain(&b, "build", "x"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		src + "/config/defaults.ini:4 (defaults): x = ${product}",
		src + "/config/product/eos.ini:4 (product_eos): x = ${product}-${arch}",
		"interpolated value:\n    eos-amd64\n", "environment: EIB_X",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, b.String())
		}
	}
	if err := l.Explain(&b, "nope", "x"); err == nil || !strings.Contains(err.Error(), "[nope] x: not set: there is no [nope] section") {
		t.Errorf("explain of a missing key: %v", err)
	}
}
