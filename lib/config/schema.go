package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A schema file (config/schema.ini, then LOCALDIR/config/schema.ini) is
// read like any config file (see loadFile) into a configuration of its
// own, with an empty [build] section first, as EIB's check_config
// (run-build) does. Each of its sections names a section of the
// configuration; each key whose name ends in one of these suffixes is a
// rule about one key of that section (EIB's check_value):
//
//	<key>_required = true      the key must be set (any other value: no rule)
//	<key>_values = a b c       the key's value, if set, must be one of these words
//	<key>_type = path | paths  the key's value, if set and not empty, is one
//	                           existing path, or a list of them
//
// A schema key with none of the suffixes is ignored (eib lint reports it).
// The schema's [DEFAULT] keys are rules of every schema section, [build]
// included. Both sides are interpolated: every schema value in the
// schema's own configuration, the key's value in the configuration. A
// schema section that the configuration does not have is an error as soon
// as a rule of it needs the section (_values, _type, _required = true),
// as EIB's KeyError is. Suffixes are tried in the order _required,
// _values, _type.

// RuleKinds are the schema key suffixes, in the order they are tried.
var RuleKinds = []string{"required", "values", "type"}

// Rule is one key of a schema section (its own or from the schema's
// DEFAULT).
type Rule struct {
	Section   string // the section of the configuration it is about
	SchemaKey string // the schema key, e.g. compression_values
	Key       string // the key it is about, e.g. compression
	Kind      string // "required", "values", "type"; "" when the key has no known suffix
	Value     string // the schema value, interpolated in the schema
	File      string
	Line      int
	// Err is set when the schema value cannot be interpolated (the rule
	// is then not checked).
	Err *Error
}

func (r Rule) where() string { return fmt.Sprintf("schema %s:%d", r.File, r.Line) }

// SchemaError lists every schema violation of a config.
type SchemaError struct {
	Violations []*Error
}

func (e *SchemaError) Error() string {
	lines := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		lines[i] = v.Error()
	}
	if len(lines) == 1 {
		return lines[0]
	}
	return fmt.Sprintf("%d schema violations:\n%s", len(lines), strings.Join(lines, "\n"))
}

// Schema is the configuration made of the schema files.
type Schema struct {
	cfg *Config
}

// SchemaPaths are the schema files of a build, in the order they are read.
func SchemaPaths(o Options) []string {
	paths := []string{filepath.Join(o.SrcDir, "config", "schema.ini")}
	if o.LocalDir != "" {
		paths = append(paths, filepath.Join(o.LocalDir, "config", "schema.ini"))
	}
	return paths
}

// ReadSchema reads schema files (a missing file is skipped). The first
// is read with EIB's namespace "schema", the second "local_schema".
func ReadSchema(paths ...string) (*Schema, error) {
	c := New()
	c.section("build", true)
	for i, p := range paths {
		f, ok, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		ns := "schema"
		if i > 0 {
			ns = "local_schema"
		}
		if i > 1 {
			ns = fmt.Sprintf("schema%d", i)
		}
		if err := c.loadFile(FileRef{Path: p, Namespace: ns}, f); err != nil {
			return nil, err
		}
	}
	return &Schema{cfg: c}, nil
}

// Rules returns every key of every schema section, in the order EIB
// checks them (sections in order, [build] first; in each, configparser's
// items(): DEFAULT's keys, then the section's own).
func (s *Schema) Rules() []Rule {
	var rules []Rule
	for _, sec := range s.cfg.sections {
		for _, k := range s.cfg.itemKeys(sec) {
			v, _ := s.cfg.lookup(sec.name, k)
			r := Rule{Section: sec.name, SchemaKey: k, Key: k}
			if n := len(v.history); n > 0 {
				r.File, r.Line = v.history[n-1].File, v.history[n-1].Line
			}
			val, err := s.cfg.interpolate(sec.name, k)
			if err != nil {
				e, ok := err.(*Error)
				if !ok {
					e = &Error{File: r.File, Line: r.Line, Section: sec.name, Key: k, Msg: err.Error()}
				}
				e.Msg += " (in the schema)"
				r.Err = e
				rules = append(rules, r)
				continue
			}
			r.Value = val
			for _, kind := range RuleKinds {
				if base, found := strings.CutSuffix(k, "_"+kind); found {
					r.Key, r.Kind = base, kind
					break
				}
			}
			rules = append(rules, r)
		}
	}
	return rules
}

// Check checks c against the schema and returns a *SchemaError listing
// every violation, or nil.
func (s *Schema) Check(c *Config) error {
	var bad []*Error
	missing := map[string]bool{}
	for _, r := range s.Rules() {
		if r.Err != nil {
			bad = append(bad, r.Err)
			continue
		}
		if missing[r.Section] {
			continue
		}
		if e := c.checkRule(r); e != nil {
			if !c.HasSection(r.Section) {
				missing[r.Section] = true
			}
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		return &SchemaError{Violations: bad}
	}
	return nil
}

// needsSection tells whether checking r looks into its section.
func (r Rule) needsSection() bool {
	switch r.Kind {
	case "values", "type":
		return true
	case "required":
		return strings.ToLower(r.Value) == "true"
	}
	return false
}

func (c *Config) checkRule(r Rule) *Error {
	if r.Kind == "" {
		return nil
	}
	if r.needsSection() && !c.HasSection(r.Section) {
		return &Error{File: r.File, Line: r.Line, Section: r.Section, Key: r.SchemaKey,
			Msg: fmt.Sprintf("the schema has a section [%s] that the configuration does not have", r.Section)}
	}
	violation := func(msg string) *Error {
		e := &Error{Section: r.Section, Key: r.Key, Msg: msg + " (" + r.where() + ")"}
		if v, ok := c.lookup(r.Section, r.Key); ok && len(v.history) > 0 {
			last := v.history[len(v.history)-1]
			e.File, e.Line = last.File, last.Line
		}
		return e
	}
	if r.Kind == "required" {
		if r.needsSection() && !c.Has(r.Section, r.Key) {
			return violation("required but not set")
		}
		return nil
	}
	if !c.Has(r.Section, r.Key) {
		return nil
	}
	v, err := c.interpolate(r.Section, r.Key)
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Msg += " (checking " + r.where() + ")"
			return e
		}
		return violation(err.Error())
	}
	switch r.Kind {
	case "values":
		allowed := pyFields(r.Value)
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return violation(fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", ")))
	case "type":
		v = pyStrip(v)
		var paths []string
		switch r.Value {
		case "path":
			if v != "" {
				paths = []string{v}
			}
		case "paths":
			paths = pyFields(v)
		default:
			return &Error{File: r.File, Line: r.Line, Section: r.Section, Key: r.SchemaKey,
				Msg: fmt.Sprintf("unknown schema type %q (path or paths)", r.Value)}
		}
		var missing []string
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return violation(fmt.Sprintf("%q: no such path: %s", v, strings.Join(missing, ", ")))
		}
	}
	return nil
}
