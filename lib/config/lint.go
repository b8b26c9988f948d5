package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The checks of `eib lint`: what EIB accepts silently but is most likely a
// mistake. A build only warns about unread keys (Unread); lint reports
// every kind and fails.

// location is where a key's value lives: a section's own key, or a DEFAULT
// key (Section DefaultSection).
type location struct{ section, key string }

// usage finds the keys of l.Full that something reads (see KeysRead).
type usage struct {
	c    *Config
	read map[location]bool
	env  map[string]bool // EIB_* names the hooks mention
}

// envNameRE is an EIB_* variable name in a hook.
var envNameRE = regexp.MustCompile(`EIB_[A-Z0-9_]+`)

// hookEnvNames returns every EIB_* name in the files under the hooks
// directories of srcdir and localdir, and in srcdir's lib/eib.sh.
func hookEnvNames(o Options) map[string]bool {
	names := map[string]bool{}
	scan := func(path string) {
		data, err := os.ReadFile(path)
		if err != nil || len(data) > 4<<20 {
			return
		}
		for _, n := range envNameRE.FindAll(data, -1) {
			names[string(n)] = true
		}
	}
	dirs := []string{filepath.Join(o.SrcDir, "hooks")}
	if o.LocalDir != "" {
		dirs = append(dirs, filepath.Join(o.LocalDir, "hooks"))
	}
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				scan(p)
			}
			return nil
		})
	}
	scan(filepath.Join(o.SrcDir, "lib", "eib.sh"))
	return names
}

func newUsage(l *Loaded) *usage {
	u := &usage{c: l.Full, read: map[location]bool{}, env: hookEnvNames(l.Options)}
	table := map[location]bool{}
	for _, k := range KeysRead {
		table[location{k.Section, k.Key}] = true
	}
	for _, k := range BuildKeys {
		table[location{"build", k}] = true
	}
	for _, s := range u.c.sections {
		for _, k := range u.c.optionKeys(s) {
			_, declared := Setting(s.name, k) // a glob section's keys too
			if table[location{s.name, k}] || declared || u.env[EnvName(s.name, k)] {
				u.use(s.name, k)
			}
		}
	}
	return u
}

// use marks section:key read where its value lives, and, through its
// references, every key it is made of.
func (u *usage) use(section, key string) {
	loc := location{section, key}
	s := u.c.section(section, false)
	if s == nil {
		return
	}
	v, own := s.vals[key]
	if !own {
		if v = u.c.defaults.vals[key]; v == nil {
			return
		}
		loc.section = DefaultSection
	}
	if u.read[loc] {
		return
	}
	u.read[loc] = true
	if v.final {
		return
	}
	for _, ref := range references(v.raw) {
		if ref.section == "" {
			u.use(section, ref.key)
		} else {
			u.use(ref.section, ref.key)
		}
	}
}

// references returns the ${key} (section "") and ${section:key}
// references of a raw value, as ExtendedInterpolation reads them.
func references(raw string) []location {
	var refs []location
	for rest := raw; ; {
		i := strings.IndexByte(rest, '$')
		if i < 0 || i+1 >= len(rest) {
			return refs
		}
		switch rest[i+1] {
		case '$':
			rest = rest[i+2:]
			continue
		case '{':
			end := strings.IndexByte(rest[i:], '}')
			if end < 0 {
				return refs
			}
			path := strings.Split(rest[i+2:i+end], ":")
			switch len(path) {
			case 1:
				refs = append(refs, location{"", optionXform(path[0])})
			case 2:
				refs = append(refs, location{path[0], optionXform(path[1])})
			}
			rest = rest[i+end+1:]
		default:
			rest = rest[i+1:]
		}
	}
}

// finding is an *Error about section:key where its value was last set.
func (c *Config) finding(section, key string, v *value, msg string) *Error {
	e := &Error{Section: section, Key: key, Msg: msg}
	if n := len(v.history); n > 0 {
		e.File, e.Line = v.history[n-1].File, v.history[n-1].Line
	}
	return e
}

// Unread returns one finding for every key of the full configuration that
// nothing reads (see KeysRead), sorted by file and line. A key of a part of EIB that eib does not implement is named with it
// (EIBFeatures). A key copied from a file's [DEFAULT] into the sections
// of that file is reported once.
func (l *Loaded) Unread() []*Error {
	u := newUsage(l)
	var out []*Error
	seen := map[string]bool{}
	report := func(section, key string, v *value) {
		e := u.c.finding(section, key, v, "not read by eib or by any hook")
		if v.final {
			// A merged list: where its first _add/_del key is. One that
			// no key contributed to is made by the merge in every
			// matching section (EIB does the same), not written by anyone.
			m := u.c.merges[[2]string{section, key}]
			if m == nil || len(m.Contributions) == 0 {
				return
			}
			ct := m.Contributions[0]
			e.File, e.Line = ct.Origin.File, ct.Origin.Line
			e.Msg += fmt.Sprintf(" (the list made of %s_add/%s_del keys)", key, key)
		}
		id := fmt.Sprintf("%s:%d:%s", e.File, e.Line, key)
		if seen[id] {
			return
		}
		seen[id] = true
		if dv := u.c.defaults.vals[key]; dv != nil && len(dv.history) > 0 && e.File != "" &&
			dv.history[len(dv.history)-1].File == e.File && dv.history[len(dv.history)-1].Line == e.Line {
			e.Section = DefaultSection // a file's [DEFAULT] key, copied into that file's sections
		}
		if f, ok := eibFeature(section, key); ok {
			e.Msg = fmt.Sprintf("not read by eib: part of EIB's %s (%s), which eib does not implement", f.Name, f.What)
		}
		out = append(out, e)
	}
	for _, s := range u.c.sections {
		for _, k := range s.keys {
			if !u.read[location{s.name, k}] {
				report(s.name, k, s.vals[k])
			}
		}
	}
	for _, k := range u.c.defaults.keys {
		if !u.read[location{DefaultSection, k}] {
			report(DefaultSection, k, u.c.defaults.vals[k])
		}
	}
	l.sortFindings(out)
	return out
}

// Lint returns what `eib lint` reports, each naming file, line, section
// and key, sorted by file and line:
//
//   - what the schema refuses (SchemaViolations, when Load kept them);
//   - schema keys that are no rule (no _required, _values or _type
//     suffix: EIB ignores them), unknown _type values and _required values
//     other than true or false (only "true", in any case, is a rule);
//   - references that cannot be resolved (for a DEFAULT key, in the first
//     section that gets it);
//   - keys that nothing reads (Unread).
func (l *Loaded) Lint() ([]*Error, error) {
	out := append([]*Error(nil), l.SchemaViolations...)
	schema, err := ReadSchema(SchemaPaths(l.Options)...)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range schema.Rules() {
		id := fmt.Sprintf("%s:%d:%s", r.File, r.Line, r.SchemaKey)
		if seen[id] {
			continue
		}
		seen[id] = true
		e := &Error{File: r.File, Line: r.Line, Section: r.Section, Key: r.SchemaKey}
		if v, ok := schema.cfg.defaults.vals[r.SchemaKey]; ok && len(v.history) > 0 &&
			v.history[len(v.history)-1].File == r.File && v.history[len(v.history)-1].Line == r.Line {
			e.Section = DefaultSection
		}
		switch {
		case r.Err != nil && len(l.SchemaViolations) > 0:
			continue // Schema.Check reported it: among SchemaViolations
		case r.Err != nil:
			e = r.Err
		case r.Kind == "":
			e.Msg = "not a schema rule: a schema key ends in _required, _values or _type (EIB ignores this one)"
		case r.Kind == "type" && r.Value != "path" && r.Value != "paths":
			e.Msg = fmt.Sprintf("unknown schema type %q (path or paths)", r.Value)
		case r.Kind == "required" && strings.ToLower(r.Value) != "true" && strings.ToLower(r.Value) != "false":
			e.Msg = fmt.Sprintf("%q is not true or false: only true (in any case) makes %s required, anything else is no rule", r.Value, r.Key)
		default:
			continue
		}
		out = append(out, e)
	}

	c := l.Full
	seen = map[string]bool{}
	for _, s := range c.sections {
		for _, k := range c.optionKeys(s) {
			v, own := s.vals[k]
			if !own {
				v = c.defaults.vals[k]
			}
			id := fmt.Sprintf("%p", v)
			if seen[id] {
				continue
			}
			if _, err := c.interpolate(s.name, k); err != nil {
				seen[id] = true
				e, ok := err.(*Error)
				if !ok {
					e = c.finding(s.name, k, v, err.Error())
				}
				e.Msg = "cannot be resolved: " + e.Msg
				out = append(out, e)
			}
		}
	}
	out = append(out, l.Unread()...)
	l.sortFindings(out)
	return out, nil
}

// sortFindings sorts by file (in the order they were read, the schema
// files last) and line.
func (l *Loaded) sortFindings(out []*Error) {
	order := map[string]int{}
	for i, f := range l.Files {
		order[f.Path] = i + 1
	}
	for i, p := range SchemaPaths(l.Options) {
		order[p] = len(l.Files) + 1 + i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := order[out[i].File], order[out[j].File]; a != b {
			return a < b
		}
		return out[i].Line < out[j].Line
	})
}
