package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestKeysReadCoversTheCode greps eib's Go code and shipped hooks for the
// configuration keys they read, as KeysRead's documentation says, and
// checks that the table has every one of them.
func TestKeysReadCoversTheCode(t *testing.T) {
	root := filepath.Join("..", "..")
	inTable := map[location]bool{}
	for _, k := range KeysRead {
		inTable[location{k.Section, k.Key}] = true
	}
	for _, k := range BuildKeys {
		inTable[location{"build", k}] = true
	}
	sections := `(build|ostree|image|check|content|manifest|publish|error|flatpak)`
	pair := regexp.MustCompile(`"` + sections + `",\s*"([a-z][a-z0-9_]*)"`)
	buildDir := regexp.MustCompile(`\.Dir\("([a-z_]+)"\)`)
	ostreeGet := regexp.MustCompile(`\bget\("([a-z_]+)", (?:true|false)\)`)
	reported := map[string]bool{}
	need := func(where string, loc location) {
		if !inTable[loc] && !reported[where] {
			reported[where] = true
			t.Errorf("%s reads [%s] %s, which KeysRead lacks", where, loc.section, loc.key)
		}
	}
	for _, dir := range []string{"lib", "cmd"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && (p == filepath.Join(root, "lib", "config") || strings.HasSuffix(e.Name(), "test")) {
				return filepath.SkipDir // this package; test helpers (ostreetest, ...)
			}
			if e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, "filepath.Join") {
					continue // paths such as "ostree", "deploy"
				}
				where := p + ":" + strconv.Itoa(i+1)
				for _, m := range pair.FindAllStringSubmatch(line, -1) {
					need(where, location{m[1], m[2]})
				}
				for _, m := range buildDir.FindAllStringSubmatch(line, -1) {
					need(where, location{"build", m[1]})
				}
				if filepath.Base(p) == "ostree.go" && strings.Contains(p, filepath.Join("lib", "stage")) {
					for _, m := range ostreeGet.FindAllStringSubmatch(line, -1) {
						need(where, location{"ostree", m[1]})
					}
				}
			}
			return nil
		})
	}

	// The hooks and lib/eib.sh: every EIB_* variable of a key of the
	// shipped configuration.
	byEnv := map[string]location{}
	filepath.WalkDir(filepath.Join(root, "config"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".ini") || filepath.Base(p) == "schema.ini" {
			return err
		}
		f, _, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Sections {
			for _, k := range s.Keys {
				name := k.Name
				for _, m := range MergedOptions {
					if globMatch(m.SectionGlob, s.Name) && (name == m.Option+"_add" || name == m.Option+"_del") {
						name = m.Option
					}
				}
				byEnv[EnvName(s.Name, name)] = location{s.Name, name}
			}
		}
		return nil
	})
	if len(byEnv) < 20 {
		t.Fatalf("found %d keys in the shipped config/, expected more", len(byEnv))
	}
	scripts := []string{filepath.Join(root, "lib", "eib.sh")}
	filepath.WalkDir(filepath.Join(root, "hooks"), func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			scripts = append(scripts, p)
		}
		return err
	})
	for _, p := range scripts {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range envNameRE.FindAllString(string(data), -1) {
			if loc, ok := byEnv[name]; ok {
				need(p+" ("+name+")", loc)
			}
		}
	}
}
