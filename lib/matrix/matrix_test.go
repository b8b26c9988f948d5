package matrix

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func names(vs []Variant) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name())
	}
	return out
}

func TestParseExpandsGroupsLessExclusions(t *testing.T) {
	m, err := Parse("m.ini", []byte(`# comment
[matrix eos]
products = eos
branches = master eos6
arches = amd64 arm64
platforms = arch pinebookpro
personalities = base fr
exclude = arch=amd64 platform=pinebookpro
    branch=eos6 personality=f*

[matrix demo]
products = demo
branches = master
arches = amd64
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"eos-master-amd64-amd64-base", "eos-master-amd64-amd64-fr",
		"eos-master-arm64-arm64-base", "eos-master-arm64-arm64-fr",
		"eos-master-arm64-pinebookpro-base", "eos-master-arm64-pinebookpro-fr",
		"eos-eos6-amd64-amd64-base",
		"eos-eos6-arm64-arm64-base",
		"eos-eos6-arm64-pinebookpro-base",
		"demo-master-amd64-amd64-base",
	}
	if got := names(m.Variants); !slices.Equal(got, want) {
		t.Errorf("variants:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := m.Variants[0].Args(); !slices.Equal(got, []string{"--product", "eos", "--arch", "amd64", "--platform", "amd64", "--personality", "base", "master"}) {
		t.Errorf("Args = %v", got)
	}
	if vs, err := m.Select([]string{"demo-master-amd64-amd64-base"}); err != nil || len(vs) != 1 {
		t.Errorf("Select = %v, %v", vs, err)
	}
	if _, err := m.Select([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "no variant nope") {
		t.Errorf("Select(nope) error = %v", err)
	}
}

func TestParseErrorsNameFileLineSectionKey(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[other]\nx = 1\n", "m.ini:1: [other]"},
		{"[matrix a]\nproducts = p\nbranches = b\n", "[matrix a] arches"},
		{"[matrix a]\nproducts = p\nbranches = b\narches = amd64\ncolour = red\n", "m.ini:5: [matrix a] colour"},
		{"[matrix a]\nproducts = p\nbranches = b\narches = amd64\nexclude = size=big\n", "m.ini:5: [matrix a] exclude"},
		{"[matrix a]\nproducts = p\nbranches = b\narches = amd64\n[matrix b]\nproducts = p\nbranches = b\narches = amd64\n", "made by [matrix a] too"},
		{"[matrix a]\nproducts = p\nbranches = b\narches = amd64\nexclude = arch=*\n", "no variant"},
		{"[matrix a]\nproducts = p/q\nbranches = b\narches = amd64\n", "m.ini:2: [matrix a] products"},
	} {
		_, err := Parse("m.ini", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want one naming %q", tc.text, err, tc.want)
		}
	}
}

// A release is found in a [publish] dir and at the URL serving it, by
// its outversion, with the plan hash of its manifest.
func TestPublishedFindsReleasesInADirectoryAndAtAURL(t *testing.T) {
	dir := t.TempDir()
	for name, hash := range map[string]string{
		"demo-master-amd64-amd64.260101-000000.base": "sha256:aa",
		"demo-master-amd64-amd64.260102-000000.base": "sha256:bb",
		"demo-master-amd64-amd64.260102-000000.fr":   "sha256:cc",
	} {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		text := `{"plan_hash": {"hash": "` + hash + `"}}`
		if err := os.WriteFile(filepath.Join(dir, name, name+".manifest.json"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An unfinished copy (no manifest) is not a release.
	if err := os.MkdirAll(filepath.Join(dir, "demo-master-amd64-amd64.260103-000000.base"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	re := OutVersionPattern("demo-master-amd64-amd64.260105-101010.base", "260105-101010")
	for _, where := range []string{dir, srv.URL, srv.URL + "/"} {
		rels, err := NewPublished(where).Find(context.Background(), re)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		var got []string
		for _, r := range rels {
			got = append(got, r.Name+" "+r.PlanHash)
		}
		slices.Sort(got)
		want := []string{"demo-master-amd64-amd64.260101-000000.base sha256:aa", "demo-master-amd64-amd64.260102-000000.base sha256:bb"}
		if !slices.Equal(got, want) {
			t.Errorf("%s: releases %v, want %v", where, got, want)
		}
	}
	// Nothing published yet: no release, no error.
	if rels, err := NewPublished(filepath.Join(dir, "none")).Find(context.Background(), re); err != nil || len(rels) != 0 {
		t.Errorf("an empty place: %v, %v", rels, err)
	}
}
