// Package planhash computes the plan hash of a build: one sha256 over every
// input that changes what the build makes, so that a variant whose hash
// already has a published release need not be built again (osbuild skips
// a configuration whose manifest ID was built; EIB once compared a few
// inputs and dropped the check).
//
// The inputs (Inputs) are:
//
//   - Config: the merged public configuration (what is published as
//     <outversion>.config.ini) as text, with the build_version value and
//     the host's own directories (srcdir, localdir, cachedir, sysconfdir)
//     replaced by placeholders (Normalize), so two hosts building the same
//     variant at different times agree;
//   - OSTreeCommit: the commit the configured ref points at (read from the
//     remote's summary before a build, the commit pulled in the manifest);
//   - Files: the sha256 of every file the build reads that is not
//     configuration: the hook files of every hook group, the data files
//     the configuration or a hook names, the trusted keys, the buildscript
//     and the hooks' libraries (which ones: lib/stage HashInputs);
//   - EIBVersion: the eib program itself (its module version, its VCS
//     revision when built with one, and the sha256 of the executable);
//   - Flatpak: the commit (64 hex digits) of each Flatpak ref the build
//     installs, keyed "remote:ref" (ref: kind/name/arch/branch): the apps
//     and runtimes listed, their runtimes and extensions less the excluded
//     IDs, read from the remotes' summaries without pulling (lib/stage
//     HashInputs); empty for a build without Flatpak remotes, whose hash
//     is then the one it had before the slot was filled.
//
// Sum hashes the JSON encoding of Inputs (map keys sorted) prefixed with
// Scheme, so a change of this list changes every hash.
package planhash

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Scheme names the version of the inputs list; it is hashed first.
const Scheme = "eib-plan-hash/1"

// Inputs are what a plan hash covers (see the package documentation).
type Inputs struct {
	Config       string            `json:"config"`
	OSTreeCommit string            `json:"ostree_commit"`
	Files        map[string]string `json:"files"` // label (Label) -> sha256 hex
	EIBVersion   string            `json:"eib_version"`
	Flatpak      map[string]string `json:"flatpak"` // "remote:ref" -> commit
}

// Sum is the plan hash of in: "sha256:" and 64 hex digits.
func (in Inputs) Sum() string {
	if in.Files == nil {
		in.Files = map[string]string{}
	}
	if in.Flatpak == nil {
		in.Flatpak = map[string]string{}
	}
	data, err := json.Marshal(in) // maps are encoded with sorted keys
	if err != nil {
		panic(err) // strings and maps of strings always encode
	}
	h := sha256.New()
	io.WriteString(h, Scheme+"\n")
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Placeholder is one host-specific value replaced in the configuration
// text: Value (a path, the build version) becomes "@"+Name+"@".
type Placeholder struct {
	Name, Value string
}

// Normalize replaces every placeholder's value in text, the longest values
// first (so that a localdir under the srcdir is replaced as a whole);
// empty values are ignored.
func Normalize(text string, ph []Placeholder) string {
	ph = append([]Placeholder(nil), ph...)
	sort.SliceStable(ph, func(i, j int) bool { return len(ph[i].Value) > len(ph[j].Value) })
	for _, p := range ph {
		if p.Value == "" || p.Value == "/" {
			continue
		}
		text = strings.ReplaceAll(text, p.Value, "@"+p.Name+"@")
	}
	return text
}

// Label names a file of Files without the host's directories: the path
// with the placeholders of Normalize applied ("@SRCDIR@/hooks/image/50-x").
func Label(path string, ph []Placeholder) string { return Normalize(path, ph) }

// FileSum is the sha256 (hex) of the file at path; the error names the
// path.
func FileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("plan hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("plan hash: reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TextSum is the sha256 (hex) of s.
func TextSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Diff names the inputs that differ between a and b, sorted ("config",
// "ostree_commit", "eib_version", "file @SRCDIR@/hooks/...", "flatpak REF").
func Diff(a, b Inputs) []string {
	var out []string
	if a.Config != b.Config {
		out = append(out, "config")
	}
	if a.OSTreeCommit != b.OSTreeCommit {
		out = append(out, "ostree_commit")
	}
	if a.EIBVersion != b.EIBVersion {
		out = append(out, "eib_version")
	}
	out = append(out, mapDiff("file ", a.Files, b.Files)...)
	out = append(out, mapDiff("flatpak ", a.Flatpak, b.Flatpak)...)
	sort.Strings(out)
	return out
}

func mapDiff(prefix string, a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if b[k] != v {
			out = append(out, prefix+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, prefix+k)
		}
	}
	return out
}
