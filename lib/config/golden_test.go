package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is what Python's configparser made of one testdata INI file
// (written by testdata/gen.py).
type golden struct {
	Error *struct {
		Type string `json:"type"`
		Line int    `json:"line"`
	} `json:"error"`
	Defaults [][2]string `json:"defaults"`
	Sections []struct {
		Name string      `json:"name"`
		Keys [][2]string `json:"keys"`
	} `json:"sections"`
	Get []struct {
		Section string  `json:"section"`
		Key     string  `json:"key"`
		Value   *string `json:"value"`
		Error   string  `json:"error"`
	} `json:"get"`
	Set []struct {
		Section string `json:"section"`
		Key     string `json:"key"`
		OK      bool   `json:"ok"`
	} `json:"set"`
	Write string `json:"write"`
}

// configFromFile builds a Config holding the file as configparser holds
// it: [DEFAULT] as the default section, every other section's own keys.
func configFromFile(f *File) *Config {
	c := New()
	if f.Defaults != nil {
		for _, k := range f.Defaults.Keys {
			c.set(DefaultSection, k.Name, k.Value, Origin{File: f.Path, Line: k.Line})
		}
	}
	for _, s := range f.Sections {
		c.section(s.Name, true)
		for _, k := range s.Keys {
			c.set(s.Name, k.Name, k.Value, Origin{File: f.Path, Line: k.Line})
		}
	}
	return c
}

func TestParserMatchesPythonConfigparser(t *testing.T) {
	inis, _ := filepath.Glob("testdata/configparser/*.ini")
	if len(inis) < 20 {
		t.Fatalf("expected the configparser goldens in testdata/configparser, found %d files", len(inis))
	}
	for _, ini := range inis {
		name := strings.TrimSuffix(filepath.Base(ini), ".ini")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(ini)
			if err != nil {
				t.Fatal(err)
			}
			js, err := os.ReadFile(strings.TrimSuffix(ini, ".ini") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			var want golden
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			f, err := Parse(ini, data)
			if want.Error != nil {
				e, ok := err.(*Error)
				if !ok {
					t.Fatalf("python: %s at line %d; got %v", want.Error.Type, want.Error.Line, err)
				}
				if e.Line != want.Error.Line || e.File != ini {
					t.Fatalf("python: %s at line %d; got %q (line %d)", want.Error.Type, want.Error.Line, e, e.Line)
				}
				return
			}
			if err != nil {
				t.Fatalf("python parsed it; got %v", err)
			}
			var gotDefaults [][2]string
			if f.Defaults != nil {
				for _, k := range f.Defaults.Keys {
					gotDefaults = append(gotDefaults, [2]string{k.Name, k.Value})
				}
			}
			if !equalPairs(gotDefaults, want.Defaults) {
				t.Errorf("DEFAULT = %q, python %q", gotDefaults, want.Defaults)
			}
			if len(f.Sections) != len(want.Sections) {
				t.Fatalf("%d sections, python %d", len(f.Sections), len(want.Sections))
			}
			for i, s := range f.Sections {
				var got [][2]string
				for _, k := range s.Keys {
					got = append(got, [2]string{k.Name, k.Value})
				}
				if s.Name != want.Sections[i].Name || !equalPairs(got, want.Sections[i].Keys) {
					t.Errorf("section %d = [%s] %q, python [%s] %q", i, s.Name, got, want.Sections[i].Name, want.Sections[i].Keys)
				}
			}
			c := configFromFile(f)
			for _, g := range want.Get {
				v, err := c.Get(g.Section, g.Key)
				switch {
				case g.Value != nil && err != nil:
					t.Errorf("[%s] %s: python %q, got error %v", g.Section, g.Key, *g.Value, err)
				case g.Value != nil && v != *g.Value:
					t.Errorf("[%s] %s = %q, python %q", g.Section, g.Key, v, *g.Value)
				case g.Value == nil && err == nil:
					t.Errorf("[%s] %s: python %s, got %q", g.Section, g.Key, g.Error, v)
				case g.Value == nil && !strings.Contains(err.Error(), "["+g.Section+"] "+g.Key+":"):
					t.Errorf("[%s] %s: error does not name the section and key: %v", g.Section, g.Key, err)
				}
			}
			for _, s := range want.Set {
				raw, _ := c.Raw(s.Section, s.Key)
				if got := checkSyntax(raw) == nil; got != s.OK {
					t.Errorf("[%s] %s = %q: syntax ok %v, python %v", s.Section, s.Key, raw, got, s.OK)
				}
			}
			var b strings.Builder
			if err := c.Write(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != want.Write {
				t.Errorf("write:\n%q\npython:\n%q", b.String(), want.Write)
			}
		})
	}
}

func equalPairs(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
