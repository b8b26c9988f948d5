package config

import (
	"fmt"
	"strings"
)

// MaxInterpolationDepth is configparser's MAX_INTERPOLATION_DEPTH: a value
// may go through at most this many nested references.
const MaxInterpolationDepth = 10

// MaxValueLen is the longest interpolated value eib accepts, in bytes
// (1 MiB). It is eib's rule, not configparser's: configparser has no
// limit, and ten levels of references that each repeat the next level a
// few times (a 500-byte file) expand to gigabytes. A value that grows past
// it, while its references are expanded, is an *Error naming the file and
// line of the key read, its section and key, and the chain of references
// that grew too long.
const MaxValueLen = 1 << 20

// MaxConfigLen is the most that the interpolated values of all the keys of
// a configuration may add up to, in bytes (32 MiB; eib's rule, not
// configparser's). Load checks it, and Env, which exports every key to the
// hooks, fails past it: no hook could be started with a larger
// environment anyway (Linux passes at most a quarter of the stack limit,
// 2 MiB by default, to a new program).
const MaxConfigLen = 32 << 20

// checkSyntax is ExtendedInterpolation.before_set: after removing "$$" and
// every "${...}", no "$" may remain.
func checkSyntax(raw string) error {
	tmp := strings.ReplaceAll(raw, "$$", "")
	var b strings.Builder
	for {
		i := strings.Index(tmp, "${")
		if i < 0 {
			b.WriteString(tmp)
			break
		}
		j := strings.IndexByte(tmp[i+2:], '}')
		if j <= 0 { // no "}" or "${}": not a reference
			b.WriteString(tmp[:i+2])
			tmp = tmp[i+2:]
			continue
		}
		b.WriteString(tmp[:i])
		tmp = tmp[i+2+j+1:]
	}
	if p := strings.IndexByte(b.String(), '$'); p >= 0 {
		return fmt.Errorf("invalid interpolation syntax in %q at position %d: a lone \"$\" (write \"$$\" for a dollar sign, \"${key}\" or \"${section:key}\" for a reference)", raw, p)
	}
	return nil
}

type interpKind int

const (
	interpBad   interpKind = iota // a bad reference or syntax: msg says it all
	interpDepth                   // more than MaxInterpolationDepth levels
	interpSize                    // longer than MaxValueLen
)

// interpError is a failure below the key being read. chain is the path of
// references from the key being read to the place of the failure, without
// the key itself (the caller adds it).
type interpError struct {
	kind  interpKind
	msg   string
	chain []string
}

// under returns e as seen one reference higher, through entry.
func (e *interpError) under(entry string) *interpError {
	n := *e
	n.chain = append([]string{entry}, e.chain...)
	return &n
}

func (e *interpError) message(top string) string {
	chain := strings.Join(append([]string{top}, e.chain...), " -> ")
	switch e.kind {
	case interpDepth:
		return fmt.Sprintf("more than %d nested references: %s", MaxInterpolationDepth, chain)
	case interpSize:
		return fmt.Sprintf("the value grows past %d bytes (1 MiB, eib's limit; configparser has none) as its references are expanded: %s", MaxValueLen, chain)
	}
	return e.msg
}

// interpolation is one run of reads of a Config that does not change in
// the meantime. It remembers what every reference expanded to at every
// depth, so that a value referring many times to another one expands it
// once: the work of a run is bounded by MaxInterpolationDepth times the
// size of the file text plus what the values read expand to, however the
// references nest.
type interpolation struct {
	c    *Config
	memo map[interpMemoKey]interpResult
}

type interpMemoKey struct {
	section, option string
	depth           int
}

type interpResult struct {
	s   string
	err *interpError
}

func (c *Config) newInterpolation() *interpolation {
	return &interpolation{c: c, memo: map[interpMemoKey]interpResult{}}
}

// interpolate is ExtendedInterpolation.before_get for section:option (see
// configparser's documentation, "ExtendedInterpolation"): "$$" is "$",
// "${key}" is key of the same section (or of DEFAULT), "${section:key}"
// key of another section, at most MaxInterpolationDepth levels deep, and
// (eib's rule) at most MaxValueLen bytes long.
//
// A merged list (value.final) is stored already interpolated (lib/eib.py,
// _merge_option), and reading it returns it as it is: a literal "${x}"
// that came from "$${x}" stays literal. A reference to it from another
// value, though, interpolates its text again, as configparser does with
// any value EIB stored; this is what EIB's merge of a later list that
// refers to an earlier one prints (tests/compat case dollar-merged-ref).
func (c *Config) interpolate(section, option string) (string, error) {
	return c.newInterpolation().get(section, option)
}

func (x *interpolation) get(section, option string) (string, error) {
	c := x.c
	v, ok := c.lookup(section, option)
	if !ok {
		if !c.HasSection(section) && section != DefaultSection {
			return "", &Error{Section: section, Key: option, Msg: fmt.Sprintf("not set (there is no [%s] section)", section)}
		}
		return "", &Error{Section: section, Key: option, Msg: "not set"}
	}
	if v.final || !strings.Contains(v.raw, "$") {
		return v.raw, nil
	}
	s, ie := x.expandRef(section, option, v, 1)
	if ie != nil {
		e := &Error{Section: section, Key: option, Msg: ie.message(section + ":" + option), sizeError: ie.kind == interpSize}
		if len(v.history) > 0 {
			last := v.history[len(v.history)-1]
			e.File, e.Line = last.File, last.Line
		}
		return "", e
	}
	return s, nil
}

// expandRef expands the raw text of section:option (v) read at depth,
// once per run.
func (x *interpolation) expandRef(section, option string, v *value, depth int) (string, *interpError) {
	k := interpMemoKey{section, option, depth}
	if r, ok := x.memo[k]; ok {
		return r.s, r.err
	}
	s, err := x.expand(section, v.raw, depth)
	x.memo[k] = interpResult{s, err}
	return s, err
}

// expand is configparser's _interpolate_some for the raw text of one
// value of section, read depth references deep.
func (x *interpolation) expand(section, rest string, depth int) (string, *interpError) {
	if depth > MaxInterpolationDepth {
		return "", &interpError{kind: interpDepth}
	}
	var b strings.Builder
	write := func(s string) bool {
		if b.Len()+len(s) > MaxValueLen {
			return false
		}
		b.WriteString(s)
		return true
	}
	tooLong := &interpError{kind: interpSize}
	for rest != "" {
		p := strings.IndexByte(rest, '$')
		if p < 0 {
			if !write(rest) {
				return "", tooLong
			}
			return b.String(), nil
		}
		if !write(rest[:p]) {
			return "", tooLong
		}
		rest = rest[p:]
		var next byte
		if len(rest) > 1 {
			next = rest[1]
		}
		switch next {
		case '$':
			if !write("$") {
				return "", tooLong
			}
			rest = rest[2:]
		case '{':
			end := strings.IndexByte(rest, '}')
			if end < 3 {
				return "", &interpError{msg: fmt.Sprintf("bad interpolation variable reference %q", rest)}
			}
			ref := rest[2:end]
			rest = rest[end+1:]
			path := strings.Split(ref, ":")
			var (
				v    *value
				ok   bool
				sect = section
				opt  string
			)
			switch len(path) {
			case 1:
				opt = optionXform(path[0])
			case 2:
				sect = path[0]
				opt = optionXform(path[1])
			default:
				return "", &interpError{msg: fmt.Sprintf("bad reference ${%s}: more than one \":\"", ref)}
			}
			v, ok = x.c.lookup(sect, opt)
			if !ok {
				where := fmt.Sprintf("no key %q in [%s]", opt, sect)
				if sect != DefaultSection && !x.c.HasSection(sect) {
					where = fmt.Sprintf("no section [%s]", sect)
				}
				return "", &interpError{msg: fmt.Sprintf("bad reference ${%s}: %s", ref, where)}
			}
			entry := sect + ":" + opt
			sub := v.raw
			if strings.Contains(v.raw, "$") {
				var err *interpError
				if sub, err = x.expandRef(sect, opt, v, depth+1); err != nil {
					return "", err.under(entry)
				}
			}
			if !write(sub) {
				return "", (&interpError{kind: interpSize}).under(entry)
			}
		default:
			return "", &interpError{msg: fmt.Sprintf("\"$\" must be followed by \"$\" or \"{\", found %q", rest)}
		}
	}
	return b.String(), nil
}
