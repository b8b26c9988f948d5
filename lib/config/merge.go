package config

import (
	"fmt"
	"strings"
)

// MergedOption is one list option assembled from <option>_add* and
// <option>_del* keys, in every section matching SectionGlob.
type MergedOption struct {
	SectionGlob string // "*" matches any text, including none
	Option      string
}

// MergedOptions is the list of merged options, in merge order.
var MergedOptions = []MergedOption{
	{"buildroot", "mounts"},
	{"check", "hooks"},
	{"content", "hooks"},
	{"endlesskey", "collections"},
	{"error", "hooks"},
	{"flatpak", "locales"},
	{"flatpak-remote-*", "apps"},
	{"flatpak-remote-*", "runtimes"},
	{"flatpak-remote-*", "exclude"},
	{"flatpak-remote-*", "allow_extra_data"},
	{"image", "hooks"},
	{"image", "icon_grid"},
	{"image", "settings"},
	{"image", "settings_locks"},
	{"kolibri", "install_channels"},
	{"kolibri-*", "exclude_node_ids"},
	{"kolibri-*", "include_node_ids"},
	{"manifest", "hooks"},
	{"publish", "hooks"},
}

// globMatch matches name against a pattern whose only wildcard is "*"
// (fnmatch semantics: "*" matches any text, "/" included).
func globMatch(pattern, name string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(name, p)
		}
		j := strings.Index(name, p)
		if j < 0 {
			return false
		}
		name = name[j+len(p):]
	}
	return true
}

// Contribution is one <option>_add*/<option>_del* key of a merged option.
type Contribution struct {
	Section string
	Key     string // e.g. hooks_add_product_eos
	Add     bool   // false for _del keys
	Words   []string
	Origin  Origin
}

// Merge records how a merged option got its value, for --explain.
type Merge struct {
	Section, Option string
	// Verbatim is true when <option> itself was set (in the section or in
	// DEFAULT): it won and the contributions were dropped.
	Verbatim      bool
	Contributions []Contribution // counted (Verbatim false)
	Dropped       []Contribution // ignored because <option> was set
	Counts        map[string]int
	Order         []string // words in first-seen order
}

// merge is EIB's ImageConfigParser.merge (lib/eib.py): for every merged
// option (MergedOptions, in order) of every matching section, if <option>
// is set (in the section or in DEFAULT) it wins verbatim; otherwise every
// word of every <option>_add* key (the section's own keys, then DEFAULT's,
// as configparser's options() lists them), interpolated, counts +1, of
// every <option>_del* key -1, and the words with a positive count, in
// first-seen order, joined by newlines, become <option>. That value is
// stored already interpolated (a "$${x}" word becomes the literal "${x}")
// and must still pass configparser's syntax check: a lone "$" left in it
// is an error. Once every option is merged, the _add*/_del* keys are
// removed; one that only DEFAULT has cannot be (EIB fails on it too).
func (c *Config) merge() error {
	var drop []Contribution
	for _, m := range MergedOptions {
		for _, s := range c.sections {
			if !globMatch(m.SectionGlob, s.name) {
				continue
			}
			d, err := c.mergeOne(s, m.Option)
			if err != nil {
				return err
			}
			drop = append(drop, d...)
		}
	}
	for _, d := range drop {
		s := c.section(d.Section, false)
		if _, own := s.vals[d.Key]; !own {
			return &Error{File: d.Origin.File, Line: d.Origin.Line, Section: d.Section, Key: d.Key,
				Msg: "a key of a merged list set in [DEFAULT] cannot be removed from [" + d.Section + "] after the merge (EIB fails with KeyError): set it in the section instead"}
		}
		s.remove(d.Key)
	}
	return nil
}

// mergeOne merges one option of one section and returns the keys to
// remove afterwards.
func (c *Config) mergeOne(s *section, opt string) ([]Contribution, error) {
	addPrefix, delPrefix := opt+"_add", opt+"_del"
	var adds, dels []string
	for _, k := range c.optionKeys(s) {
		switch {
		case strings.HasPrefix(k, addPrefix):
			adds = append(adds, k)
		case strings.HasPrefix(k, delPrefix):
			dels = append(dels, k)
		}
	}
	rec := &Merge{Section: s.name, Option: opt}
	contribution := func(k string, add bool, words []string) Contribution {
		var o Origin
		if v, ok := c.lookup(s.name, k); ok && len(v.history) > 0 {
			o = v.history[len(v.history)-1]
		}
		return Contribution{Section: s.name, Key: k, Add: add, Words: words, Origin: o}
	}
	var done []Contribution
	if _, set := c.lookup(s.name, opt); set {
		rec.Verbatim = true
		for _, k := range adds {
			rec.Dropped = append(rec.Dropped, contribution(k, true, nil))
		}
		for _, k := range dels {
			rec.Dropped = append(rec.Dropped, contribution(k, false, nil))
		}
		done = rec.Dropped
	} else {
		rec.Counts = map[string]int{}
		x := c.newInterpolation() // c does not change until setFinal below
		for _, group := range []struct {
			keys []string
			add  bool
		}{{adds, true}, {dels, false}} {
			for _, k := range group.keys {
				v, err := x.get(s.name, k)
				if err != nil {
					if e, ok := err.(*Error); ok {
						e.Msg = fmt.Sprintf("%s (while merging [%s] %s)", e.Msg, s.name, opt)
					}
					return nil, err
				}
				words := pyFields(v)
				for _, w := range words {
					if _, seen := rec.Counts[w]; !seen {
						rec.Order = append(rec.Order, w)
					}
					if group.add {
						rec.Counts[w]++
					} else {
						rec.Counts[w]--
					}
				}
				rec.Contributions = append(rec.Contributions, contribution(k, group.add, words))
			}
		}
		var kept []string
		for _, w := range rec.Order {
			if rec.Counts[w] > 0 {
				kept = append(kept, w)
			}
		}
		merged := strings.Join(kept, "\n")
		if err := checkSyntax(merged); err != nil {
			return nil, c.mergedSyntaxError(rec, merged, err)
		}
		o := Origin{Namespace: "merged"}
		for _, ct := range rec.Contributions {
			if ct.Origin.Private {
				o.Private = true
			}
		}
		s.setFinal(opt, merged, o)
		done = rec.Contributions
	}
	c.merges[[2]string{s.name, opt}] = rec
	return done, nil
}

// mergedSyntaxError names the merged value with a lone "$" and the first
// contribution whose words have a "$" (the likely culprit).
func (c *Config) mergedSyntaxError(rec *Merge, merged string, err error) error {
	e := &Error{Section: rec.Section, Key: rec.Option,
		Msg: fmt.Sprintf("the merged value %q is not valid: %v", merged, err)}
	for _, ct := range rec.Contributions {
		if ct.Add && strings.Contains(strings.Join(ct.Words, " "), "$") {
			e.File, e.Line = ct.Origin.File, ct.Origin.Line
			e.Msg += fmt.Sprintf(" (from %s = %s)", ct.Origin.Key, ct.Origin.Raw)
			break
		}
	}
	return e
}

// MergeOf returns how the merged option section:option got its value, or
// nil when it is not a merged option.
func (c *Config) MergeOf(section, option string) *Merge {
	return c.merges[[2]string{section, optionXform(option)}]
}
