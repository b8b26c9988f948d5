// Package manifest writes and merges the JSON manifest of a build.
//
// A manifest is assembled from fragments, as EIB's helpers/assemble-manifest
// assembles it: eib's own fragments (basic info, images, ostree, boot
// checks, timings; see fragments.go) come first, then every file of the
// build's manifestdir in the order of Python's os.walk with sorted names
// (a directory's files by name, then its subdirectories by name, each
// recursively; links to directories are not followed), whatever its name:
// hooks write fragments there (EIB's image hooks 70-ostree-manifest,
// 50-language ...; its image stage's "images"). eib never writes into
// manifestdir, so a hook's fragment is never replaced by one of eib's.
//
// The merge is EIB's dict_merge: objects merge key by key, recursively; any
// other value of a later fragment replaces the earlier one (a Conflict, which
// the caller logs), and a later non-object in place of an object is an
// error naming both fragments. The result is written with sorted keys as
// <outversion>.manifest.json.
//
// Fragments are written with encoding/json (Marshal), never assembled as
// text, so quotes, backslashes and non-ASCII values stay valid.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Suffix is the file-name suffix of the merged manifest in outdir.
const Suffix = ".manifest.json"

// OwnPrefix starts the name of each of eib's own fragments in conflicts and
// errors ("eib:ostree.json"), to tell them from a hook's file of the same
// name.
const OwnPrefix = "eib:"

// Marshal encodes v as indented JSON with sorted object keys, non-ASCII
// characters kept as UTF-8 and a final newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Fragment is one fragment to merge: its name (a path relative to
// manifestdir, or OwnPrefix and a name for eib's own) and its content.
type Fragment struct {
	Name string
	Data map[string]any
}

// Own turns one of eib's fragments (any value encoding/json encodes as an
// object) into a Fragment named OwnPrefix+name.
func Own(name string, v any) (Fragment, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return Fragment{}, fmt.Errorf("manifest fragment %s%s: %w", OwnPrefix, name, err)
	}
	obj, err := decodeObject(data, OwnPrefix+name)
	if err != nil {
		return Fragment{}, err
	}
	return Fragment{Name: OwnPrefix + name, Data: obj}, nil
}

// Fragments returns the files of dir, relative to dir, in the order EIB's
// helpers/assemble-manifest merges them: os.walk from dir, top down, with
// the file and directory names of each directory sorted; every file is a
// fragment, whatever its name (EIB's image stage writes "images").
func Fragments(dir string) ([]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("manifest fragments: %w", err)
	}
	var names []string
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			return fmt.Errorf("manifest fragments: %w", err)
		}
		var files, dirs []string
		for _, e := range entries {
			p := filepath.Join(rel, e.Name())
			isDir := e.IsDir()
			if e.Type()&os.ModeSymlink != 0 {
				// os.walk lists a link to a directory among the
				// directories and does not enter it; any other link
				// is a file (a dangling one fails when read).
				if st, err := os.Stat(filepath.Join(dir, p)); err == nil && st.IsDir() {
					continue
				}
			}
			if isDir {
				dirs = append(dirs, p)
			} else {
				files = append(files, p)
			}
		}
		sort.Strings(files)
		sort.Strings(dirs)
		names = append(names, files...)
		for _, d := range dirs {
			if err := walk(d); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return names, nil
}

// ReadDir reads every fragment of dir (see Fragments), in merge order.
func ReadDir(dir string) ([]Fragment, error) {
	names, err := Fragments(dir)
	if err != nil {
		return nil, err
	}
	frags := make([]Fragment, 0, len(names))
	for _, name := range names {
		v, err := readFragment(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		frags = append(frags, Fragment{Name: name, Data: v})
	}
	return frags, nil
}

// MergeDir merges eib's own fragments, then every fragment of dir.
func MergeDir(own []Fragment, dir string) (*Merger, error) {
	frags, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := NewMerger()
	for _, f := range append(append([]Fragment(nil), own...), frags...) {
		if err := m.Add(f.Name, f.Data); err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, dir)
		}
	}
	return m, nil
}

// Write writes the merged manifest of m to path. A key or string value that
// contains one of secrets (the values of private configuration files) is an
// error naming the fragment: the manifest is published.
func Write(m *Merger, path string, secrets []string) error {
	if key, found := findSecret(m.Result(), "", secrets); found {
		shown := key
		for _, sec := range secrets {
			if sec != "" {
				shown = strings.ReplaceAll(shown, sec, "***")
			}
		}
		return fmt.Errorf("manifest fragment %s: key %q holds a value of a private configuration file; the manifest is published, so it must not",
			m.Origin(key), shown)
	}
	data, err := Marshal(m.Result())
	if err != nil {
		return fmt.Errorf("manifest %s: %w", path, err)
	}
	return writeFileAtomic(path, data)
}

// findSecret returns the dotted path of the first key or string (in sorted
// key order) that contains a secret.
func findSecret(v any, path string, secrets []string) (string, bool) {
	leaks := func(s string) bool {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(s, sec) {
				return true
			}
		}
		return false
	}
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if leaks(k) {
				return p, true
			}
			if found, ok := findSecret(t[k], p, secrets); ok {
				return found, true
			}
		}
	case []any:
		// Arrays are merged whole: the array's own key names the fragment.
		for _, sub := range t {
			if _, ok := findSecret(sub, path, secrets); ok {
				return path, true
			}
		}
	case string:
		if leaks(t) {
			return path, true
		}
	}
	return "", false
}

// readFragment decodes one fragment; its top level must be an object.
// Numbers are kept as written (json.Number), so large sizes stay exact.
func readFragment(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest fragment: %w", err)
	}
	return decodeObject(data, path)
}

func decodeObject(data []byte, name string) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("manifest fragment %s: invalid JSON: %w", name, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("manifest fragment %s: invalid JSON: data after the top-level value", name)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("manifest fragment %s: top level is %s, want a JSON object", name, kind(v))
	}
	return obj, nil
}

// Merger merges fragments one after the other, remembers which fragment
// set each value (to name it in an error) and records every value a later
// fragment replaced.
type Merger struct {
	root      map[string]any
	origin    map[string]string // key path -> fragment that set it
	conflicts []Conflict
}

// NewMerger returns an empty Merger.
func NewMerger() *Merger {
	return &Merger{root: map[string]any{}, origin: map[string]string{}}
}

// Conflict is a value of an earlier fragment that a later one replaced
// (the later one wins, as in EIB's dict_merge).
type Conflict struct {
	Key            string // dotted key path, e.g. ostree.version
	Earlier, Later string // fragment names, in merge order
	Old, New       any
}

func (c Conflict) String() string {
	return fmt.Sprintf("key %q: %s from %s replaced by %s from %s (the later fragment wins)",
		c.Key, show(c.Old), c.Earlier, show(c.New), c.Later)
}

// ObjectReplacedError is a later fragment setting a non-object where an
// earlier one set an object: EIB's dict_merge refuses it (TypeError), and
// so does eib.
type ObjectReplacedError struct {
	Key           string // dotted key path
	First, Second string // fragment names, in merge order
	Value         any    // the non-object of Second
}

func (e *ObjectReplacedError) Error() string {
	return fmt.Sprintf("manifest fragments %s and %s conflict at key %q: an object in %s, %s in %s; a later fragment may replace any value but an object (EIB's helpers/assemble-manifest fails the same way)",
		e.First, e.Second, e.Key, e.First, show(e.Value), e.Second)
}

// Add merges the fragment named name into the result.
func (m *Merger) Add(name string, fragment map[string]any) error {
	return m.merge(m.root, fragment, "", name)
}

// Conflicts returns the replaced values, in merge order.
func (m *Merger) Conflicts() []Conflict { return m.conflicts }

func (m *Merger) merge(dst, src map[string]any, prefix, name string) error {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sv := src[k]
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		dv, exists := dst[k]
		dobj, dIsObj := dv.(map[string]any)
		sobj, sIsObj := sv.(map[string]any)
		switch {
		case !exists:
			dst[k] = clone(sv)
			m.setOrigin(path, sv, name)
		case dIsObj && sIsObj:
			if err := m.merge(dobj, sobj, path, name); err != nil {
				return err
			}
		case dIsObj:
			return &ObjectReplacedError{Key: path, First: m.Origin(path), Second: name, Value: sv}
		case equal(dv, sv):
			// The same value from two fragments is no conflict.
		default:
			m.conflicts = append(m.conflicts, Conflict{Key: path, Earlier: m.Origin(path), Later: name, Old: dv, New: sv})
			dst[k] = clone(sv)
			m.setOrigin(path, sv, name)
		}
	}
	return nil
}

// setOrigin records name for path and, for an object, every key below it.
func (m *Merger) setOrigin(path string, v any, name string) {
	m.origin[path] = name
	if obj, ok := v.(map[string]any); ok {
		for k, sub := range obj {
			m.setOrigin(path+"."+k, sub, name)
		}
	}
}

// Origin returns the fragment that set the dotted key path (for a key
// inside an object, the fragment that set that key or its closest
// enclosing object).
func (m *Merger) Origin(path string) string {
	for p := path; p != ""; {
		if o, ok := m.origin[p]; ok {
			return o
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "(unknown fragment)"
}

// Result returns the merged manifest.
func (m *Merger) Result() map[string]any { return m.root }

func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(t))
		for k, sub := range t {
			c[k] = clone(sub)
		}
		return c
	case []any:
		c := make([]any, len(t))
		for i, sub := range t {
			c[i] = clone(sub)
		}
		return c
	}
	return v
}

// equal compares two decoded JSON values; numbers compare by value
// (1.0 equals 1).
func equal(a, b any) bool {
	if na, ok := a.(json.Number); ok {
		if nb, ok := b.(json.Number); ok {
			if na == nb {
				return true
			}
			fa, ea := na.Float64()
			fb, eb := nb.Float64()
			return ea == nil && eb == nil && fa == fb
		}
	}
	return reflect.DeepEqual(a, b)
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 80 {
		return kind(v)
	}
	return string(b)
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(name)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(name, 0o644); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}
