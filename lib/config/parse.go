package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultSection is the name of configparser's default section: its keys
// are copied into every other section of the same file.
const DefaultSection = "DEFAULT"

// File is one INI file as Python's configparser (strict=True,
// empty_lines_in_values=True, no inline comments) reads it.
type File struct {
	Path     string
	Defaults *FileSection // [DEFAULT], nil when the file has none
	Sections []*FileSection
}

// FileSection is one section of a File, keys in order of appearance.
type FileSection struct {
	Name string
	Line int
	Keys []FileKey
}

// FileKey is one option of a FileSection: its lower-cased name, its value
// (continuation lines joined with "\n") and the line it starts on.
type FileKey struct {
	Name  string
	Value string
	Line  int
}

// Error is a configuration error: the file and line (when known), the
// section and key it concerns, and what is wrong.
type Error struct {
	File    string
	Line    int
	Section string
	Key     string
	Msg     string

	sizeError bool // a value past MaxValueLen (see interpolate)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Section != "" {
		fmt.Fprintf(&b, "[%s] ", e.Section)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pyIsSpace is Python's str.isspace for one character (also what the re
// module's \s matches in a str pattern).
func pyIsSpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r == ' ':
		return true
	case r >= 0x1c && r <= 0x1f, r == 0x85, r == 0xa0, r == 0x1680:
		return true
	case r >= 0x2000 && r <= 0x200a:
		return true
	case r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

func pyStrip(s string) string  { return strings.TrimFunc(s, pyIsSpace) }
func pyRstrip(s string) string { return strings.TrimRightFunc(s, pyIsSpace) }

// pyFields is Python's str.split() without arguments.
func pyFields(s string) []string { return strings.FieldsFunc(s, pyIsSpace) }

// optionXform is configparser's optionxform: str.lower().
func optionXform(s string) string {
	if strings.ContainsRune(s, 'İ') {
		// Python lowers U+0130 to "i" + COMBINING DOT ABOVE.
		s = strings.ReplaceAll(s, "İ", "i\u0307")
	}
	return strings.ToLower(s)
}

// pyLines splits text as iterating over a file opened in text mode does
// (universal newlines: \n, \r\n and \r end a line).
func pyLines(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// sectionHeader matches configparser's SECTCRE \[(?P<header>.+)\] against
// the stripped line (a match, not a full match: text after the last "]"
// is ignored).
func sectionHeader(value string) (string, bool) {
	if !strings.HasPrefix(value, "[") {
		return "", false
	}
	end := strings.LastIndexByte(value, ']')
	if end < 2 {
		return "", false
	}
	return value[1:end], true
}

type parseKey struct {
	name  string
	lines []string
	line  int
}

type parseSection struct {
	name string
	line int
	keys []*parseKey
	idx  map[string]*parseKey
}

// Parse reads INI text exactly as Python's configparser.ConfigParser
// (strict, "=" and ":" delimiters, "#" and ";" full-line comments, no
// inline comments) does. The first error is returned as an *Error with
// the file and line. The text must be valid UTF-8, as Python reads it.
// eib adds a rule of its own: the text may not contain a NUL byte
// anywhere (an *Error at its line, naming the section and the key it is
// in), which configparser would accept and which no hook's argument or
// environment variable can carry.
func Parse(path string, data []byte) (*File, error) {
	if !utf8.Valid(data) {
		line := 1 + strings.Count(string(data[:firstInvalidUTF8(data)]), "\n")
		return nil, &Error{File: path, Line: line, Msg: "not valid UTF-8"}
	}
	var (
		sections = map[string]*parseSection{}
		order    []*parseSection
		defaults *parseSection
		cur      *parseSection
		curKey   *parseKey
		indent   int
		seenOpt  = map[[2]string]bool{}
		// Like configparser, a malformed line is reported at the end of
		// the file (the first one), but a duplicate or a missing section
		// header stops the parse at once.
		pending *Error
	)
	for i, line := range pyLines(string(data)) {
		lineno := i + 1
		// A NUL byte (eib's rule, configparser accepts it): refused
		// here, naming the key it is in, rather than failing later (an
		// argument or environment variable of a hook cannot hold one).
		hasNUL := strings.IndexByte(line, 0) >= 0
		nulError := func(section, key string) error {
			return &Error{File: path, Line: lineno, Section: section, Key: strings.ReplaceAll(key, "\x00", `\x00`),
				Msg: "a NUL byte (\\x00) in a config file (eib refuses it: no value or key may contain one)"}
		}
		curName := ""
		if cur != nil {
			curName = cur.name
		}
		stripped := pyStrip(line)
		comment := strings.HasPrefix(stripped, "#") || strings.HasPrefix(stripped, ";")
		value := stripped
		if comment {
			value = ""
		}
		if value == "" {
			if hasNUL {
				return nil, nulError(curName, "")
			}
			if !comment && cur != nil && curKey != nil {
				curKey.lines = append(curKey.lines, "")
			}
			continue
		}
		lineIndent := 0
		for _, r := range line {
			if !pyIsSpace(r) {
				break
			}
			lineIndent++
		}
		if cur != nil && curKey != nil && lineIndent > indent {
			if hasNUL {
				return nil, nulError(curName, curKey.name)
			}
			curKey.lines = append(curKey.lines, value)
			continue
		}
		indent = lineIndent
		if name, ok := sectionHeader(value); ok {
			if hasNUL {
				return nil, nulError(strings.ReplaceAll(name, "\x00", `\x00`), "")
			}
			switch {
			case name == DefaultSection:
				if defaults == nil {
					defaults = &parseSection{name: name, line: lineno, idx: map[string]*parseKey{}}
				}
				cur = defaults
			case sections[name] != nil:
				return nil, &Error{File: path, Line: lineno, Section: name,
					Msg: fmt.Sprintf("section %q already exists in this file (line %d)", name, sections[name].line)}
			default:
				cur = &parseSection{name: name, line: lineno, idx: map[string]*parseKey{}}
				sections[name] = cur
				order = append(order, cur)
			}
			curKey = nil
			continue
		}
		if cur == nil {
			return nil, &Error{File: path, Line: lineno,
				Msg: fmt.Sprintf("%q comes before any [section] header", strings.TrimRight(line, "\n"))}
		}
		delim := strings.IndexAny(value, "=:")
		if hasNUL {
			key := ""
			if delim >= 0 {
				key = optionXform(pyRstrip(value[:delim]))
			}
			return nil, nulError(curName, key)
		}
		if delim < 0 {
			if pending == nil {
				pending = &Error{File: path, Line: lineno, Section: cur.name,
					Msg: fmt.Sprintf("%q is neither a [section], a key = value line nor a comment", value)}
			}
			continue
		}
		name := optionXform(pyRstrip(value[:delim]))
		if name == "" && pending == nil {
			pending = &Error{File: path, Line: lineno, Section: cur.name,
				Msg: fmt.Sprintf("%q has no key name before %q", value, value[delim:delim+1])}
		}
		if seenOpt[[2]string{cur.name, name}] {
			e := &Error{File: path, Line: lineno, Section: cur.name, Key: name, Msg: "key already set in this section of this file"}
			if prev := cur.idx[name]; prev != nil {
				e.Msg = fmt.Sprintf("%s (line %d)", e.Msg, prev.line)
			}
			return nil, e
		}
		seenOpt[[2]string{cur.name, name}] = true
		if name == "" {
			curKey = nil // an empty name takes no continuation lines
			continue
		}
		curKey = &parseKey{name: name, lines: []string{pyStrip(value[delim+1:])}, line: lineno}
		cur.keys = append(cur.keys, curKey)
		cur.idx[name] = curKey
	}
	if pending != nil {
		return nil, pending
	}
	f := &File{Path: path}
	conv := func(s *parseSection) *FileSection {
		fs := &FileSection{Name: s.name, Line: s.line}
		for _, k := range s.keys {
			fs.Keys = append(fs.Keys, FileKey{Name: k.name, Value: pyRstrip(strings.Join(k.lines, "\n")), Line: k.line})
		}
		return fs
	}
	if defaults != nil {
		f.Defaults = conv(defaults)
	}
	for _, s := range order {
		f.Sections = append(f.Sections, conv(s))
	}
	return f, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// Items returns the keys of a section as configparser's items() does for
// that file: the [DEFAULT] keys first, then the section's own keys (a key
// set in both keeps the [DEFAULT] position and takes the section's value).
func (f *File) Items(s *FileSection) []FileKey {
	if f.Defaults == nil || len(f.Defaults.Keys) == 0 {
		return s.Keys
	}
	out := append([]FileKey(nil), f.Defaults.Keys...)
	pos := map[string]int{}
	for i, k := range out {
		pos[k.Name] = i
	}
	for _, k := range s.Keys {
		if i, ok := pos[k.Name]; ok {
			out[i] = k
			continue
		}
		out = append(out, k)
	}
	return out
}
