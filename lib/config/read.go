package config

import "strings"

// loadFile adds one parsed file to c the way EIB's read_config_file
// (lib/eib.py) does:
//
//  1. In the file alone, for every merged option (MergedOptions, in
//     order) and every section of the file matching its section glob,
//     <option>_add and then <option>_del are renamed
//     <option>_add_<namespace> / <option>_del_<namespace> (overwriting a
//     key of that name in place, else appended). The value may come from
//     the file's [DEFAULT]; the key must then also be in the section itself,
//     or EIB fails (KeyError) removing the old name, and so does eib.
//  2. The file is then added with configparser's read_dict: its [DEFAULT]
//     keys into the DEFAULT of the whole configuration, and each section's
//     keys as configparser's options() lists them (its own keys, then the
//     file's DEFAULT keys it does not have) into that section. A key
//     already set keeps its place and takes the new value. Every value
//     must pass ExtendedInterpolation's syntax check (before_set): no lone
//     "$" once "$$" and "${...}" are taken out; references are not
//     resolved here.
func (c *Config) loadFile(ref FileRef, f *File) error {
	suffix := ref.Namespace
	if !strings.HasPrefix(suffix, "_") {
		suffix = "_" + suffix
	}
	var fileDefaults []FileKey
	if f.Defaults != nil {
		fileDefaults = f.Defaults.Keys
	}
	origin := func(k FileKey, orig string) Origin {
		return Origin{File: ref.Path, Namespace: ref.Namespace, Line: k.Line, Key: orig, Private: ref.Private}
	}

	// Step 1: the renames, on a copy of each section's own keys.
	own := make([][]FileKey, len(f.Sections))
	origName := make([]map[string]string, len(f.Sections))
	for i, s := range f.Sections {
		own[i] = append([]FileKey(nil), s.Keys...)
		origName[i] = map[string]string{}
	}
	for _, m := range MergedOptions {
		for i, s := range f.Sections {
			if !globMatch(m.SectionGlob, s.Name) {
				continue
			}
			for _, name := range []string{m.Option + "_add", m.Option + "_del"} {
				j := keyIndex(own[i], name)
				var k FileKey
				switch {
				case j >= 0:
					k = own[i][j]
				case keyIndex(fileDefaults, name) >= 0:
					k = fileDefaults[keyIndex(fileDefaults, name)]
				default:
					continue
				}
				if j < 0 {
					return &Error{File: ref.Path, Line: k.Line, Section: s.Name, Key: name,
						Msg: "a merged list's _add/_del key in [DEFAULT] cannot be renamed for [" + s.Name +
							"] (EIB fails with KeyError): set it in [" + s.Name + "] instead"}
				}
				renamed := k
				renamed.Name = name + suffix
				if p := keyIndex(own[i], renamed.Name); p >= 0 {
					own[i][p] = renamed
				} else {
					own[i] = append(own[i], renamed)
				}
				origName[i][renamed.Name] = name
				j = keyIndex(own[i], name)
				own[i] = append(own[i][:j:j], own[i][j+1:]...)
			}
		}
	}

	// Step 2: read_dict.
	set := func(section string, k FileKey, orig string) error {
		if err := checkSyntax(k.Value); err != nil {
			return &Error{File: ref.Path, Line: k.Line, Section: section, Key: k.Name, Msg: err.Error()}
		}
		c.set(section, k.Name, k.Value, origin(k, orig))
		return nil
	}
	for _, k := range fileDefaults {
		if err := set(DefaultSection, k, k.Name); err != nil {
			return err
		}
	}
	for i, s := range f.Sections {
		c.section(s.Name, true)
		for _, k := range own[i] {
			orig := k.Name
			if o, ok := origName[i][k.Name]; ok {
				orig = o
			}
			if err := set(s.Name, k, orig); err != nil {
				return err
			}
		}
		for _, k := range fileDefaults {
			if keyIndex(own[i], k.Name) < 0 {
				if err := set(s.Name, k, k.Name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func keyIndex(keys []FileKey, name string) int {
	for i, k := range keys {
		if k.Name == name {
			return i
		}
	}
	return -1
}

// publicCopy is EIB's ImageConfigParser.copy (lib/eib.py): a new
// configuration with the [build] section first and, for every section,
// the raw items of configparser's items(section) (DEFAULT's keys, then the
// section's own; own values win) as its own keys. The copy has no DEFAULT.
func (c *Config) publicCopy() *Config {
	n := New()
	n.section("build", true)
	for _, s := range c.sections {
		ns := n.section(s.name, true)
		for _, k := range c.itemKeys(s) {
			v, ok := s.vals[k]
			if !ok {
				v = c.defaults.vals[k]
			}
			if _, seen := ns.vals[k]; !seen {
				ns.keys = append(ns.keys, k)
			}
			ns.vals[k] = &value{raw: v.raw, final: v.final, history: append([]Origin(nil), v.history...)}
		}
	}
	return n
}
