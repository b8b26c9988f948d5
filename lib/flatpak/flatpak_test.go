package flatpak

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestMatchFollowsEIBsRules(t *testing.T) {
	refs := []string{
		"app/org.a.App/x86_64/stable", "app/org.a.App/x86_64/beta", "app/org.a.App/aarch64/stable",
		"runtime/org.a.Platform/x86_64/46", "runtime/org.a.Platform/x86_64/47",
	}
	for _, tc := range []struct{ kind, partial, arch, branch, want string }{
		{"app", "org.a.App", "x86_64", "stable", "app/org.a.App/x86_64/stable"},
		{"app", "org.a.App", "x86_64", "", "app/org.a.App/x86_64/stable"}, // last in sort order
		{"app", "org.a.App//beta", "x86_64", "stable", "app/org.a.App/x86_64/beta"},
		{"app", "org.a.App/aarch64", "x86_64", "stable", "app/org.a.App/aarch64/stable"},
		{"runtime", "org.a.Platform", "x86_64", "", "runtime/org.a.Platform/x86_64/47"},
		{"runtime", "org.a.Platform//46", "x86_64", "stable", "runtime/org.a.Platform/x86_64/46"},
		{"runtime", "org.a.App", "x86_64", "", ""}, // an app is not a runtime
		{"app", "org.a.App", "x86_64", "nightly", ""},
		{"app", "org.a", "x86_64", "", ""}, // no prefix matching
	} {
		got, err := Match(refs, tc.kind, tc.partial, tc.arch, tc.branch)
		if err != nil || got != tc.want {
			t.Errorf("Match(%s %s, arch %s, branch %q) = %q, %v; want %q", tc.kind, tc.partial, tc.arch, tc.branch, got, err, tc.want)
		}
	}
	for _, bad := range []string{"a/b/c/d", "", "/x86_64"} {
		if _, err := Match(refs, "app", bad, "x86_64", ""); err == nil {
			t.Errorf("Match(%q): no error", bad)
		}
	}
}

// summaryRaw is what `ostree remote summary --raw` prints of a flatpak
// summary's xa.cache (abridged): the first entry's integers are typed.
const summaryRaw = `({'app/org.a.App/x86_64/stable': (uint64 123904, uint64 123199, '[Application]\nname=org.a.App\nruntime=org.a.Platform/x86_64/1\n'), ` +
	`'app/org.a.Small/x86_64/stable': (2048, 1500, '[Application]\nname=org.a.Small\nruntime=org.a.Platform/x86_64/1\ncommand=it\'s\n'), ` +
	`'app/org.a.Own/x86_64/stable': (4096, 4000, '[Application]\nname=org.a.Own\nruntime=org.a.Other/x86_64/2\n'), ` +
	`'runtime/org.a.Other/x86_64/2': (50000, 40000, '[Runtime]\nname=org.a.Other\n'), ` +
	`'runtime/org.a.App.Locale/x86_64/stable': (9000, 8000, '[Runtime]\nname=org.a.App.Locale\n'), ` +
	`'runtime/org.a.Platform/x86_64/1': (307200, 300000, '[Runtime]\nname=org.a.Platform\n')}, {})`

func TestSummarySelectionAndTrim(t *testing.T) {
	sizes := map[string]RefSize{}
	for ref, rs := range parseSummary("r", summaryRaw) {
		sizes["r:"+ref] = rs
	}
	if len(sizes) != 6 {
		t.Fatalf("parsed %d refs, want 6: %v", len(sizes), sizes)
	}
	if a := sizes["r:app/org.a.App/x86_64/stable"]; a.InstalledSize != 123904 || a.DownloadSize != 123199 || a.Runtime() != "runtime/org.a.Platform/x86_64/1" {
		t.Errorf("app entry %+v", a)
	}
	if !strings.Contains(sizes["r:app/org.a.Small/x86_64/stable"].Metadata, "command=it's") {
		t.Errorf("escaped metadata: %q", sizes["r:app/org.a.Small/x86_64/stable"].Metadata)
	}
	res := []Resolved{{Remote: Remote{Name: "r"}, Refs: []string{"app/org.a.App/x86_64/stable", "app/org.a.Small/x86_64/stable", "app/org.a.Own/x86_64/stable"}}}
	sel := Select(sizes, res)
	if len(sel.Apps) != 3 || len(sel.Runtimes) != 2 {
		t.Fatalf("selection %+v", sel)
	}
	if ext := sel.Apps[0].Extensions; sel.Apps[0].Ref != "app/org.a.App/x86_64/stable" || len(ext) != 1 || ext[0].Ref != "runtime/org.a.App.Locale/x86_64/stable" {
		t.Errorf("App's extensions %+v", sel.Apps[0])
	}
	// Own saves its runtime too (40000 + 4000), App its locale
	// (123199 + 8000): no app covers 131200, so App, the largest; then
	// the smallest that covers the last byte, Own (Small would now free
	// the shared runtime: 301500).
	remove, saved, short := sel.Trim(131200)
	if strings.Join(refsOf(remove), " ") != "app/org.a.App/x86_64/stable app/org.a.Own/x86_64/stable" || saved != 131199+44000 || short != 0 {
		t.Errorf("Trim(131200) = %v, %d, %d", refsOf(remove), saved, short)
	}
	if remove, saved, _ := sel.Trim(1000); len(remove) != 1 || remove[0].Ref != "app/org.a.Small/x86_64/stable" || saved != 1500 {
		t.Errorf("Trim(1000) = %v, %d", refsOf(remove), saved)
	}
	// Removing every app frees the shared runtime once the last user goes.
	remove, saved, short = sel.Trim(1 << 40)
	if len(remove) != 3 || saved != 123199+8000+1500+4000+40000+300000 || short != 1<<40-saved {
		t.Errorf("Trim(all) = %v, %d, %d", refsOf(remove), saved, short)
	}
	var b strings.Builder
	sel.Print(&b, "runtime")
	if !strings.Contains(b.String(), "runtime/org.a.Platform/x86_64/1") || !strings.Contains(b.String(), "\n  app/org.a.Small/x86_64/stable") {
		t.Errorf("Print by runtime:\n%s", b.String())
	}
}

func refsOf(apps []App) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Ref)
	}
	return out
}

func TestRepoFileKeys(t *testing.T) {
	key := []byte{0x99, 0x01, 0x02}
	data := "[Flatpak Repo]\nTitle=Apps\nUrl=https://example.org/repo/\nDefaultBranch=stable\nGPGKey=" + base64.StdEncoding.EncodeToString(key) + "\n[Other]\nUrl=no\n"
	url, title, branch, k, err := RepoFileKeys([]byte(data))
	if err != nil || url != "https://example.org/repo/" || title != "Apps" || branch != "stable" || string(k) != string(key) {
		t.Errorf("RepoFileKeys = %q %q %q %x %v", url, title, branch, k, err)
	}
	if _, _, _, _, err := RepoFileKeys([]byte("[Flatpak Repo]\nGPGKey=!!\n")); err == nil || !strings.Contains(err.Error(), "GPGKey") {
		t.Errorf("a bad GPGKey: %v", err)
	}
}

func TestClosureFollowsRuntimesAndDownloadedExtensions(t *testing.T) {
	md := func(s string) string { return s }
	sizes := map[string]RefSize{}
	for _, rs := range []RefSize{
		{Ref: "app/org.a.App/x86_64/stable", Remote: "apps", Metadata: md("[Application]\nname=org.a.App\nruntime=org.a.Platform/x86_64/1\n\n[Extension org.a.App.Locale]\ndirectory=share/runtime/locale\nlocale-subset=true\n\n[Extension org.a.App.Plugin]\ndirectory=plugins\n\n[Extension org.a.App.Codecs]\nautodownload=true\n")},
		{Ref: "runtime/org.a.App.Locale/x86_64/stable", Remote: "apps"},
		{Ref: "runtime/org.a.App.Plugin/x86_64/stable", Remote: "apps"}, // not autodownload
		{Ref: "runtime/org.a.App.Codecs/x86_64/stable", Remote: "apps"}, // excluded
		{Ref: "runtime/org.a.Platform/x86_64/1", Remote: "runtimes", Metadata: md("[Runtime]\nname=org.a.Platform\n\n[Extension org.a.Platform.GL]\nversion=1.4\nsubdirectories=true\nautodownload=true\n")},
		{Ref: "runtime/org.a.Platform.GL.default/x86_64/1.4", Remote: "runtimes", Metadata: "[Runtime]\nname=org.a.Platform.GL.default\n\n[Extra Data]\nname=x\n"},
		{Ref: "runtime/org.a.Platform.GL.default/x86_64/1", Remote: "runtimes"}, // another version
		{Ref: "runtime/org.a.Platform.GL.default/aarch64/1.4", Remote: "runtimes"},
	} {
		sizes[rs.Remote+":"+rs.Ref] = rs
	}
	res := []Resolved{{Remote: Remote{Name: "apps"}, Refs: []string{"app/org.a.App/x86_64/stable"}}}
	var got []string
	for _, rs := range Closure(sizes, res, map[string]bool{"org.a.App.Codecs": true}) {
		got = append(got, rs.Remote+":"+rs.Ref)
	}
	want := "apps:app/org.a.App/x86_64/stable runtimes:runtime/org.a.Platform/x86_64/1 apps:runtime/org.a.App.Locale/x86_64/stable runtimes:runtime/org.a.Platform.GL.default/x86_64/1.4"
	if strings.Join(got, " ") != want {
		t.Errorf("Closure = %v\nwant %s", got, want)
	}
}
