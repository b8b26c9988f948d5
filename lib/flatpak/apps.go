package flatpak

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// RefSize is what a remote's summary says of one ref (its xa.cache, as
// flatpak build-update-repo writes it): the sizes in bytes and the
// metadata file; and, from the summary's refs map, the commit the ref
// points at.
type RefSize struct {
	Ref           string // kind/name/arch/branch
	Remote        string
	InstalledSize int64 // uncompressed, as installed
	DownloadSize  int64 // compressed, as pulled
	Metadata      string
	Commit        string // 64 hex digits; "" if the refs map lacks the ref
}

// Runtime is the runtime ref an app (or extension with its own runtime)
// names in its metadata ("runtime/" + [Application] runtime), "" if none.
func (r RefSize) Runtime() string {
	for _, l := range strings.Split(r.Metadata, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "runtime="); ok && strings.HasPrefix(r.Ref, "app/") {
			return "runtime/" + strings.TrimSpace(v)
		}
	}
	return ""
}

// summaryEntry matches one ref of a summary's xa.cache printed by
// `ostree remote summary --raw`: 'REF': (uint64 I, uint64 D, 'METADATA').
var summaryEntry = regexp.MustCompile(`'((?:app|runtime)/[^']+)': \((?:uint64 )?(\d+), (?:uint64 )?(\d+), '((?:[^'\\]|\\.)*)'\)`)

// parseSummary reads the xa.cache entries of `ostree remote summary
// --raw` output, each with its commit (parseSummaryCommits).
func parseSummary(remote, out string) map[string]RefSize {
	commits := parseSummaryCommits(out)
	refs := map[string]RefSize{}
	for _, m := range summaryEntry.FindAllStringSubmatch(out, -1) {
		inst, _ := strconv.ParseInt(m[2], 10, 64)
		dl, _ := strconv.ParseInt(m[3], 10, 64)
		md := strings.NewReplacer(`\n`, "\n", `\'`, "'", `\"`, `"`, `\\`, `\`).Replace(m[4])
		refs[m[1]] = RefSize{Ref: m[1], Remote: remote, InstalledSize: inst, DownloadSize: dl, Metadata: md, Commit: commits[m[1]]}
	}
	return refs
}

// summaryRef matches one entry of the refs map that opens a summary
// printed by `ostree remote summary --raw` (ostree 2022.7 prints the
// GVariant a(s(taya{sv}))a{sv}, the types annotated on the first entry
// only): ('REF', (uint64 SIZE, [byte 0x90, 0x0a, ...32 bytes], {...})).
var summaryRef = regexp.MustCompile(`\('([^']+)', \((?:uint64 )?\d+, \[(?:byte )?((?:0x[0-9a-f]{2}, ){31}0x[0-9a-f]{2})\]`)

// parseSummaryCommits reads the refs map of `ostree remote summary --raw`
// output: ref (as the remote names it: app/..., runtime/..., appstream/...)
// → its commit checksum, 64 lowercase hex digits.
func parseSummaryCommits(out string) map[string]string {
	commits := map[string]string{}
	for _, m := range summaryRef.FindAllStringSubmatch(out, -1) {
		var b strings.Builder
		for _, x := range strings.Split(m[2], ", ") {
			b.WriteString(strings.TrimPrefix(x, "0x"))
		}
		commits[m[1]] = b.String()
	}
	return commits
}

// RemoteSizes adds the remotes of s to the installation (a scratch one:
// nothing is pulled but the summaries) and returns what their summaries
// say of every ref, by "remote:ref".
func (in Installation) RemoteSizes(ctx context.Context, s Settings) (map[string]RefSize, []Resolved, error) {
	res, err := in.prepare(ctx, s, "bare-user-only")
	if err != nil {
		return nil, nil, err
	}
	all := map[string]RefSize{}
	for _, r := range s.Remotes {
		out, err := in.ostree(ctx, fmt.Sprintf("[%s] reading the summary of remote %s (%s)", r.Section, r.Name, r.URL), "remote", "summary", "--raw", r.Name)
		if err != nil {
			return nil, nil, err
		}
		for ref, rs := range parseSummary(r.Name, out) {
			all[r.Name+":"+ref] = rs
		}
	}
	return all, res, nil
}

// App is one app of --show-apps with what it brings.
type App struct {
	RefSize
	// Runtime is the app's runtime (its summary entry; Ref "" when no
	// remote has it).
	Runtime RefSize
	// Extensions are the app's own extensions the remote has (NAME.*
	// runtimes: locales, plugins; not the excluded ones), full size.
	Extensions []RefSize
}

// Selection is what a variant installs, resolved from the summaries.
type Selection struct {
	Apps     []App
	Runtimes []RefSize // the runtimes listed or needed, each once
}

// Select resolves the apps and runtimes of res in sizes (RemoteSizes).
func Select(sizes map[string]RefSize, res []Resolved) Selection {
	var sel Selection
	seenRT := map[string]bool{}
	addRT := func(rs RefSize) {
		if rs.Ref != "" && !seenRT[rs.Remote+":"+rs.Ref] {
			seenRT[rs.Remote+":"+rs.Ref] = true
			sel.Runtimes = append(sel.Runtimes, rs)
		}
	}
	find := func(ref string) RefSize {
		var names []string
		for k := range sizes {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if strings.HasSuffix(k, ":"+ref) {
				return sizes[k]
			}
		}
		return RefSize{}
	}
	for _, rr := range res {
		for _, ref := range rr.Refs {
			rs := sizes[rr.Remote.Name+":"+ref]
			if rs.Ref == "" {
				rs = RefSize{Ref: ref, Remote: rr.Remote.Name}
			}
			if strings.HasPrefix(ref, "runtime/") {
				addRT(rs)
				continue
			}
			a := App{RefSize: rs}
			if rt := rs.Runtime(); rt != "" {
				a.Runtime = find(rt)
				if a.Runtime.Ref == "" {
					a.Runtime = RefSize{Ref: rt}
				}
				addRT(a.Runtime)
			}
			p := strings.Split(ref, "/")
			for k, v := range sizes {
				q := strings.Split(v.Ref, "/")
				if strings.HasPrefix(k, rr.Remote.Name+":runtime/"+p[1]+".") && len(q) == 4 && q[2] == p[2] && !contains(rr.Remote.Exclude, q[1]) {
					a.Extensions = append(a.Extensions, v)
				}
			}
			sort.Slice(a.Extensions, func(i, j int) bool { return a.Extensions[i].Ref < a.Extensions[j].Ref })
			sel.Apps = append(sel.Apps, a)
		}
	}
	sort.Slice(sel.Apps, func(i, j int) bool { return sel.Apps[i].Ref < sel.Apps[j].Ref })
	sort.Slice(sel.Runtimes, func(i, j int) bool { return sel.Runtimes[i].Ref < sel.Runtimes[j].Ref })
	return sel
}

// Trim returns the apps whose removal saves at least bytes of download
// (compressed) size, greedily: at each step the app with the smallest
// saving that covers what is left to save, else the one with the largest
// saving. An app saves its own size, its extensions', and its runtime's
// when no other remaining app uses it (and the runtime is not listed for
// itself).
// short is what is still missing when removing every app is not enough.
func (sel Selection) Trim(bytes int64) (remove []App, saved int64, short int64) {
	left := append([]App(nil), sel.Apps...)
	users := func(rt string, apps []App) int {
		n := 0
		for _, a := range apps {
			if a.Runtime.Ref == rt {
				n++
			}
		}
		return n
	}
	listed := map[string]bool{} // runtimes listed for themselves stay
	for _, rt := range sel.Runtimes {
		if users(rt.Ref, sel.Apps) == 0 {
			listed[rt.Ref] = true
		}
	}
	saving := func(a App, apps []App) int64 {
		s := a.DownloadSize
		for _, e := range a.Extensions {
			s += e.DownloadSize
		}
		if a.Runtime.Ref != "" && !listed[a.Runtime.Ref] && users(a.Runtime.Ref, apps) == 1 {
			s += a.Runtime.DownloadSize
		}
		return s
	}
	for saved < bytes && len(left) > 0 {
		// The smallest saving that reaches the rest, else the largest.
		rest := bytes - saved
		best, enough := -1, false
		for i := range left {
			si := saving(left[i], left)
			if best < 0 {
				best, enough = i, si >= rest
				continue
			}
			sb := saving(left[best], left)
			switch {
			case si >= rest && (!enough || si < sb || si == sb && left[i].Ref < left[best].Ref):
				best, enough = i, true
			case !enough && (si > sb || si == sb && left[i].Ref < left[best].Ref):
				best = i
			}
		}
		saved += saving(left[best], left)
		remove = append(remove, left[best])
		left = append(left[:best], left[best+1:]...)
	}
	if saved < bytes {
		short = bytes - saved
	}
	return remove, saved, short
}

// Print writes the selection as a table: groupBy "runtime" (apps under
// the runtime they use) or "nature" (apps, runtimes, extensions), with
// the download (compressed) and installed (uncompressed) sizes in bytes,
// and totals.
func (sel Selection) Print(w io.Writer, groupBy string) {
	row := func(indent, ref, remote string, dl, inst int64) {
		fmt.Fprintf(w, "%s%-60s %-14s %12d %12d\n", indent, ref, remote, dl, inst)
	}
	fmt.Fprintf(w, "%-60s %-14s %12s %12s\n", "REF", "REMOTE", "DOWNLOAD", "INSTALLED")
	var dl, inst int64
	count := func(rs RefSize) { dl += rs.DownloadSize; inst += rs.InstalledSize }
	switch groupBy {
	case "runtime":
		for _, rt := range sel.Runtimes {
			row("", rt.Ref, rt.Remote, rt.DownloadSize, rt.InstalledSize)
			count(rt)
			for _, a := range sel.Apps {
				if a.Runtime.Ref != rt.Ref {
					continue
				}
				row("  ", a.Ref, a.Remote, a.DownloadSize, a.InstalledSize)
				count(a.RefSize)
				for _, e := range a.Extensions {
					row("    ", e.Ref, e.Remote, e.DownloadSize, e.InstalledSize)
					count(e)
				}
			}
		}
		for _, a := range sel.Apps {
			if a.Runtime.Ref == "" {
				row("", a.Ref+" (no runtime)", a.Remote, a.DownloadSize, a.InstalledSize)
				count(a.RefSize)
			}
		}
	default:
		fmt.Fprintln(w, "apps:")
		for _, a := range sel.Apps {
			row("  ", a.Ref, a.Remote, a.DownloadSize, a.InstalledSize)
			count(a.RefSize)
		}
		fmt.Fprintln(w, "runtimes:")
		for _, rt := range sel.Runtimes {
			row("  ", rt.Ref, rt.Remote, rt.DownloadSize, rt.InstalledSize)
			count(rt)
		}
		fmt.Fprintln(w, "extensions:")
		for _, a := range sel.Apps {
			for _, e := range a.Extensions {
				row("  ", e.Ref, e.Remote, e.DownloadSize, e.InstalledSize)
				count(e)
			}
		}
	}
	row("", "TOTAL (locale extensions at full size)", "", dl, inst)
}

// extensionPoint is one [Extension NAME] group of a metadata file.
type extensionPoint struct {
	name, version            string
	download, subdirectories bool
}

// metadataGroups splits a metadata key file into its groups' keys.
func metadataGroups(md string) map[string]map[string]string {
	groups := map[string]map[string]string{}
	var cur map[string]string
	for _, l := range strings.Split(md, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			cur = map[string]string{}
			groups[l[1:len(l)-1]] = cur
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && cur != nil {
			cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return groups
}

// extensionPoints are the extensions a ref's metadata declares that
// flatpak installs along with it (autodownload, or a locale subset).
func extensionPoints(md string) []extensionPoint {
	var out []extensionPoint
	for g, kv := range metadataGroups(md) {
		name, ok := strings.CutPrefix(g, "Extension ")
		if !ok {
			continue
		}
		e := extensionPoint{name: name, version: kv["version"], download: kv["autodownload"] == "true" || kv["locale-subset"] == "true",
			subdirectories: kv["subdirectories"] == "true"}
		if e.version == "" {
			e.version, _, _ = strings.Cut(kv["versions"], ";")
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Closure returns what the refs of res bring along by the remotes'
// summaries (sizes, RemoteSizes): each ref, its runtime (from any
// remote, its own first), and the extensions flatpak downloads with it
// (autodownload or locale subsets; an extension point with
// subdirectories matches every NAME.* ref), minus the excluded IDs, which
// masking keeps out. It approximates flatpak's own resolution, to check
// refs before anything is downloaded; flatpak still decides what is
// pulled.
func Closure(sizes map[string]RefSize, res []Resolved, excluded map[string]bool) []RefSize {
	seen := map[string]bool{}
	var out []RefSize
	var queue []RefSize
	push := func(rs RefSize) {
		k := rs.Remote + ":" + rs.Ref
		if rs.Ref == "" || seen[k] {
			return
		}
		seen[k] = true
		queue = append(queue, rs)
	}
	keys := make([]string, 0, len(sizes))
	for k := range sizes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	find := func(remote, ref string) RefSize {
		if rs, ok := sizes[remote+":"+ref]; ok {
			return rs
		}
		for _, k := range keys {
			if strings.HasSuffix(k, ":"+ref) {
				return sizes[k]
			}
		}
		return RefSize{}
	}
	for _, rr := range res {
		for _, ref := range rr.Refs {
			push(find(rr.Remote.Name, ref))
		}
	}
	for len(queue) > 0 {
		rs := queue[0]
		queue = queue[1:]
		out = append(out, rs)
		p := strings.Split(rs.Ref, "/")
		if len(p) != 4 {
			continue
		}
		if rt := rs.Runtime(); rt != "" {
			push(find(rs.Remote, rt))
		}
		for _, e := range extensionPoints(rs.Metadata) {
			if !e.download {
				continue
			}
			branch := e.version
			if branch == "" {
				branch = p[3]
			}
			for _, k := range keys {
				q := strings.Split(sizes[k].Ref, "/")
				if len(q) != 4 || q[0] != "runtime" || q[2] != p[2] || q[3] != branch || excluded[q[1]] {
					continue
				}
				if q[1] == e.name || e.subdirectories && strings.HasPrefix(q[1], e.name+".") {
					push(sizes[k])
				}
			}
		}
	}
	return out
}
