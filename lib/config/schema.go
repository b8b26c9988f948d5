package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A schema file has the sections of the config; each of its keys is a
// rule about one config key:
//
//	<key>_required = true      the key must be set
//	<key>_values = a b c       the interpolated value must be one of these
//	<key>_type = path | paths  the value is one existing path, or a list of them
//
// Section names of a schema may use "*" to match several sections.

// Rule is one schema rule.
type Rule struct {
	Section, Key string
	Kind         string // "required", "values" or "type"
	Value        string
	File         string
	Line         int
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

// ReadSchema reads the rules of the given schema files (a missing file is
// skipped; a later file's rule replaces an earlier one's).
func ReadSchema(paths ...string) ([]Rule, error) {
	var rules []Rule
	index := map[[3]string]int{}
	for _, p := range paths {
		f, ok, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		for _, s := range f.Sections {
			for _, k := range f.Items(s) {
				r := Rule{Section: s.Name, Value: k.Value, File: p, Line: k.Line}
				for _, kind := range []string{"required", "values", "type"} {
					if base, found := strings.CutSuffix(k.Name, "_"+kind); found && base != "" {
						r.Key, r.Kind = base, kind
						break
					}
				}
				if r.Kind == "" {
					return nil, &Error{File: p, Line: k.Line, Section: s.Name, Key: k.Name,
						Msg: "not a schema rule (a schema key ends in _required, _values or _type)"}
				}
				id := [3]string{r.Section, r.Key, r.Kind}
				if i, ok := index[id]; ok {
					rules[i] = r
					continue
				}
				index[id] = len(rules)
				rules = append(rules, r)
			}
		}
	}
	return rules, nil
}

func checkSchema(c *Config, o Options) error {
	paths := []string{filepath.Join(o.SrcDir, "config", "schema.ini")}
	if o.LocalDir != "" {
		paths = append(paths, filepath.Join(o.LocalDir, "config", "schema.ini"))
	}
	rules, err := ReadSchema(paths...)
	if err != nil {
		return err
	}
	return c.Check(rules)
}

// Check checks the config against schema rules and returns a *SchemaError
// listing every violation, or nil.
func (c *Config) Check(rules []Rule) error {
	var bad []*Error
	for _, r := range rules {
		var sections []string
		if strings.Contains(r.Section, "*") {
			for _, s := range c.Sections() {
				if globMatch(r.Section, s) {
					sections = append(sections, s)
				}
			}
		} else {
			sections = []string{r.Section}
		}
		for _, s := range sections {
			if e := c.checkRule(r, s); e != nil {
				bad = append(bad, e)
			}
		}
	}
	if len(bad) > 0 {
		return &SchemaError{Violations: bad}
	}
	return nil
}

func (c *Config) checkRule(r Rule, section string) *Error {
	violation := func(msg string) *Error {
		e := &Error{Section: section, Key: r.Key, Msg: msg + " (" + r.where() + ")"}
		if v, ok := c.lookup(section, r.Key); ok && len(v.history) > 0 {
			last := v.history[len(v.history)-1]
			e.File, e.Line = last.File, last.Line
		}
		return e
	}
	if r.Kind == "required" {
		switch strings.ToLower(r.Value) {
		case "1", "yes", "true", "on":
		case "0", "no", "false", "off":
			return nil
		default:
			return &Error{File: r.File, Line: r.Line, Section: r.Section, Key: r.Key + "_required",
				Msg: fmt.Sprintf("%q is not a boolean", r.Value)}
		}
		if !c.Has(section, r.Key) {
			return violation("required but not set")
		}
		return nil
	}
	if !c.Has(section, r.Key) {
		return nil
	}
	v, err := c.interpolate(section, r.Key)
	if err != nil {
		if e, ok := err.(*Error); ok {
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
		switch r.Value {
		case "path", "paths":
			paths := []string{v}
			if r.Value == "paths" {
				paths = pyFields(v)
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
			return nil
		default:
			return violation(fmt.Sprintf("%q: unknown schema type %q (path or paths)", v, r.Value))
		}
	}
	return nil
}
