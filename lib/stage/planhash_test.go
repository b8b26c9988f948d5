package stage

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/planhash"
)

// hashTree is a localdir of three variants (personalities p1, p2, p3):
// p1 runs hook 60-a, p2 runs 60-a and 60-b, p3 runs neither and sets a
// key of its own; 60-a reads data file a/logo.txt, no one reads
// unused.txt.
var hashTree = map[string]string{
	"config/defaults.ini":       "[ostree]\ngpg_verify = false\ndev_pull_url = http://127.0.0.1:1/repo\n",
	"config/personality/p1.ini": "[image]\nhooks_add = 60-a\n",
	"config/personality/p2.ini": "[image]\nhooks_add = 60-a 60-b\n",
	"config/personality/p3.ini": "[image]\nlanguage = fr_FR.UTF-8\n",
	"hooks/image/60-a":          "#!/bin/sh\ncp \"${EIB_LOCALDATADIR}/a/logo.txt\" \"${OSTREE_DEPLOYMENT}/etc/\"\n",
	"hooks/image/60-b":          "#!/bin/sh\ntrue\n",
	"data/a/logo.txt":           "logo 1\n",
	"data/unused.txt":           "unused 1\n",
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, text := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// variantHashes loads each personality of hashTree from local as a host
// with cachedir cache would, at build version bv, and returns the plan
// hashes.
func variantHashes(t *testing.T, local, cache, bv, commit string) map[string]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	etc := filepath.Join(cache, "etc")
	writeTree(t, etc, map[string]string{"config.ini": "[build]\ncachedir = " + cache + "\n"})
	out := map[string]string{}
	for _, p := range []string{"p1", "p2", "p3"} {
		l, err := config.Load(config.Options{SrcDir: src, LocalDir: local, SysConfDir: etc,
			Product: "eoscustom", Branch: "master", Arch: "amd64", Platform: "amd64", Personality: p, BuildVersion: bv})
		if err != nil {
			t.Fatal(err)
		}
		b := &build.Build{Config: l.Full, Public: l.Public, SrcDir: src, LocalDir: local}
		in, err := HashInputs(context.Background(), b, commit)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = in.Sum()
	}
	return out
}

func changed(a, b map[string]string) []string {
	var out []string
	for k := range a {
		if a[k] != b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func TestPlanHashChangesExactlyTheVariantsAnInputChanges(t *testing.T) {
	const c1 = "1111111111111111111111111111111111111111111111111111111111111111"
	local := t.TempDir()
	writeTree(t, local, hashTree)
	base := variantHashes(t, local, t.TempDir(), "260101-000000", c1)
	if base["p1"] == base["p2"] || base["p1"] == base["p3"] || base["p2"] == base["p3"] {
		t.Fatalf("three variants share a hash: %v", base)
	}

	// Another host (its own cachedir) at another time: the same hashes.
	if got := changed(base, variantHashes(t, local, t.TempDir(), "270707-123456", c1)); len(got) > 0 {
		t.Errorf("another build version and cachedir changed the hashes of %v", got)
	}
	for _, tc := range []struct {
		name   string
		files  map[string]string
		commit string
		want   []string
	}{
		{name: "hook 60-b (p2 only)", files: map[string]string{"hooks/image/60-b": "#!/bin/sh\nfalse\n"}, want: []string{"p2"}},
		{name: "hook 60-a (p1, p2)", files: map[string]string{"hooks/image/60-a": hashTree["hooks/image/60-a"] + "# v2\n"}, want: []string{"p1", "p2"}},
		{name: "data file 60-a names", files: map[string]string{"data/a/logo.txt": "logo 2\n"}, want: []string{"p1", "p2"}},
		{name: "data file nothing names", files: map[string]string{"data/unused.txt": "unused 2\n"}},
		{name: "p3's configuration", files: map[string]string{"config/personality/p3.ini": "[image]\nlanguage = es_GT.UTF-8\n"}, want: []string{"p3"}},
		{name: "everyone's configuration", files: map[string]string{"config/defaults.ini": hashTree["config/defaults.ini"] + "[image]\ntimezone = Europe/Paris\n"}, want: []string{"p1", "p2", "p3"}},
		{name: "trusted key", files: map[string]string{"data/keys/new.asc": "not really a key\n"}, want: []string{"p1", "p2", "p3"}},
		{name: "the OSTree commit", commit: "2222222222222222222222222222222222222222222222222222222222222222", want: []string{"p1", "p2", "p3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := t.TempDir()
			writeTree(t, local, hashTree)
			writeTree(t, local, tc.files)
			commit := c1
			if tc.commit != "" {
				commit = tc.commit
			}
			got := changed(base, variantHashes(t, local, t.TempDir(), "260101-000000", commit))
			if !slices.Equal(got, tc.want) {
				t.Errorf("changed the hashes of %v, want %v", got, tc.want)
			}
		})
	}
}

// eib itself and the Flatpak slot are inputs of every variant.
func TestPlanHashCoversEIBAndFlatpak(t *testing.T) {
	in := planhash.Inputs{Config: "x", OSTreeCommit: "c", EIBVersion: "eib v1"}
	v2 := in
	v2.EIBVersion = "eib v2"
	fp := in
	fp.Flatpak = map[string]string{"app/org.example.App/x86_64/stable": "abc"}
	if in.Sum() == v2.Sum() || in.Sum() == fp.Sum() {
		t.Errorf("eib's version or a Flatpak commit does not change the hash")
	}
	v, err := EIBVersion()
	if err != nil || v == "" {
		t.Errorf("EIBVersion() = %q, %v", v, err)
	}
}

// RemoteCommit reads the ref's commit from the remote's summary, without
// pulling, and sees a new commit.
func TestRemoteCommitReadsTheSummary(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repo, err := ostree.Init(ctx, filepath.Join(dir, "repo"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	writeTree(t, tree, map[string]string{"usr/etc/os-release": "ID=test\n"})
	commitTree := func() string {
		c, err := repo.Commit(ctx, ostree.Commit{Branch: "os/test/amd64", Tree: tree})
		if err != nil {
			t.Fatal(err)
		}
		if err := repo.UpdateSummary(ctx, nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := commitTree()
	local := t.TempDir()
	writeTree(t, local, map[string]string{"config/defaults.ini": "[ostree]\ngpg_verify = false\npull_url = file://" + repo.Path +
		"\nref = os/test/amd64\n"})
	b := shippedBuildAt(t, local)
	got, err := RemoteCommit(ctx, b)
	if err != nil || got != first {
		t.Fatalf("RemoteCommit = %q, %v; want %s", got, err, first)
	}
	writeTree(t, tree, map[string]string{"usr/etc/os-release": "ID=test2\n"})
	second := commitTree()
	if got, err := RemoteCommit(ctx, b); err != nil || got != second || second == first {
		t.Errorf("after a new commit, RemoteCommit = %q, %v; want %s", got, err, second)
	}
	writeTree(t, local, map[string]string{"config/defaults.ini": "[ostree]\ngpg_verify = false\npull_url = file://" + repo.Path +
		"\nref = os/test/nope\n"})
	if _, err := RemoteCommit(ctx, shippedBuildAt(t, local)); err == nil {
		t.Errorf("RemoteCommit of a ref not in the summary: no error")
	}
}

func shippedBuildAt(t *testing.T, local string) *build.Build {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	l, err := config.Load(config.Options{SrcDir: src, LocalDir: local, SysConfDir: filepath.Join(local, "no-etc"),
		Product: "eoscustom", Branch: "master", Arch: "amd64", Platform: "amd64", Personality: "base", BuildVersion: "260101-000000"})
	if err != nil {
		t.Fatal(err)
	}
	return &build.Build{Config: l.Full, Public: l.Public, SrcDir: src, LocalDir: local}
}
