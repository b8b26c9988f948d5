package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: the parser never panics, every error names the file and a
// line, and what it parses survives Write and a second Parse unchanged.
func FuzzParse(f *testing.F) {
	inis, _ := filepath.Glob("testdata/configparser/*.ini")
	for _, p := range inis {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("[s]\nk = ${a}$$\n  ${s:k}\n[DEFAULT]\na = ${k}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.ini", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.ini" || e.Line < 1 {
				t.Fatalf("error without file and line: %#v", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.ini:") {
				t.Fatalf("error message does not start with the file: %q", err)
			}
			return
		}
		c := configFromFile(file)
		for _, s := range c.Sections() {
			for _, k := range c.Options(s) {
				if _, err := c.Get(s, k); err != nil {
					var e *Error
					if !errors.As(err, &e) || e.Section != s || e.Key != k {
						t.Fatalf("interpolation error does not name [%s] %s: %v", s, k, err)
					}
				}
				raw, _ := c.Raw(s, k)
				_ = checkSyntax(raw)
			}
		}
		var b strings.Builder
		if err := c.Write(&b); err != nil {
			t.Fatal(err)
		}
		again, err := Parse("again.ini", []byte(b.String()))
		if err != nil {
			t.Fatalf("written config does not parse: %v\n%q", err, b.String())
		}
		var b2 strings.Builder
		configFromFile(again).Write(&b2)
		if b.String() != b2.String() {
			t.Fatalf("write/parse round trip changed the config:\n%q\n%q", b.String(), b2.String())
		}
	})
}
