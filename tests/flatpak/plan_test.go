package flatpak

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/tests/harness"
)

// pathWithoutFlatpak is a PATH of one directory holding links to every
// program of the host's PATH but flatpak: a host without Debian's flatpak.
func pathWithoutFlatpak(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name() == "flatpak" || strings.HasPrefix(e.Name(), "flatpak-") {
				continue
			}
			_ = os.Symlink(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name())) // the first of PATH wins
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ostree")); err != nil {
		t.Fatalf("no ostree in PATH %s", os.Getenv("PATH"))
	}
	return dir
}

// showPlan runs eib --show-plan of the demo product with PATH path.
func showPlan(t *testing.T, p *harness.Project, path string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := p.Command(ctx, eibBin, srcRoot, "--product", "demo", "--show-plan", "master")
	cmd.Env = append(cmd.Env, "PATH="+path)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), harness.Code(t, err, cmd)
}

// TestPlanNeedsFlatpakOnlyWithApps: on a host without the flatpak command,
// a build with an enabled remote is refused by the plan (exit 1, naming
// [flatpak] enable and the remote), and one with [flatpak] enable = false,
// or no remote, plans as before; with flatpak, the plan shows the remote
// with its merged lists.
func TestPlanNeedsFlatpakOnlyWithApps(t *testing.T) {
	noFlatpak := pathWithoutFlatpak(t)
	if _, err := exec.LookPath("flatpak"); err != nil {
		t.Fatal("flatpak is not installed: run make deps")
	}
	demo := harness.DemoRepo(t)
	remote := "[flatpak-remote-apps]\nurl = http://127.0.0.1:9/\napps_add = org.eib.test.Hello org.eib.test.Clock\napps_del = org.eib.test.Clock\nexclude_add = org.eib.test.Clock.Codecs\n"
	for _, tc := range []struct {
		name, config string
		path         string
		code         int
		want         string
	}{
		{"no remote, no flatpak", "", noFlatpak, 0, ""},
		{"enable false, no flatpak", "[flatpak]\nenable = false\n\n" + remote, noFlatpak, 0, ""},
		{"remote disabled, no flatpak", strings.Replace(remote, "url =", "enable = false\nurl =", 1), noFlatpak, 0, ""},
		{"remote, no flatpak", remote, noFlatpak, 1, "[flatpak] enable = true with the remotes [flatpak-remote-apps], but the flatpak command is not installed"},
		{"remote without url", "[flatpak-remote-apps]\napps_add = a.b\n", os.Getenv("PATH"), 1, "[flatpak-remote-apps] url: not set, and no repo_file gives one"},
		{"remote", remote, os.Getenv("PATH"), 0, `"apps": [
          "org.eib.test.Hello"
        ],`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := harness.NewProject(t)
			demo.Install(t, p.Local)
			p.Write("config/defaults.ini", "[build]\ncachedir = "+p.Cache+"\n\n"+tc.config, 0o644)
			stdout, stderr, code := showPlan(t, p, tc.path)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, stdout, stderr)
			}
			if tc.code != 0 {
				if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "config/defaults.ini") {
					t.Errorf("stderr lacks %q located in the file:\n%s", tc.want, stderr)
				}
				return
			}
			var plan map[string]any
			if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
				t.Fatal(err)
			}
			if _, has := plan["flatpak"]; has != (tc.want != "") || !strings.Contains(stdout, tc.want) {
				t.Errorf("plan's flatpak section: want %q\n%s", tc.want, stdout)
			}
		})
	}
}
