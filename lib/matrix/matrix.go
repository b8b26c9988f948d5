// Package matrix reads the variant matrix: the file (config/matrix.ini of
// the srcdir, or of the localdir when it has one) that names the variants
// a build farm builds, as groups of lists whose cross product, less the
// exclusions, are the variants.
//
// The file is INI text, read by the configuration's own parser
// (config.Parse: configparser's syntax, "#" and ";" full-line comments,
// indented continuation lines). Each section [matrix NAME] is a group:
//
//	[matrix eos]
//	products = eos
//	branches = master eos6.0
//	arches = amd64 arm64
//	platforms = arch pinebookpro
//	personalities = base en es fr pt_BR
//	exclude = arch=amd64 platform=pinebookpro
//	    arch=arm64 platform=arch
//
// Every key holds words separated by white space. products, branches and
// arches are required; platforms defaults to "arch" (the word "arch" is
// the variant's own arch, eib's default platform); personalities defaults
// to "base". Each line of exclude is one or more KEY=PATTERN words (KEY one
// of product, branch, arch, platform, personality; PATTERN a path.Match
// pattern, "arch" as a platform pattern is the arch): a variant matching
// every word of one line is left out. Two groups may not make the same
// variant. Other sections and keys are errors.
package matrix

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/eib-builder/eib/lib/config"
)

// FileName is the matrix file's path under a config tree (srcdir or
// localdir).
const FileName = "config/matrix.ini"

// Variant is one build of the matrix.
type Variant struct {
	Group       string `json:"group"` // NAME of its [matrix NAME]
	Product     string `json:"product"`
	Branch      string `json:"branch"`
	Arch        string `json:"arch"`
	Platform    string `json:"platform"`
	Personality string `json:"personality"`
}

// Name is the variant's name: product-branch-arch-platform-personality
// (an outversion without its build_version), unique in a matrix.
func (v Variant) Name() string {
	return strings.Join([]string{v.Product, v.Branch, v.Arch, v.Platform, v.Personality}, "-")
}

// Args are the eib command-line options that build v (the branch last).
func (v Variant) Args() []string {
	return []string{"--product", v.Product, "--arch", v.Arch, "--platform", v.Platform, "--personality", v.Personality, v.Branch}
}

func (v Variant) field(key string) string {
	switch key {
	case "product":
		return v.Product
	case "branch":
		return v.Branch
	case "arch":
		return v.Arch
	case "platform":
		return v.Platform
	case "personality":
		return v.Personality
	}
	return ""
}

var fields = []string{"product", "branch", "arch", "platform", "personality"}

// Matrix is a parsed matrix file.
type Matrix struct {
	Path     string
	Variants []Variant // in file order: group, then product, branch, arch, platform, personality
}

// Find locates the matrix file: localdir's when it has one, else
// srcdir's; an error when neither has it.
func Find(srcDir, localDir string) (string, error) {
	var tried []string
	for _, d := range []string{localDir, srcDir} {
		if d == "" {
			continue
		}
		p := d + "/" + FileName
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("no matrix file: none of %s exists", strings.Join(tried, ", "))
}

// Load reads and expands the matrix file at path.
func Load(path string) (*Matrix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("matrix: %w", err)
	}
	return Parse(path, data)
}

// Parse expands matrix text (path names it in errors). Every error names
// the file, the line, the section and the key.
func Parse(path string, data []byte) (*Matrix, error) {
	f, err := config.Parse(path, data)
	if err != nil {
		return nil, err
	}
	errf := func(line int, section, key, format string, args ...any) error {
		return &config.Error{File: path, Line: line, Section: section, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if f.Defaults != nil && len(f.Defaults.Keys) > 0 {
		return nil, errf(f.Defaults.Line, "DEFAULT", "", "a matrix file has no [DEFAULT] section: put the keys in a [matrix NAME] section")
	}
	m := &Matrix{Path: path}
	seen := map[string]string{} // variant name -> section
	for _, s := range f.Sections {
		kind, group, _ := strings.Cut(s.Name, " ")
		group = strings.TrimSpace(group)
		if kind != "matrix" || group == "" || strings.ContainsAny(group, " \t") {
			return nil, errf(s.Line, s.Name, "", "unknown section: a matrix file's sections are [matrix NAME] (one word)")
		}
		lists := map[string][]string{"platform": {"arch"}, "personality": {"base"}}
		lines := map[string]int{}
		var excludes [][2]string // line text, line number as text
		var exclLine int
		for _, k := range s.Keys {
			lines[k.Name] = k.Line
			switch k.Name {
			case "products", "branches", "arches", "platforms", "personalities":
				words := strings.Fields(k.Value)
				if len(words) == 0 {
					return nil, errf(k.Line, s.Name, k.Name, "empty: give one or more words")
				}
				for _, w := range words {
					if strings.ContainsAny(w, "/=*?[") || strings.HasPrefix(w, "-") {
						return nil, errf(k.Line, s.Name, k.Name, "%q: not a plain name", w)
					}
				}
				lists[singular(k.Name)] = words
			case "exclude":
				exclLine = k.Line
				for _, l := range strings.Split(k.Value, "\n") {
					if strings.TrimSpace(l) != "" {
						excludes = append(excludes, [2]string{strings.TrimSpace(l)})
					}
				}
			default:
				return nil, errf(k.Line, s.Name, k.Name, "unknown key: one of products, branches, arches, platforms, personalities, exclude")
			}
		}
		for _, req := range []string{"products", "branches", "arches"} {
			if _, ok := lists[singular(req)]; !ok {
				return nil, errf(s.Line, s.Name, req, "missing: the group needs it")
			}
		}
		rules, err := parseExcludes(excludes, func(format string, args ...any) error {
			return errf(exclLine, s.Name, "exclude", format, args...)
		})
		if err != nil {
			return nil, err
		}
		for _, product := range lists["product"] {
			for _, branch := range lists["branch"] {
				for _, arch := range lists["arch"] {
					for _, platform := range lists["platform"] {
						if platform == "arch" {
							platform = arch
						}
						for _, pers := range lists["personality"] {
							v := Variant{Group: group, Product: product, Branch: branch, Arch: arch, Platform: platform, Personality: pers}
							if excluded(v, rules) {
								continue
							}
							if other, dup := seen[v.Name()]; dup {
								return nil, errf(s.Line, s.Name, "", "variant %s is made by [%s] too", v.Name(), other)
							}
							seen[v.Name()] = s.Name
							m.Variants = append(m.Variants, v)
						}
					}
				}
			}
		}
	}
	if len(m.Variants) == 0 {
		return nil, &config.Error{File: path, Msg: "no variant: the file has no [matrix NAME] section, or every variant is excluded"}
	}
	return m, nil
}

func singular(key string) string {
	switch key {
	case "branches", "arches":
		return strings.TrimSuffix(key, "es")
	case "personalities":
		return "personality"
	}
	return strings.TrimSuffix(key, "s")
}

type rule map[string]string // field -> pattern

func parseExcludes(lines [][2]string, errf func(string, ...any) error) ([]rule, error) {
	var out []rule
	for _, l := range lines {
		r := rule{}
		for _, w := range strings.Fields(l[0]) {
			k, pat, ok := strings.Cut(w, "=")
			if !ok || !contains(fields, k) {
				return nil, errf("%q: each word is KEY=PATTERN, KEY one of %s", w, strings.Join(fields, ", "))
			}
			if _, err := path.Match(pat, ""); err != nil {
				return nil, errf("%q: bad pattern: %v", w, err)
			}
			if _, dup := r[k]; dup {
				return nil, errf("%q: %s given twice on one line", l[0], k)
			}
			r[k] = pat
		}
		out = append(out, r)
	}
	return out, nil
}

func excluded(v Variant, rules []rule) bool {
	for _, r := range rules {
		all := true
		for k, pat := range r {
			if k == "platform" && pat == "arch" {
				pat = v.Arch
			}
			if ok, _ := path.Match(pat, v.field(k)); !ok {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// Select returns the variants whose names are in names, in matrix order;
// an error names the first unknown name. No names: every variant.
func (m *Matrix) Select(names []string) ([]Variant, error) {
	if len(names) == 0 {
		return m.Variants, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []Variant
	for _, v := range m.Variants {
		if want[v.Name()] {
			out = append(out, v)
			delete(want, v.Name())
		}
	}
	if len(want) > 0 {
		var left []string
		for n := range want {
			left = append(left, n)
		}
		sort.Strings(left)
		return nil, fmt.Errorf("%s: no variant %s in the matrix", m.Path, strings.Join(left, ", "))
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
