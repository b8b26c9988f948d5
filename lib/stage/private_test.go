package stage

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// shippedBuild loads eib's own config tree with a localdir made of files
// (relative path -> text), as a build would, without a sysconfdir.
func shippedBuild(t *testing.T, files map[string]string) *build.Build {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	local := t.TempDir()
	for rel, text := range files {
		p := filepath.Join(local, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := config.Load(config.Options{SrcDir: src, LocalDir: local, SysConfDir: filepath.Join(local, "no-etc"),
		Product: "eoscustom", Branch: "master", Arch: "amd64", Platform: "amd64", Personality: "base",
		BuildVersion: "260101-000000"})
	if err != nil {
		t.Fatal(err)
	}
	return &build.Build{Config: l.Full, Public: l.Public, SrcDir: src, LocalDir: local}
}

// A private value never reaches an image: every value the image, its
// outputs or the published files carry is checked against the private
// values before the build, and the error names the key to set and where
// the private value comes from, never the value.
func TestPrivateValuesThatWouldReachTheImageAreRefused(t *testing.T) {
	const public = "[ostree]\ngpg_verify = false\ndev_pull_url = http://127.0.0.1:1/repo\n"
	for _, tc := range []struct {
		name    string
		public  string // more of localdir/config/defaults.ini
		private string // localdir/config/private.ini
		stages  []string
		want    []string // one error each, in order; none: no error
	}{
		{name: "credentials in pull_url, no deploy_url (the field fault)",
			private: "[ostree]\npull_url = http://user:password@ostree.example.org/repo\n",
			want: []string{"[ostree] deploy_url is empty, so the image's OSTree remote URL would be [ostree] pull_url, " +
				"which holds a private value (@LOCAL@/config/private.ini:2): set [ostree] deploy_url"}},
		{name: "credentials in pull_url, a public deploy_url",
			public:  "deploy_url = https://ostree.example.org/repo\n",
			private: "[ostree]\npull_url = http://user:password@ostree.example.org/repo\n"},
		{name: "a private dev_pull_url is the fallback's fallback",
			private: "[ostree]\ndev_pull_url = http://user:password@ostree.example.org/repo\n",
			want: []string{"[ostree] deploy_url is empty, so the image's OSTree remote URL would be [ostree] dev_pull_url, " +
				"which holds a private value (@LOCAL@/config/private.ini:2): set [ostree] deploy_url"}},
		{name: "a public deploy_url that refers to a private key",
			public:  "deploy_url = https://${publish:token}@ostree.example.org/repo\n",
			private: "[publish]\ntoken = s3cr3t-token\n",
			want: []string{"[ostree] deploy_url holds a private value (the private [publish] token, @LOCAL@/config/private.ini:2), " +
				"which would reach the image's OSTree remote URL: set it in a public file, without the private value"}},
		{name: "private kernel arguments and ref",
			public:  "ref_deploy =\n",
			private: "[ostree]\nkargs = root=LABEL=ostree rw secret.token=abcdef\nref = os/private/amd64/master\n",
			want: []string{
				"[ostree] ref_deploy is empty, so the image's OSTree branch would be [ostree] ref, which holds a private value (@LOCAL@/config/private.ini:3): set [ostree] ref_deploy",
				"[ostree] kargs holds a private value (@LOCAL@/config/private.ini:2), which would reach the image's kernel command line",
				"[ostree] ref holds a private value (@LOCAL@/config/private.ini:3), which would reach <outversion>.ostree.txt and the manifest"}},
		{name: "the hostname of the image hook",
			private: "[image]\nhostname = private-host\n",
			want:    []string{"[image] hostname holds a private value (@LOCAL@/config/private.ini:2), which would reach the image (image hook 50-hostname)"}},
		{name: "the outversion names the published files, even without the image stage",
			private: "[build]\nbuild_version = 991231-235959\n",
			stages:  []string{"manifest", "publish"},
			want:    []string{"[build] outversion holds a private value (the private [build] build_version, @LOCAL@/config/private.ini:2), which would reach the name of every output"}},
		{name: "private values used only by hooks stay private",
			private: "[publish]\ntoken = s3cr3t-token\nrsync_dest = user@host.example.org:/srv/images\n"},
		{name: "a private value set to its public value is public",
			private: "[ostree]\nkargs = root=LABEL=ostree rw quiet splash\n"},
		{name: "without the image stage, the ostree settings reach nothing",
			private: "[ostree]\npull_url = http://user:password@ostree.example.org/repo\n",
			stages:  []string{"ostree"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := shippedBuild(t, map[string]string{
				"config/defaults.ini": public + tc.public,
				"config/private.ini":  tc.private,
			})
			stages := tc.stages
			if stages == nil {
				stages = []string{"ostree", "image", "check", "manifest", "publish"}
			}
			runs := func(s string) bool { return slices.Contains(stages, s) }
			s, err := readOSTreeSettings(b)
			if err != nil {
				t.Fatal(err)
			}
			err = checkPrivateFlows(b, runs, &s, nil)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant %d: %q", err, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				w = strings.ReplaceAll(w, "@LOCAL@", b.LocalDir)
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("error %d:\n%s\nwant it to start with\n%s", i, got[i], w)
				}
			}
			for _, p := range config.PrivateValues(b.Config, b.Public) {
				if err != nil && strings.Contains(err.Error(), p.Value) {
					t.Errorf("the error shows the private value %q: %v", p.Value, err)
				}
			}
		})
	}
}
