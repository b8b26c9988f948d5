// Package manifest writes and merges the JSON manifest of a build.
//
// A manifest is assembled from fragments: JSON files in the build's
// manifestdir, written by eib (basic-info.json, images.json, ostree.json,
// boot-check.json, timings.json) and by the hooks of the manifest group.
// Fragments are merged in file-name order: objects merge recursively, and a
// key that two fragments set to different non-object values is an error
// naming both fragments. The result is written with sorted keys as
// <outversion>.manifest.json.
//
// Fragments are always written with encoding/json (WriteFragment), never
// assembled as text, so quotes, backslashes and non-ASCII values stay valid.
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

// WriteFragment writes v as the fragment dir/name (name must end in .json),
// atomically: a reader never sees half a fragment.
func WriteFragment(dir, name string, v any) error {
	if !strings.HasSuffix(name, ".json") || strings.ContainsRune(name, '/') {
		return fmt.Errorf("manifest fragment %q: name must be a plain file name ending in .json", name)
	}
	data, err := Marshal(v)
	if err != nil {
		return fmt.Errorf("manifest fragment %s: %w", name, err)
	}
	return writeFileAtomic(filepath.Join(dir, name), data)
}

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

// Fragments returns the fragment files of dir (*.json), in the order they
// are merged: sorted by file name.
func Fragments(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest fragments: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// MergeDir reads every fragment of dir and merges them in file-name order.
func MergeDir(dir string) (map[string]any, error) {
	m, err := Merge(dir)
	if err != nil {
		return nil, err
	}
	return m.Result(), nil
}

// Merge reads every fragment of dir and merges them in file-name order; the
// Merger also says which fragment set each key.
func Merge(dir string) (*Merger, error) {
	names, err := Fragments(dir)
	if err != nil {
		return nil, err
	}
	m := NewMerger()
	for _, name := range names {
		path := filepath.Join(dir, name)
		v, err := readFragment(path)
		if err != nil {
			return nil, err
		}
		if err := m.Add(name, v); err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, dir)
		}
	}
	return m, nil
}

// WriteDir merges the fragments of dir and writes the manifest to path. A
// key or string value that contains one of secrets (the values of private
// configuration files) is an error naming the fragment: the manifest is
// published.
func WriteDir(dir, path string, secrets []string) error {
	m, err := Merge(dir)
	if err != nil {
		return err
	}
	if key, found := findSecret(m.Result(), "", secrets); found {
		shown := key
		for _, sec := range secrets {
			if sec != "" {
				shown = strings.ReplaceAll(shown, sec, "***")
			}
		}
		return fmt.Errorf("manifest fragment %s: key %q holds a value of a private configuration file; the manifest is published, so it must not (in %s)",
			m.Origin(key), shown, dir)
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("manifest fragment %s: invalid JSON: %w", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("manifest fragment %s: invalid JSON: data after the top-level value", path)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("manifest fragment %s: top level is %s, want a JSON object", path, kind(v))
	}
	return obj, nil
}

// Merger merges fragments one after the other and remembers which fragment
// set each value, to name both sides of a conflict.
type Merger struct {
	root   map[string]any
	origin map[string]string // key path -> fragment that set it
}

// NewMerger returns an empty Merger.
func NewMerger() *Merger {
	return &Merger{root: map[string]any{}, origin: map[string]string{}}
}

// ConflictError is returned when two fragments set one key to different
// values.
type ConflictError struct {
	Key            string // dotted key path, e.g. images.disk.file
	First, Second  string // fragment names, in merge order
	Value1, Value2 any
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("manifest fragments %s and %s conflict at key %q: %s vs %s",
		e.First, e.Second, e.Key, show(e.Value1), show(e.Value2))
}

// Add merges the fragment named name into the result.
func (m *Merger) Add(name string, fragment map[string]any) error {
	return m.merge(m.root, fragment, "", name)
}

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
		if !exists {
			dst[k] = clone(sv)
			m.setOrigin(path, sv, name)
			continue
		}
		dobj, dIsObj := dv.(map[string]any)
		sobj, sIsObj := sv.(map[string]any)
		switch {
		case dIsObj && sIsObj:
			if err := m.merge(dobj, sobj, path, name); err != nil {
				return err
			}
		case equal(dv, sv):
			// The same value from two fragments is no conflict.
		default:
			return &ConflictError{Key: path, First: m.originOf(path), Second: name, Value1: dv, Value2: sv}
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

func (m *Merger) originOf(path string) string {
	if o, ok := m.origin[path]; ok {
		return o
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
