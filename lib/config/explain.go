package config

import (
	"fmt"
	"io"
	"strings"
)

// ParseKeyRef splits "SECTION:KEY" (the section may itself contain ":";
// the key is after the last one).
func ParseKeyRef(ref string) (section, key string, err error) {
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 || i == len(ref)-1 {
		return "", "", fmt.Errorf("--explain %q: expected SECTION:KEY, e.g. image:hooks", ref)
	}
	return ref[:i], optionXform(ref[i+1:]), nil
}

func indentValue(v string) string {
	return strings.ReplaceAll(v, "\n", "\n    ")
}

// Explain writes, for one key of the full config, every file that set or
// contributed to it (path, line, namespace, raw value), the merge
// arithmetic of a merged list, and the interpolated final value.
func (l *Loaded) Explain(w io.Writer, section, key string) error {
	c := l.Full
	key = optionXform(key)
	v, ok := c.lookup(section, key)
	if !ok {
		msg := "not set in any config file"
		if !c.HasSection(section) {
			msg = fmt.Sprintf("not set: there is no [%s] section", section)
		}
		return &Error{Section: section, Key: key, Msg: msg}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s\n", section, key)
	m := c.MergeOf(section, key)
	if m == nil || m.Verbatim {
		b.WriteString("set by:\n")
		for _, o := range v.history {
			name := key
			if o.Key != "" && o.Key != key {
				name = o.Key
			}
			priv := ""
			if o.Private {
				priv = " [private]"
			}
			fmt.Fprintf(&b, "  %s%s: %s = %s\n", o, priv, name, indentValue(o.Raw))
		}
	}
	if m != nil {
		if m.Verbatim {
			fmt.Fprintf(&b, "merged list: %s is set, so it wins verbatim", key)
			if len(m.Dropped) == 0 {
				b.WriteString("\n")
			} else {
				b.WriteString("; ignored:\n")
			}
		} else {
			fmt.Fprintf(&b, "merged list: %s_add* words count +1, %s_del* words -1; words with a count above 0 are kept\n", key, key)
			for _, ct := range m.Contributions {
				sign := "+"
				if !ct.Add {
					sign = "-"
				}
				fmt.Fprintf(&b, "  %s %s: %s = %s -> %s\n", sign, ct.Origin, ct.Origin.Key, indentValue(ct.Origin.Raw), strings.Join(ct.Words, " "))
			}
			b.WriteString("counts:\n")
			for _, word := range m.Order {
				verdict := "kept"
				if m.Counts[word] <= 0 {
					verdict = "dropped"
				}
				fmt.Fprintf(&b, "  %s = %d (%s)\n", word, m.Counts[word], verdict)
			}
		}
		for _, ct := range m.Dropped {
			fmt.Fprintf(&b, "  %s: %s = %s\n", ct.Origin, ct.Origin.Key, indentValue(ct.Origin.Raw))
		}
	}
	fmt.Fprintf(&b, "raw value:\n    %s\n", indentValue(v.raw))
	final, err := c.interpolate(section, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "interpolated value:\n    %s\n", indentValue(final))
	fmt.Fprintf(&b, "environment: %s\n", EnvName(section, key))
	_, err = io.WriteString(w, b.String())
	return err
}
