package config

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Reader reads the settings of KeysRead (and the [build] keys of
// BuildKeys) with the type the table gives them, one accessor per Kind.
//
// Every accessor:
//   - refuses a key that is not declared (in KeysRead, or for [build] in
//     BuildKeys), or that is declared with another kind: the error names
//     the section and key and says "not declared in config.KeysRead", so
//     that a test running a reader function fails on a key the table
//     lacks;
//   - returns the interpolated value (Config.Get), checked and converted
//     for its kind;
//   - records the first error only, and returns the kind's zero value once
//     an error is recorded, so that a reader function is a list of reads
//     followed by one check of Err.
//
// Every error names the section and key and is located, as Config.At
// locates it, at the place that gave the key its value ("FILE:LINE:
// [section] key: ..."; "command line: ..." for a key eib set from its
// options; no location for a value set with Config.Set).
//
// Unset keys: a key the configuration does not set (in its section or in
// DEFAULT) reads as its kind's zero value ("", false, 0, nil) without an
// error when config/defaults.ini does not set it either (Default ==
// NotInDefaults: [ostree] enable_p2p_updates, [image] product_name, and the
// [build] keys of BuildKeys, which eib sets itself: localdir and
// localdatadir only with --localdir); the key's Doc says what unset means,
// and Has tells it apart from a value that is set. A key that
// config/defaults.ini sets but the configuration lacks is an error ("not
// set"): the configuration was not made by Load from an eib tree. A reader
// that accepts such a configuration asks Has first.
//
// Empty values: String and List accept "" (List gives no words). Int,
// Seconds, Path, URL and Regex accept "" only for a key whose default is
// empty or NotInDefaults (the Doc then says what empty means, as "[image]
// max_size: empty: no limit"); they return the zero value for it. Bool and
// Enum never accept "" (it is not one of their words).
type Reader struct {
	c   *Config
	err error
}

// NewReader returns a Reader of c. A nil c reads nothing: every accessor
// records an error naming the key.
func NewReader(c *Config) *Reader { return &Reader{c: c} }

// Read returns a Reader of c (NewReader(c)).
func (c *Config) Read() *Reader { return NewReader(c) }

// Err returns the first error of the reads so far, or nil.
func (r *Reader) Err() error { return r.err }

// Declared returns the declaration of section:key: its KeysRead entry, or
// for a [build] key of BuildKeys an entry made here (Default
// NotInDefaults, as the key is set by eib, not by config/defaults.ini;
// dry_run and use_production_ostree are bools, localdir, localdatadir,
// srcdir, cachedir and sysconfdir paths, the others strings).
func Declared(section, key string) (KeyRead, bool) {
	if k, ok := Setting(section, key); ok {
		return k, true
	}
	key = optionXform(key)
	if section != "build" {
		return KeyRead{}, false
	}
	for _, b := range BuildKeys {
		if b == key {
			return KeyRead{Section: section, Key: key, Type: buildKeyType(key), Default: NotInDefaults,
				Doc: "Set by eib from its command line (BuildKeys).", By: "eib"}, true
		}
	}
	return KeyRead{}, false
}

// buildKeyType is the type of a [build] key of BuildKeys.
func buildKeyType(key string) Type {
	switch key {
	case "dry_run", "use_production_ostree":
		return TypeBool
	case "localdir", "localdatadir", "srcdir", "cachedir", "sysconfdir":
		return TypePath
	}
	return TypeString
}

// declared is Declared for an accessor of kind want; the error says what
// is wrong with the declaration.
func declared(section, key string, want Kind) (KeyRead, error) {
	k, ok := Declared(section, key)
	if !ok {
		return k, &Error{Section: section, Key: optionXform(key),
			Msg: fmt.Sprintf("not declared in config.KeysRead (read as %s): add the key to the table", want)}
	}
	if k.Type.Kind != want {
		return k, &Error{Section: section, Key: k.Key,
			Msg: fmt.Sprintf("not declared in config.KeysRead as %s: it is a %s setting", want, k.Type.Kind)}
	}
	return k, nil
}

// record keeps err, located where section:key got its value, if it is the
// first error; it returns the error as recorded (or nil).
func (r *Reader) record(section, key string, err error) error {
	if err == nil {
		return nil
	}
	if r.c != nil {
		err = r.c.At(section, key, err)
	}
	if r.err == nil {
		r.err = err
	}
	return err
}

// Reject records an error about section:key (when no error came first),
// located and named as the accessors' errors are: "FILE:LINE: [section]
// key: <message>". It is for the checks a reader makes beyond the kind (a
// range, a combination of keys); it returns the error.
func (r *Reader) Reject(section, key, format string, args ...any) error {
	return r.record(section, key, &Error{Section: section, Key: optionXform(key), Msg: fmt.Sprintf(format, args...)})
}

// raw is the interpolated value of a declared key of kind want, with its
// declaration; ok is false when the caller must return its zero value (an
// error, now recorded or earlier, or an unset key that may be unset).
func (r *Reader) raw(section, key string, want Kind) (k KeyRead, v string, ok bool) {
	k, err := declared(section, key, want)
	if err != nil {
		r.record(section, key, err)
		return k, "", false
	}
	if r.err != nil {
		return k, "", false
	}
	if r.c == nil {
		r.record(section, key, &Error{Section: section, Key: k.Key, Msg: "no configuration to read it from"})
		return k, "", false
	}
	if !r.c.Has(section, k.Key) {
		if k.HasDefault() {
			r.record(section, key, &Error{Section: section, Key: k.Key,
				Msg: fmt.Sprintf("not set (config/defaults.ini sets it to %q: the configuration was not loaded from an eib tree)", k.Default)})
		}
		return k, "", false
	}
	v, err = r.c.Get(section, k.Key)
	if err != nil {
		r.record(section, key, err)
		return k, "", false
	}
	return k, v, true
}

// mayBeEmpty is whether an empty value of k is accepted by the kinds that
// give empty a meaning only where the key's doc does: its default is empty
// or NotInDefaults.
func mayBeEmpty(k KeyRead) bool { return k.Default == "" || !k.HasDefault() }

// emptyOK checks an empty (after trimming) value v of k: done is true when
// v is empty, and the caller returns its zero value (after the error, if
// k may not be empty).
func (r *Reader) emptyOK(k KeyRead, v string, what string) (done bool) {
	if strings.TrimSpace(v) != "" {
		return false
	}
	if !mayBeEmpty(k) {
		r.Reject(k.Section, k.Key, "empty, but it must be %s (config/defaults.ini sets it to %q)", what, k.Default)
	}
	return true
}

// Has reports whether the configuration sets section:key (in the section
// or in DEFAULT), a declared key of any kind. An undeclared key is recorded
// as an error, as the accessors do, and is not set.
func (r *Reader) Has(section, key string) bool {
	k, ok := Declared(section, key)
	if !ok {
		r.record(section, key, &Error{Section: section, Key: optionXform(key), Msg: "not declared in config.KeysRead (asked Has)"})
		return false
	}
	return r.c != nil && r.c.Has(section, k.Key)
}

// String returns a string setting (KindString) as Config.Get interpolates
// it (the parser already stripped the white space around each line).
// Unset: "".
func (r *Reader) String(section, key string) string {
	_, v, _ := r.raw(section, key, KindString)
	return v
}

// Bool returns a bool setting (KindBool) as configparser's getboolean
// reads it: 1/yes/true/on or 0/no/false/off, in any case, around white
// space; anything else (also "") is an error. Unset: false.
func (r *Reader) Bool(section, key string) bool {
	_, v, ok := r.raw(section, key, KindBool)
	if !ok {
		return false
	}
	b, err := parseBool(v)
	if err != nil {
		r.Reject(section, key, "%s", err)
	}
	return b
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true/false, yes/no, on/off, 1/0)", v)
}

// Int returns an int setting (KindInt): a decimal integer (64 bits, sign
// allowed, white space around it ignored). Empty: 0, where the key's
// default is empty ("[image] max_size": no limit), else an error. Unset: 0.
// Ranges are the caller's to check (Reject).
func (r *Reader) Int(section, key string) int64 {
	k, v, ok := r.raw(section, key, KindInt)
	if !ok || r.emptyOK(k, v, "an integer") {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		r.Reject(section, key, "%q is not an integer", v)
		return 0
	}
	return n
}

// Seconds returns a seconds setting (KindSeconds): a whole number of
// seconds, 0 or more, that a time.Duration can hold. Empty: 0 where the
// key's default is empty, else an error. Unset: 0.
func (r *Reader) Seconds(section, key string) time.Duration {
	k, v, ok := r.raw(section, key, KindSeconds)
	if !ok || r.emptyOK(k, v, "a number of seconds") {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	switch {
	case err != nil:
		r.Reject(section, key, "%q is not an integer (a number of seconds)", v)
		return 0
	case n < 0:
		r.Reject(section, key, "%d seconds: must be 0 or more", n)
		return 0
	case n > int64(math.MaxInt64/time.Second):
		r.Reject(section, key, "%d seconds is out of range", n)
		return 0
	}
	return time.Duration(n) * time.Second
}

// Enum returns an enum setting (KindEnum): one of the table's
// Type.Values, compared exactly after trimming white space. Unset: "".
func (r *Reader) Enum(section, key string) string {
	k, v, ok := r.raw(section, key, KindEnum)
	if !ok {
		return ""
	}
	w := strings.TrimSpace(v)
	for _, want := range k.Type.Values {
		if w == want {
			return w
		}
	}
	r.Reject(section, key, "%q is not one of %s", v, strings.Join(k.Type.Values, ", "))
	return ""
}

// Path returns a path setting (KindPath): an absolute path, cleaned
// (filepath.Clean). A relative path is an error: eib does not resolve a
// path against the directory it runs in. Empty: "" (the key names no file;
// its doc says what that means, as "[publish] dir: not used") where the
// key's default is empty, else an error. Unset: "". Whether the file
// exists is the caller's to check.
func (r *Reader) Path(section, key string) string {
	k, v, ok := r.raw(section, key, KindPath)
	if !ok || r.emptyOK(k, v, "an absolute path") {
		return ""
	}
	p := strings.TrimSpace(v)
	if !filepath.IsAbs(p) {
		r.Reject(section, key, "%q is a relative path: write an absolute one (as ${build:srcdir}/..., ${build:sysconfdir}/...)", v)
		return ""
	}
	return filepath.Clean(p)
}

// Regex returns a regex setting (KindRegex) compiled as Go's regexp
// (RE2 syntax), the value as is (no trimming). Empty: nil where the key's
// default is empty, else an error. Unset: nil.
func (r *Reader) Regex(section, key string) *regexp.Regexp {
	k, v, ok := r.raw(section, key, KindRegex)
	if !ok || r.emptyOK(k, v, "a regular expression") {
		return nil
	}
	re, err := regexp.Compile(v)
	if err != nil {
		r.Reject(section, key, "%q is not a regular expression: %v", v, err)
		return nil
	}
	return re
}

// List returns a list setting (KindList): its words, split on white space
// as Python's str.split() splits (Config.Words; a merged list as the merge
// left it). Empty: no words (nil). Unset: nil.
func (r *Reader) List(section, key string) []string {
	_, v, ok := r.raw(section, key, KindList)
	if w := pyFields(v); ok && len(w) > 0 {
		return w
	}
	return nil
}

// URL returns a url setting (KindURL), trimmed, once net/url parses it as
// an absolute URL: a scheme, and a host unless the scheme is file
// ("file:///srv/repo"). Empty: "" (not used; the key's doc says what
// takes its place) where the key's default is empty, else an error.
// Unset: "".
func (r *Reader) URL(section, key string) string {
	k, v, ok := r.raw(section, key, KindURL)
	if !ok || r.emptyOK(k, v, "a URL") {
		return ""
	}
	s := strings.TrimSpace(v)
	u, err := url.Parse(s)
	switch {
	case err != nil:
		r.Reject(section, key, "%q is not a URL: %v", v, err)
		return ""
	case u.Scheme == "":
		r.Reject(section, key, "%q is not an absolute URL: it has no scheme (http://, https://, file://)", v)
		return ""
	case u.Host == "" && u.Scheme != "file":
		r.Reject(section, key, "%q is not an absolute URL: it has no host", v)
		return ""
	}
	return s
}

// Enum returns the interpolated value of an enum setting of KeysRead,
// which must be one of the table's values for it: Reader.Enum, with its
// error.
func (c *Config) Enum(section, option string) (string, error) {
	r := NewReader(c)
	v := r.Enum(section, option)
	return v, r.Err()
}

// Duration returns a seconds setting of KeysRead (a whole number of
// seconds, 0 or more) as a duration: Reader.Seconds, with its error.
func (c *Config) Duration(section, option string) (time.Duration, error) {
	r := NewReader(c)
	d := r.Seconds(section, option)
	return d, r.Err()
}
