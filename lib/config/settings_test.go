package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tableKey maps a key of a shipped file to the KeysRead key it sets: a
// merged list's <option>_add is the option.
func tableKey(section, name string) string {
	for _, m := range MergedOptions {
		if globMatch(m.SectionGlob, section) && (name == m.Option+"_add" || name == m.Option+"_del") {
			return m.Option
		}
	}
	return name
}

// TestKeysReadDefaultsAreDefaultsIni: every key of config/defaults.ini has
// a KeysRead entry whose Default is the file's raw value (for a list, the
// same words), and every entry with a default is in the file. The entries
// without one (NotInDefaults) are EIB's optional keys eib also reads:
// [ostree] enable_p2p_updates and [image] product_name, and the keys of
// the [flatpak-remote-*] sections (defaults.ini defines no remote: its
// comment documents them); the [build] keys eib sets itself (BuildKeys)
// are not in the table.
func TestKeysReadDefaultsAreDefaultsIni(t *testing.T) {
	f, _, err := ReadFile(filepath.Join("..", "..", "config", "defaults.ini"))
	if err != nil {
		t.Fatal(err)
	}
	inFile := map[location]bool{}
	for _, s := range f.Sections {
		for _, k := range s.Keys {
			key := tableKey(s.Name, k.Name)
			loc := location{s.Name, key}
			inFile[loc] = true
			e, ok := Setting(s.Name, key)
			switch {
			case !ok:
				t.Errorf("defaults.ini:%d: [%s] %s is not in KeysRead", k.Line, s.Name, key)
			case !e.HasDefault():
				t.Errorf("defaults.ini:%d: [%s] %s is set, but KeysRead says NotInDefaults", k.Line, s.Name, key)
			case e.Type.Kind == KindList:
				if got, want := strings.Join(pyFields(k.Value), " "), e.Default; got != want {
					t.Errorf("defaults.ini:%d: [%s] %s = %q, KeysRead's default is %q", k.Line, s.Name, k.Name, got, want)
				}
			case k.Value != e.Default:
				t.Errorf("defaults.ini:%d: [%s] %s = %q, KeysRead's default is %q", k.Line, s.Name, k.Name, k.Value, e.Default)
			}
		}
	}
	var without []string
	for _, e := range KeysRead {
		if !e.HasDefault() {
			without = append(without, e.Section+":"+e.Key)
			if inFile[location{e.Section, e.Key}] {
				t.Errorf("[%s] %s: NotInDefaults, but defaults.ini sets it", e.Section, e.Key)
			}
		} else if !inFile[location{e.Section, e.Key}] {
			t.Errorf("[%s] %s: KeysRead's default is %q, but defaults.ini does not set it", e.Section, e.Key, e.Default)
		}
	}
	want := "ostree:enable_p2p_updates image:product_name"
	for _, k := range []string{"enable", "url", "deploy_url", "repo_file", "apps", "runtimes", "exclude", "allow_extra_data", "title", "default_branch", "prio", "noenumerate"} {
		want += " flatpak-remote-*:" + k
	}
	if strings.Join(without, " ") != want {
		t.Errorf("the entries without a default are %v, want %s (say why in this test's comment)", without, want)
	}
}

// TestKeysReadDocs: every entry has a one-line doc, and every key of
// defaults.ini has a comment above it (directly, or above the run of keys
// it belongs to). A key without one fails showing the line to write.
func TestKeysReadDocs(t *testing.T) {
	seen := map[location]bool{}
	for _, e := range KeysRead {
		loc := location{e.Section, e.Key}
		if seen[loc] {
			t.Errorf("[%s] %s is in KeysRead twice", e.Section, e.Key)
		}
		seen[loc] = true
		if e.Doc == "" || strings.Contains(e.Doc, "\n") || !strings.HasSuffix(e.Doc, ".") {
			t.Errorf("[%s] %s: the doc %q is not one line ending in a period", e.Section, e.Key, e.Doc)
		}
		if e.By == "" {
			t.Errorf("[%s] %s: By is empty", e.Section, e.Key)
		}
	}
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "defaults.ini"))
	if err != nil {
		t.Fatal(err)
	}
	keyLine := regexp.MustCompile(`^([a-z][a-z0-9_]*)\s*=`)
	section := ""
	commented := false // the lines since the last comment are keys (and their continuations)
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "["):
			section, commented = strings.Trim(line, "[] "), false
		case strings.HasPrefix(line, "#"):
			commented = true
		case strings.TrimSpace(line) == "":
			commented = false
		case keyLine.MatchString(line):
			key := tableKey(section, keyLine.FindStringSubmatch(line)[1])
			if !commented {
				doc := "(no KeysRead entry)"
				if e, ok := Setting(section, key); ok {
					doc = e.Doc
				}
				t.Errorf("defaults.ini:%d: [%s] %s has no comment; write above it:\n# %s", i+1, section, key, doc)
			}
		}
	}
}

// TestKeysReadTypesAgreeWithSchema: an enum's values are config/schema.ini's
// <key>_values, a bool's schema values (if any) are "true false", every
// _values rule is about an enum or bool entry, and the defaults of the
// bool, int, seconds and enum entries parse.
func TestKeysReadTypesAgreeWithSchema(t *testing.T) {
	f, _, err := ReadFile(filepath.Join("..", "..", "config", "schema.ini"))
	if err != nil {
		t.Fatal(err)
	}
	schemaValues := map[location]string{}
	for _, s := range f.Sections {
		for _, k := range s.Keys {
			if key, ok := strings.CutSuffix(k.Name, "_values"); ok {
				schemaValues[location{s.Name, key}] = strings.Join(pyFields(k.Value), " ")
				e, inTable := Setting(s.Name, key)
				if inTable && e.Type.Kind != KindEnum && e.Type.Kind != KindBool {
					t.Errorf("schema.ini:%d: [%s] %s has values, but KeysRead's type is %s", k.Line, s.Name, key, e.Type.Kind)
				}
			}
		}
	}
	kinds := map[Kind]int{}
	for _, e := range KeysRead {
		kinds[e.Type.Kind]++
		schema, hasSchema := schemaValues[location{e.Section, e.Key}]
		switch e.Type.Kind {
		case KindEnum:
			if len(e.Type.Values) == 0 {
				t.Errorf("[%s] %s: an enum without values", e.Section, e.Key)
			}
			if !hasSchema {
				t.Errorf("[%s] %s: an enum, but schema.ini has no %s_values; add: %s_values = %s", e.Section, e.Key, e.Key, e.Key, strings.Join(e.Type.Values, " "))
			} else if got := strings.Join(e.Type.Values, " "); got != schema {
				t.Errorf("[%s] %s: KeysRead's values %q, schema.ini's %q", e.Section, e.Key, got, schema)
			}
		case KindBool:
			if hasSchema && schema != "true false" {
				t.Errorf("[%s] %s: a bool, but schema.ini's values are %q", e.Section, e.Key, schema)
			}
		default:
			if len(e.Type.Values) > 0 {
				t.Errorf("[%s] %s: values on a %s", e.Section, e.Key, e.Type.Kind)
			}
		}
		if !e.HasDefault() {
			continue
		}
		c := New()
		c.Set(e.Section, e.Key, e.Default)
		switch e.Type.Kind {
		case KindBool:
			if _, err := c.Bool(e.Section, e.Key); err != nil {
				t.Errorf("[%s] %s: default: %v", e.Section, e.Key, err)
			}
		case KindInt, KindSeconds:
			if _, err := strconv.ParseInt(e.Default, 10, 64); err != nil && e.Default != "" {
				t.Errorf("[%s] %s: default %q is not an integer", e.Section, e.Key, e.Default)
			}
		case KindEnum:
			if _, err := c.Enum(e.Section, e.Key); err != nil {
				t.Errorf("[%s] %s: default: %v", e.Section, e.Key, err)
			}
		case KindRegex:
			if _, err := regexp.Compile(e.Default); err != nil {
				t.Errorf("[%s] %s: default: %v", e.Section, e.Key, err)
			}
		}
	}
	t.Logf("%d settings, %d kinds: %v", len(KeysRead), len(kinds), kinds)
}

func TestTypedAccessors(t *testing.T) {
	c := New()
	c.Set("check", "firmware", "uefi")
	c.Set("check", "accel", "fast")
	c.Set("check", "boot_timeout", "300")
	c.Set("check", "kvm_stall_timeout", "a minute")
	if v, err := c.Enum("check", "firmware"); v != "uefi" || err != nil {
		t.Errorf("Enum(check, firmware) = %q, %v", v, err)
	}
	var cerr *Error
	if _, err := c.Enum("check", "accel"); !errors.As(err, &cerr) || !strings.Contains(err.Error(), `"fast" is not one of auto, kvm, tcg`) {
		t.Errorf("Enum(check, accel = fast): %v", err)
	}
	if _, err := c.Enum("check", "boot_timeout"); err == nil || !strings.Contains(err.Error(), "a seconds setting") {
		t.Errorf("Enum of a seconds setting: %v", err)
	}
	if _, err := c.Enum("check", "nosuchkey"); err == nil {
		t.Error("Enum of a key KeysRead lacks: no error")
	}
	if d, err := c.Duration("check", "boot_timeout"); d != 300*time.Second || err != nil {
		t.Errorf("Duration(check, boot_timeout) = %v, %v", d, err)
	}
	if _, err := c.Duration("check", "kvm_stall_timeout"); err == nil || !strings.Contains(err.Error(), "not an integer") {
		t.Errorf("Duration(check, kvm_stall_timeout = a minute): %v", err)
	}
	c.Set("check", "boot_timeout", "99999999999")
	if _, err := c.Duration("check", "boot_timeout"); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("Duration(check, boot_timeout = 99999999999): %v", err)
	}
	if _, err := c.Duration("check", "firmware"); err == nil {
		t.Error("Duration of an enum: no error")
	}
	if e, ok := Setting("image", "Compression"); !ok || e.Type.Kind != KindEnum || e.Default != "gz" {
		t.Errorf("Setting(image, Compression) = %+v, %v", e, ok)
	}
}

// The README's "Configuration keys" table, between these markers, is made
// from KeysRead by readmeKeysTable.
const (
	readmeKeysBegin = "<!-- keys: made from lib/config KeysRead (TestREADMEKeysTable) -->"
	readmeKeysEnd   = "<!-- end keys -->"
)

func readmeKeysTable() string {
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString("| key | type | default | what |\n| --- | --- | --- | --- |\n")
	for _, e := range KeysRead {
		typ := string(e.Type.Kind)
		if e.Type.Kind == KindEnum {
			typ = strings.Join(e.Type.Values, ", ")
		}
		def := "`" + cell(e.Default) + "`"
		switch {
		case !e.HasDefault():
			def = "unset"
		case e.Default == "":
			def = "empty"
		}
		doc := strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(cell(e.Doc))
		b.WriteString("| `[" + e.Section + "] " + e.Key + "` | " + typ + " | " + def + " | " + doc + " |\n")
	}
	return b.String()
}

// TestREADMEKeysTable: README.md's reference of the configuration keys is
// KeysRead's; when it is not, the test prints the text to paste.
func TestREADMEKeysTable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := readmeKeysBegin + "\n" + readmeKeysTable() + readmeKeysEnd
	_, rest, ok := strings.Cut(string(data), readmeKeysBegin)
	got, _, ok2 := strings.Cut(rest, readmeKeysEnd)
	if !ok || !ok2 || readmeKeysBegin+got+readmeKeysEnd != want {
		t.Errorf("README.md's table of configuration keys is not KeysRead's; paste this in its place:\n%s", want)
	}
}
