package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MinPrivateLen is the shortest private value eib accepts and looks for. A
// value of one to three characters (yes, off, 1, gpt, 022) occurs in
// unrelated text everywhere, so masking it would mangle the build log, and
// looking for it would fail every manifest and image. Load therefore
// refuses (eib's rule, not EIB's or configparser's) a private
// file that sets or changes a value one line of which, trimmed, is not
// empty, not a line of the public value, and shorter than this (a
// *KeyError at the private file's line, naming the section and the key
// but not the value): every private value that is not refused is at
// least this long, and masked everywhere. The build log (package
// buildlog), the manifest check (package manifest) and the check of what
// flows into an image (package stage) all use this one threshold through
// PrivateValues.
const MinPrivateLen = 4

// Private is one value that a private configuration file set or changed.
type Private struct {
	Section, Key string
	// Value is one line of the key's interpolated value, trimmed, at
	// least MinPrivateLen long.
	Value string
	// Origin is where the value was set: the private file for a key a
	// private file set, the public file for a value that only refers to
	// a private one (url = https://${token}@host).
	Origin Origin
}

// PrivateValues returns the values of full that the private files set or
// changed: every key whose interpolated value differs from the one of
// public (the same configuration without the private files, Loaded.Public)
// or that public lacks. A key a private file sets to the public value
// again is not private: its value is public anyway. A value that only
// refers to a private one (url = https://${token}@host) is private too,
// since it differs. Each line of a value counts on its own (the log and
// most outputs are line based), trimmed, if at least MinPrivateLen long
// and not a line of the public value too (the public words of a merged
// list a private file added to are public). A key whose value cannot be
// interpolated is left out (it fails where it is read).
//
// The result is ordered for FindPrivate: values set in a private file
// first, then the longest first, so that a search names the private file
// at the root of a value rather than a public key referring to it.
func PrivateValues(full, public *Config) []Private {
	if full == nil {
		return nil
	}
	out, _ := privateValues(full, public, full.newInterpolation())
	return out
}

// privateValues is PrivateValues, and the first line of a value that a
// private file set or changed (its last origin is a private file) that is
// shorter than MinPrivateLen: an error (see MinPrivateLen). fx is a run
// of full (see interpolation).
func privateValues(full, public *Config, fx *interpolation) ([]Private, error) {
	var (
		out      []Private
		tooShort error
	)
	seen := map[string]bool{}
	var px *interpolation
	if public != nil {
		px = public.newInterpolation()
	}
	add := func(section, key string) {
		v, err := fx.get(section, key)
		if err != nil {
			return
		}
		publicLines := map[string]bool{}
		if px != nil {
			if pv, err := px.get(section, key); err == nil {
				if pv == v {
					return
				}
				for _, line := range strings.Split(pv, "\n") {
					publicLines[strings.TrimSpace(line)] = true
				}
			}
		}
		o := full.lastOrigin(section, key)
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimSpace(line)
			if publicLines[line] || seen[section+"\x00"+key+"\x00"+line] {
				continue
			}
			if len(line) < MinPrivateLen {
				if line != "" && o.Private && tooShort == nil {
					tooShort = &KeyError{Section: section, Key: key, Origin: o, Err: &Error{Section: section, Key: key,
						Msg: fmt.Sprintf("a private value (or a line of one) of %d byte(s) is too short: eib masks every private value in logs and outputs, and masking a string shorter than %d bytes everywhere would mangle them (eib's rule); make it longer, or set it in a public file if it is no secret", len(line), MinPrivateLen)}}
				}
				continue
			}
			seen[section+"\x00"+key+"\x00"+line] = true
			out = append(out, Private{Section: section, Key: key, Value: line, Origin: o})
		}
	}
	for _, k := range full.defaults.keys {
		add(DefaultSection, k)
	}
	for _, s := range full.sections {
		for _, k := range full.optionKeys(s) {
			add(s.name, k)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Origin.Private != out[j].Origin.Private {
			return out[i].Origin.Private
		}
		return len(out[i].Value) > len(out[j].Value)
	})
	return out, tooShort
}

// FindPrivate returns the first private value (in PrivateValues' order)
// that occurs in s.
func FindPrivate(s string, privs []Private) (Private, bool) {
	for _, p := range privs {
		if strings.Contains(s, p.Value) {
			return p, true
		}
	}
	return Private{}, false
}

// PrivateStrings returns the distinct values of privs, longest first.
func PrivateStrings(privs []Private) []string {
	var vals []string
	for _, p := range privs {
		vals = append(vals, p.Value)
	}
	return sortSecrets(vals)
}

// lastOrigin is where section:key got its value: its last assignment, or
// for a merged list that a private file contributed to, that file's
// contribution (the merged value itself has no file).
func (c *Config) lastOrigin(section, key string) Origin {
	v, ok := c.lookup(section, key)
	if !ok || len(v.history) == 0 {
		return Origin{}
	}
	last := v.history[len(v.history)-1]
	m := c.MergeOf(section, key)
	if last.File != "" || m == nil || len(m.Contributions) == 0 {
		return last
	}
	if last.Private {
		for _, ct := range m.Contributions {
			if ct.Origin.Private {
				return ct.Origin
			}
		}
	}
	return m.Contributions[len(m.Contributions)-1].Origin
}

// Where names the place of a value in an error message: "FILE:LINE" for a
// value read from a file, "command line" for a value from an option, ""
// otherwise (a value eib set itself).
func (o Origin) Where() string {
	switch {
	case o.File != "" && o.Line > 0:
		return o.File + ":" + strconv.Itoa(o.Line)
	case o.File != "":
		return o.File
	case o.Namespace == "command line":
		return o.Namespace
	}
	return ""
}

// KeyError is an error about one key, located where the key got its value.
type KeyError struct {
	Section, Key string
	Origin       Origin
	Err          error // its message names the section and the key
}

func (e *KeyError) Error() string {
	if w := e.Origin.Where(); w != "" {
		return w + ": " + e.Err.Error()
	}
	return e.Err.Error()
}

func (e *KeyError) Unwrap() error { return e.Err }

// At locates err, an error about section:key whose message names them, at
// the place that gave the key its value (a *KeyError: "FILE:LINE: [section]
// key ..."), as --explain shows it. err is returned as it is when it is nil,
// when it already names a file (an *Error with a File, as Get, Bool and Int
// return for a value read from a file) or when the key is set nowhere.
func (c *Config) At(section, key string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) && ce.File != "" {
		return err
	}
	key = optionXform(key)
	o := c.lastOrigin(section, key)
	if o.Where() == "" {
		return err
	}
	return &KeyError{Section: section, Key: key, Origin: o, Err: err}
}
