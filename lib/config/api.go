// Package config reads eib's layered INI configuration exactly as Python's
// configparser (strict, ExtendedInterpolation) and EIB (run-build,
// lib/eib.py) do: the files of the eib tree, /etc/eib and --localdir in a
// fixed order, each parsed on its own, merged key by key, with the merged
// list options (hooks_add_*, hooks_del_*) counted, then checked against
// config/schema.ini. Values stay raw: a ${...} reference is resolved where
// the value is used (Get, Env, the merge, the schema checks), and fails
// there, naming the key. Lint and Unread report what EIB would accept
// silently (KeysRead is the table of the keys eib reads).
//
// A Config remembers where every value came from, for --explain and for
// masking private values in logs.
package config

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Origin says where one value of a key came from.
type Origin struct {
	File      string // path of the file; "" for values set by eib itself
	Namespace string // the file's namespace (defaults, product_eos, ...), or "command line"
	Line      int
	Key       string // the key as written in the file (before _add/_del renaming)
	Raw       string
	Private   bool // the file is a private file
}

func (o Origin) String() string {
	if o.File == "" {
		return o.Namespace
	}
	return fmt.Sprintf("%s:%d (%s)", o.File, o.Line, o.Namespace)
}

type value struct {
	raw string
	// final is true for a merged list (see merge): EIB stores it already
	// interpolated, so reading it gives raw as is.
	final   bool
	history []Origin // every assignment, oldest first
}

type section struct {
	name string
	keys []string
	vals map[string]*value
}

func newSection(name string) *section {
	return &section{name: name, vals: map[string]*value{}}
}

func (s *section) set(key, raw string, o Origin) {
	v := s.vals[key]
	if v == nil {
		v = &value{}
		s.vals[key] = v
		s.keys = append(s.keys, key)
	}
	v.raw = raw
	v.final = false
	o.Raw = raw
	v.history = append(v.history, o)
}

// setFinal sets key to a value that is read as is (not interpolated).
func (s *section) setFinal(key, val string, o Origin) {
	s.set(key, val, o)
	s.vals[key].final = true
}

func (s *section) remove(key string) {
	if _, ok := s.vals[key]; !ok {
		return
	}
	delete(s.vals, key)
	for i, k := range s.keys {
		if k == key {
			s.keys = append(s.keys[:i:i], s.keys[i+1:]...)
			break
		}
	}
}

func (s *section) clone() *section {
	n := &section{name: s.name, keys: append([]string(nil), s.keys...), vals: make(map[string]*value, len(s.vals))}
	for k, v := range s.vals {
		n.vals[k] = &value{raw: v.raw, final: v.final, history: append([]Origin(nil), v.history...)}
	}
	return n
}

// Config is an ordered set of sections of options, with origin tracking.
// Option names are lower-cased; section names are case-sensitive. The
// DEFAULT section, if set, is seen by every section (as in configparser).
type Config struct {
	defaults *section
	sections []*section
	index    map[string]*section
	merges   map[[2]string]*Merge
}

// New returns an empty Config.
func New() *Config {
	return &Config{defaults: newSection(DefaultSection), index: map[string]*section{}, merges: map[[2]string]*Merge{}}
}

func (c *Config) section(name string, create bool) *section {
	if name == DefaultSection {
		return c.defaults
	}
	s := c.index[name]
	if s == nil && create {
		s = newSection(name)
		c.index[name] = s
		c.sections = append(c.sections, s)
	}
	return s
}

// Set sets section:option to a raw value (creating the section).
func (c *Config) Set(section, option, value string) {
	c.set(section, optionXform(option), value, Origin{Namespace: "set by eib"})
}

func (c *Config) set(section, option, raw string, o Origin) {
	c.section(section, true).set(option, raw, o)
}

// Clone returns a deep copy.
func (c *Config) Clone() *Config {
	n := New()
	n.defaults = c.defaults.clone()
	for _, s := range c.sections {
		cs := s.clone()
		n.sections = append(n.sections, cs)
		n.index[cs.name] = cs
	}
	for k, m := range c.merges {
		cm := *m
		cm.Contributions = append([]Contribution(nil), m.Contributions...)
		cm.Dropped = append([]Contribution(nil), m.Dropped...)
		n.merges[k] = &cm
	}
	return n
}

// Sections returns the section names in order (without DEFAULT).
func (c *Config) Sections() []string {
	names := make([]string, len(c.sections))
	for i, s := range c.sections {
		names[i] = s.name
	}
	return names
}

// HasSection reports whether the section exists.
func (c *Config) HasSection(name string) bool {
	return c.section(name, false) != nil
}

// Options returns the section's own option names in order (DEFAULT's are
// not included).
func (c *Config) Options(section string) []string {
	s := c.section(section, false)
	if s == nil {
		return nil
	}
	return append([]string(nil), s.keys...)
}

// lookup finds section:option (section first, then DEFAULT), raw.
func (c *Config) lookup(section, option string) (*value, bool) {
	if s := c.section(section, false); s != nil {
		if v, ok := s.vals[option]; ok {
			return v, true
		}
	} else if section != DefaultSection {
		return nil, false
	}
	v, ok := c.defaults.vals[option]
	return v, ok
}

// Raw returns the uninterpolated value of section:option.
func (c *Config) Raw(section, option string) (string, bool) {
	v, ok := c.lookup(section, optionXform(option))
	if !ok {
		return "", false
	}
	return v.raw, true
}

// History returns every assignment of section:option, oldest first.
func (c *Config) History(section, option string) []Origin {
	v, ok := c.lookup(section, optionXform(option))
	if !ok {
		return nil
	}
	return append([]Origin(nil), v.history...)
}

// Get returns the interpolated value of section:option.
func (c *Config) Get(section, option string) (string, error) {
	return c.interpolate(section, optionXform(option))
}

// Has reports whether section:option is set.
func (c *Config) Has(section, option string) bool {
	_, ok := c.lookup(section, optionXform(option))
	return ok
}

// Bool returns section:option as a boolean (configparser's getboolean:
// 1/yes/true/on, 0/no/false/off, case-insensitive).
func (c *Config) Bool(section, option string) (bool, error) {
	v, err := c.Get(section, option)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, c.valueError(section, option, fmt.Sprintf("%q is not a boolean (true/false, yes/no, on/off, 1/0)", v))
}

// Int returns section:option as an integer.
func (c *Config) Int(section, option string) (int64, error) {
	v, err := c.Get(section, option)
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if perr != nil {
		return 0, c.valueError(section, option, fmt.Sprintf("%q is not an integer", v))
	}
	return n, nil
}

// Words returns the interpolated value of section:option split on white
// space (for merged lists such as image:hooks).
func (c *Config) Words(section, option string) ([]string, error) {
	v, err := c.Get(section, option)
	if err != nil {
		return nil, err
	}
	return pyFields(v), nil
}

// valueError is an *Error about section:option at the place it was last set.
func (c *Config) valueError(section, option, msg string) error {
	e := &Error{Section: section, Key: optionXform(option), Msg: msg}
	if v, ok := c.lookup(section, optionXform(option)); ok && len(v.history) > 0 {
		last := v.history[len(v.history)-1]
		e.File, e.Line = last.File, last.Line
	}
	return e
}

// EnvName is the variable a key is exported as: EIB_<SECTION>_<OPTION>
// (EIB_<OPTION> for the build section), upper-cased, every character
// outside [A-Z0-9_] replaced by "_".
func EnvName(section, option string) string {
	name := "EIB_" + section + "_" + option
	if section == "build" {
		name = "EIB_" + option
	}
	name = strings.ToUpper(name)
	out := make([]byte, 0, len(name))
	for _, r := range name {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			out = append(out, byte(r))
		} else {
			out = append(out, '_')
		}
	}
	return string(out)
}

// Env returns every option of the config, interpolated, as EIB_* variables
// (KEY=VALUE), in a stable order: sections in order, each section's
// options as configparser's options() lists them (its own, then the
// DEFAULT ones it does not have). Values true/false in any case are
// lower-cased. When two keys map to the same variable, the later one wins
// (at the earlier one's position). This is EIB's get_environment
// (lib/eib.py, ImageConfigParser.getenv): a reference that cannot be
// resolved is an error naming the key. So is (eib's rules, see
// MaxValueLen and MaxConfigLen) a value longer than MaxValueLen, or values
// adding up to more than MaxConfigLen bytes (an *Error naming the key
// where the total goes past). Each reference is expanded once, however
// many keys refer to it.
func (c *Config) Env() ([]string, error) {
	var env []string
	pos := map[string]int{}
	x := c.newInterpolation()
	total := 0
	for _, s := range c.sections {
		for _, k := range c.optionKeys(s) {
			v, err := x.get(s.name, k)
			if err != nil {
				return nil, err
			}
			if total += len(v); total > MaxConfigLen {
				return nil, c.tooMuchError(s.name, k)
			}
			if l := strings.ToLower(v); l == "true" || l == "false" {
				v = l
			}
			name := EnvName(s.name, k)
			if i, ok := pos[name]; ok {
				env[i] = name + "=" + v
				continue
			}
			pos[name] = len(env)
			env = append(env, name+"="+v)
		}
	}
	return env, nil
}

// optionKeys is configparser's options(section) order: the section's own
// keys, then the DEFAULT keys it does not have.
func (c *Config) optionKeys(s *section) []string {
	if len(c.defaults.keys) == 0 {
		return s.keys
	}
	keys := append([]string(nil), s.keys...)
	for _, k := range c.defaults.keys {
		if _, ok := s.vals[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// itemKeys is configparser's items(section) key order: DEFAULT's keys,
// then the section's own.
func (c *Config) itemKeys(s *section) []string {
	if len(c.defaults.keys) == 0 {
		return s.keys
	}
	keys := append([]string(nil), c.defaults.keys...)
	for _, k := range s.keys {
		if _, ok := c.defaults.vals[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// Write writes the config in configparser's write() format (raw values):
// [DEFAULT] first if it has keys, "key = value" lines with each newline
// of a value written as "\n\t", a blank line after each section.
func (c *Config) Write(w io.Writer) error {
	var b strings.Builder
	writeSection := func(s *section) {
		b.WriteString("[" + s.name + "]\n")
		for _, k := range s.keys {
			b.WriteString(k + " = " + strings.ReplaceAll(s.vals[k].raw, "\n", "\n\t") + "\n")
		}
		b.WriteString("\n")
	}
	if len(c.defaults.keys) > 0 {
		writeSection(c.defaults)
	}
	for _, s := range c.sections {
		writeSection(s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Loaded is the result of Load.
type Loaded struct {
	Public *Config // without private files
	Full   *Config // with private files
	// Secrets are the private values (PrivateValues: what the private
	// files set or changed, line by line, at least MinPrivateLen long),
	// masked in logs; unique, longest first.
	Secrets []string
	// Files are the config files that were read, in order.
	Files []FileRef
	// Options are the options Load was given, with their defaults.
	Options Options
	// SchemaViolations are what the schema refused, when
	// Options.KeepSchemaViolations let Load go on (else Load fails).
	SchemaViolations []*Error
}

// FileRef is one config file that Load read.
type FileRef struct {
	Path      string
	Namespace string
	Private   bool
}

// Options select the config files (CLI values) and set the [build] keys.
type Options struct {
	SrcDir              string
	LocalDir            string // "" = none
	SysConfDir          string // default /etc/eib
	Product             string
	Branch              string
	Arch                string
	Platform            string
	Personality         string
	DryRun              bool
	UseProductionOSTree bool
	BuildVersion        string // default: DefaultBuildVersion (SOURCE_DATE_EPOCH, else now)
	// KeepSchemaViolations makes Load return the configuration with its
	// schema violations in Loaded.SchemaViolations instead of failing
	// with them (eib lint reports them with its other findings, in one
	// round). Every other error still fails Load.
	KeepSchemaViolations bool
}

func sortSecrets(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// tooMuchError is the error of a configuration whose interpolated values
// add up to more than MaxConfigLen, at section:key, where the total goes
// past it.
func (c *Config) tooMuchError(section, key string) error {
	return c.valueError(section, key, fmt.Sprintf("the interpolated values of the keys up to this one add up to more than %d bytes (32 MiB, eib's limit on a whole configuration; configparser has none)", MaxConfigLen))
}

// checkSizes interpolates every key of c once (defaults, then each
// section's keys as options() lists them), in x (a run of c), and returns
// the first error about a size (MaxValueLen, MaxConfigLen). Other errors
// (a reference to a missing key, too deep a nesting) are left to where
// the key is read: EIB accepts them until then.
func (c *Config) checkSizes(x *interpolation) error {
	total := 0
	check := func(section, key string) error {
		v, err := x.get(section, key)
		var e *Error
		if errors.As(err, &e) && e.sizeError {
			return err
		}
		if total += len(v); total > MaxConfigLen {
			return c.tooMuchError(section, key)
		}
		return nil
	}
	for _, k := range c.defaults.keys {
		if err := check(DefaultSection, k); err != nil {
			return err
		}
	}
	for _, s := range c.sections {
		for _, k := range c.optionKeys(s) {
			if err := check(s.name, k); err != nil {
				return err
			}
		}
	}
	return nil
}
