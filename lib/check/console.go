package check

import (
	"bytes"
	"regexp"
	"strings"
)

// tailLines is how many console lines a failure report shows.
const tailLines = 30

// ansiEscape matches terminal control sequences (GRUB and systemd colour and
// cursor codes) that make a console tail unreadable in an error message.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78cDEHM])`)

// console follows a serial console byte stream: it splits it into lines,
// looks for the marker in every line (and in the line still being
// printed), and keeps the last lines for a failure report.
type console struct {
	marker  *regexp.Regexp
	partial []byte
	tail    []string // ring of the last tailLines complete lines
	next    int
	full    bool
}

func newConsole(marker *regexp.Regexp) *console {
	return &console{marker: marker, tail: make([]string, tailLines)}
}

// cleanLine drops control sequences and carriage returns.
func cleanLine(b []byte) string {
	s := ansiEscape.ReplaceAllString(string(b), "")
	return strings.ReplaceAll(s, "\r", "")
}

// write consumes a chunk of console output and reports whether the marker
// appeared in it (a marker split across chunks is found too, since the
// line in progress is matched as a whole).
func (c *console) write(p []byte) bool {
	seen := false
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		c.partial = append(c.partial, p[:i]...)
		p = p[i+1:]
		line := cleanLine(c.partial)
		c.partial = c.partial[:0]
		if c.marker.MatchString(line) {
			seen = true
		}
		c.push(strings.TrimRight(line, " \t"))
	}
	c.partial = append(c.partial, p...)
	if len(c.partial) > 0 && c.marker.MatchString(cleanLine(c.partial)) {
		seen = true
	}
	return seen
}

func (c *console) push(line string) {
	c.tail[c.next] = line
	c.next = (c.next + 1) % len(c.tail)
	if c.next == 0 {
		c.full = true
	}
}

// lastLines returns the last complete lines, oldest first, plus the line
// still being printed, if any.
func (c *console) lastLines() []string {
	var out []string
	if c.full {
		out = append(out, c.tail[c.next:]...)
	}
	out = append(out, c.tail[:c.next]...)
	if p := strings.TrimRight(cleanLine(c.partial), " \t"); p != "" {
		out = append(out, p)
		if len(out) > tailLines {
			out = out[len(out)-tailLines:]
		}
	}
	return out
}
