package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Published is a place builds are published to: a directory (a [publish]
// dir) or the URL it is served at. A release is its subdirectory
// <outversion>/ with <outversion>.manifest.json in it (what eib's publish
// stage makes); a URL's releases are the links of its index page (a
// server's directory listing).
type Published struct {
	Where string
	names []string // the entries of Where, read once
	read  bool
}

// NewPublished returns the published place at where (a directory or an
// http(s) URL).
func NewPublished(where string) *Published { return &Published{Where: where} }

func (p *Published) isURL() bool {
	w := strings.ToLower(p.Where)
	return strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://")
}

var hrefRE = regexp.MustCompile(`(?i)href="([^"?#]+)"`)

func (p *Published) list(ctx context.Context) ([]string, error) {
	if p.read {
		return p.names, nil
	}
	if p.isURL() {
		body, err := get(ctx, strings.TrimSuffix(p.Where, "/")+"/")
		if err != nil {
			return nil, err
		}
		for _, m := range hrefRE.FindAllStringSubmatch(string(body), -1) {
			n, err := url.PathUnescape(strings.TrimSuffix(m[1], "/"))
			if err != nil || strings.Contains(n, "/") || n == "" || n == ".." {
				continue
			}
			p.names = append(p.names, n)
		}
	} else {
		entries, err := os.ReadDir(p.Where)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("published releases: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				p.names = append(p.names, e.Name())
			}
		}
	}
	p.read = true
	return p.names, nil
}

// Release is one published release of a variant.
type Release struct {
	Name     string `json:"name"` // the outversion
	Manifest string `json:"manifest"`
	PlanHash string `json:"plan_hash"` // "" when its manifest has none
}

// Find returns the releases whose name (outversion) matches re with their
// plan hashes read from their manifests. A release without a manifest
// (an unfinished copy) is skipped; one whose manifest cannot be read
// or parsed is an error naming it.
func (p *Published) Find(ctx context.Context, re *regexp.Regexp) ([]Release, error) {
	names, err := p.list(ctx)
	if err != nil {
		return nil, err
	}
	var out []Release
	for _, n := range names {
		if !re.MatchString(n) {
			continue
		}
		var data []byte
		var loc string
		if p.isURL() {
			loc = strings.TrimSuffix(p.Where, "/") + "/" + url.PathEscape(n) + "/" + url.PathEscape(n+".manifest.json")
			data, err = get(ctx, loc)
			if err == errNotFound {
				continue
			}
		} else {
			loc = filepath.Join(p.Where, n, n+".manifest.json")
			data, err = os.ReadFile(loc)
			if os.IsNotExist(err) {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("published release %s: %w", loc, err)
		}
		var m struct {
			PlanHash struct {
				Hash string `json:"hash"`
			} `json:"plan_hash"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("published release %s: %w", loc, err)
		}
		out = append(out, Release{Name: n, Manifest: loc, PlanHash: m.PlanHash.Hash})
	}
	return out, nil
}

var errNotFound = fmt.Errorf("not found")

func get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// OutVersionPattern matches the outversions of one variant's builds: ov
// (one build's outversion) with its build_version bv standing for any
// build version.
func OutVersionPattern(ov, bv string) *regexp.Regexp {
	q := regexp.QuoteMeta(ov)
	if bv != "" {
		q = strings.ReplaceAll(q, regexp.QuoteMeta(bv), `[^/]+`)
	}
	return regexp.MustCompile("^" + q + "$")
}
