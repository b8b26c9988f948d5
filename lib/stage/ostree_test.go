package stage

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// ostreeBuild is a build whose [ostree] section has the keys of
// config/defaults.ini plus set, with trusted keys in srcdir and localdir.
func ostreeBuild(t *testing.T, set map[string]string, srcKeys, localKeys []string) *build.Build {
	t.Helper()
	dir := t.TempDir()
	c := config.New()
	c.Set("build", "use_production_ostree", "false")
	for k, v := range map[string]string{
		"os": "demo", "remote": "${os}", "pull_url": "", "prod_pull_url": "https://prod.example/",
		"dev_pull_url": "http://dev.example/", "deploy_url": "", "ref": "os/demo/amd64/eos3.1",
		"ref_deploy": "", "gpg_verify": "true", "repodir": dir + "/repo", "checkout": dir + "/sysroot",
		"kargs": "root=LABEL=ostree  rw",
	} {
		c.Set("ostree", k, v)
	}
	for k, v := range set {
		if s, o, ok := strings.Cut(k, ":"); ok {
			c.Set(s, o, v)
		} else {
			c.Set("ostree", k, v)
		}
	}
	b := &build.Build{Config: c, Public: c, SrcDir: filepath.Join(dir, "src"), LocalDir: filepath.Join(dir, "local")}
	for root, names := range map[string][]string{b.SrcDir: srcKeys, b.LocalDir: localKeys} {
		for _, n := range names {
			p := filepath.Join(root, "data", "keys", n)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b
}

func TestOSTreeSettingsPullURLFollowsUseProductionOSTree(t *testing.T) {
	for _, tc := range []struct {
		name         string
		set          map[string]string
		pull, deploy string
		summary      bool
	}{
		{"dev without the option", nil, "http://dev.example/", "http://dev.example/", true},
		{"prod with the option", map[string]string{"build:use_production_ostree": "true"}, "https://prod.example/", "https://prod.example/", false},
		{"pull_url wins", map[string]string{"build:use_production_ostree": "true", "pull_url": "http://127.0.0.1:9/"}, "http://127.0.0.1:9/", "http://127.0.0.1:9/", true},
		{"deploy_url when set", map[string]string{"deploy_url": "https://updates.example/"}, "http://dev.example/", "https://updates.example/", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := readOSTreeSettings(ostreeBuild(t, tc.set, []string{"a.asc"}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if s.pullURL != tc.pull || s.deployURL != tc.deploy {
				t.Errorf("pull %q deploy %q, want %q %q", s.pullURL, s.deployURL, tc.pull, tc.deploy)
			}
			if got := verifySummary(s.gpgVerify, s.pullURL); got != tc.summary {
				t.Errorf("summary verification %v for %s, want %v", got, s.pullURL, tc.summary)
			}
		})
	}
}

func TestOSTreeSettingsDefaultsAndKeys(t *testing.T) {
	b := ostreeBuild(t, nil, []string{"b.asc", "a.asc", "not-a-key.gpg"}, []string{"0.asc"})
	s, err := readOSTreeSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.remote != "demo" || s.refDeploy != s.ref || !slices.Equal(s.kargs, []string{"root=LABEL=ostree", "rw"}) {
		t.Errorf("settings %+v: want remote demo, ref_deploy = ref, two kargs", s)
	}
	var names []string
	for _, k := range s.keys {
		rel, _ := filepath.Rel(filepath.Dir(b.SrcDir), k)
		names = append(names, rel)
	}
	want := []string{"src/data/keys/a.asc", "src/data/keys/b.asc", "local/data/keys/0.asc"}
	if !slices.Equal(names, want) {
		t.Errorf("keys %v, want %v (srcdir then localdir, each sorted)", names, want)
	}
}

// [build] datadir and localdatadir say where the keys are, as in EIB's
// get_ostree_trusted_keys.
func TestOSTreeTrustedKeysFollowDatadir(t *testing.T) {
	b := ostreeBuild(t, nil, []string{"a.asc"}, []string{"0.asc"})
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "keys", "z.asc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.Config.Set("build", "datadir", other)
	b.Config.Set("build", "localdatadir", filepath.Join(other, "none"))
	s, err := readOSTreeSettings(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(other, "keys", "z.asc")}; !slices.Equal(s.keys, want) {
		t.Errorf("keys %v, want %v (datadir/keys, and nothing from the empty localdatadir)", s.keys, want)
	}
}

func TestOSTreeSettingsErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]string
		keys []string
		want string
	}{
		{"no URL", map[string]string{"dev_pull_url": ""}, []string{"a.asc"},
			"[ostree] pull_url: empty and so is dev_pull_url (used without --use-production-ostree)"},
		{"no ref", map[string]string{"ref": ""}, []string{"a.asc"}, "[ostree] ref: empty"},
		{"bad bool", map[string]string{"gpg_verify": "maybe"}, []string{"a.asc"}, "[ostree] gpg_verify"},
		{"no keys", nil, nil, "no trusted key (*.asc) was found in "},
		{"checkout /", map[string]string{"checkout": "/"}, []string{"a.asc"}, "[ostree] checkout: /: must be an absolute path"},
		{"relative checkout", map[string]string{"checkout": "tmp/sysroot"}, []string{"a.asc"}, "[ostree] checkout: \"tmp/sysroot\" is a relative path"},
		{"bad URL", map[string]string{"dev_pull_url": "dev.example/repo"}, []string{"a.asc"}, "[ostree] dev_pull_url: \"dev.example/repo\" is not an absolute URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readOSTreeSettings(ostreeBuild(t, tc.set, tc.keys, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// Without gpg_verify no key is needed.
	if _, err := readOSTreeSettings(ostreeBuild(t, map[string]string{"gpg_verify": "false"}, nil, nil)); err != nil {
		t.Errorf("gpg_verify = false without keys: %v", err)
	}
}
