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
	Key    string // e.g. hooks_add_product_eos
	Add    bool   // false for _del keys
	Words  []string
	Origin Origin
}

// Merge records how a merged option got its value, for --explain.
type Merge struct {
	Section, Option string
	// Verbatim is true when <option> itself was set: it won and the
	// contributions were dropped.
	Verbatim      bool
	Contributions []Contribution // counted (Verbatim false)
	Dropped       []Contribution // ignored because <option> was set
	Counts        map[string]int
	Order         []string // words in first-seen order
}

// renameMerged returns the key a file's key is stored under: <opt>_add and
// <opt>_del of a merged option become <opt>_add_<ns> and <opt>_del_<ns>.
func renameMerged(section, key, ns string) (string, bool) {
	for _, m := range MergedOptions {
		if !globMatch(m.SectionGlob, section) {
			continue
		}
		if key == m.Option+"_add" || key == m.Option+"_del" {
			return key + "_" + ns, true
		}
	}
	return key, false
}

// merge assembles every merged option (see MergedOptions) of every
// matching section: if <option> is set it wins verbatim; otherwise every
// word of every <option>_add* key counts +1, of every <option>_del* key -1,
// and the words with a positive count, in first-seen order, joined by
// newlines, become <option>. The _add*/_del* keys are removed.
func (c *Config) merge() error {
	for _, m := range MergedOptions {
		for _, s := range c.sections {
			if !globMatch(m.SectionGlob, s.name) {
				continue
			}
			if err := c.mergeOne(s, m.Option); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Config) mergeOne(s *section, opt string) error {
	addPrefix, delPrefix := opt+"_add", opt+"_del"
	var adds, dels []string
	for _, k := range s.keys {
		switch {
		case strings.HasPrefix(k, addPrefix):
			adds = append(adds, k)
		case strings.HasPrefix(k, delPrefix):
			dels = append(dels, k)
		}
	}
	rec := c.merges[[2]string{s.name, opt}]
	if rec == nil {
		rec = &Merge{Section: s.name, Option: opt}
	}
	contribution := func(k string, add bool, words []string) Contribution {
		v := s.vals[k]
		var o Origin
		if len(v.history) > 0 {
			o = v.history[len(v.history)-1]
		}
		return Contribution{Key: k, Add: add, Words: words, Origin: o}
	}
	if _, set := c.lookup(s.name, opt); set {
		if _, own := c.merges[[2]string{s.name, opt}]; !own {
			rec.Verbatim = true
		}
		for _, k := range adds {
			rec.Dropped = append(rec.Dropped, contribution(k, true, nil))
		}
		for _, k := range dels {
			rec.Dropped = append(rec.Dropped, contribution(k, false, nil))
		}
	} else {
		rec.Counts = map[string]int{}
		rec.Order = nil
		for _, group := range []struct {
			keys []string
			add  bool
		}{{adds, true}, {dels, false}} {
			for _, k := range group.keys {
				v, err := c.interpolate(s.name, k)
				if err != nil {
					if e, ok := err.(*Error); ok {
						e.Msg = fmt.Sprintf("%s (while merging [%s] %s)", e.Msg, s.name, opt)
					}
					return err
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
		o := Origin{Namespace: "merged"}
		for _, ct := range rec.Contributions {
			if ct.Origin.Private {
				o.Private = true
			}
		}
		s.set(opt, strings.Join(kept, "\n"), o)
	}
	for _, k := range append(adds, dels...) {
		s.remove(k)
	}
	c.merges[[2]string{s.name, opt}] = rec
	return nil
}

// MergeOf returns how the merged option section:option got its value, or
// nil when it is not a merged option.
func (c *Config) MergeOf(section, option string) *Merge {
	return c.merges[[2]string{section, optionXform(option)}]
}
