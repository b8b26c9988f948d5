package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/platform"
)

// plansDir holds one golden plan per shipped variant, and the localdir the
// plans are made with (data/keys: a trusted key, as gpg_verify needs one).
var plansDir = filepath.Join("testdata", "plans")

// planEpoch fixes [build] build_version (and so the outversion).
const planEpoch = "SOURCE_DATE_EPOCH=1700000000"

// planVariant is one product/arch/platform build of the shipped tree.
type planVariant struct{ product, arch, platform string }

func (v planVariant) golden() string {
	return filepath.Join(plansDir, v.product+"-"+v.arch+"-"+v.platform+".json")
}

// shippedVariants are the products of config/product × the platforms of
// eib's platform table (lib/platform: every arch's generic image and its
// boards).
func shippedVariants(t *testing.T) []planVariant {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(srcRoot, "config", "product", "*.ini"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no config/product/*.ini (%v)", err)
	}
	var out []planVariant
	for _, f := range files {
		product := strings.TrimSuffix(filepath.Base(f), ".ini")
		for _, pl := range platform.All() {
			out = append(out, planVariant{product, pl.Arch, pl.Name})
		}
	}
	return out
}

// TestShowPlanGoldenOfEveryShippedVariant: the plan of every shipped
// product, arch and platform (personality base) is the golden file of
// testdata/plans, so that any change in what a build would pull, lay out,
// write, boot or run shows in review (go test ./tests/cli -run
// ShowPlanGolden -update rewrites them). No root needed: --show-plan only
// reads the configuration and the files it names.
func TestShowPlanGoldenOfEveryShippedVariant(t *testing.T) {
	local, err := filepath.Abs(filepath.Join(plansDir, "localdir"))
	if err != nil {
		t.Fatal(err)
	}
	variants := shippedVariants(t)
	if len(variants) < 3 {
		t.Fatalf("only %d variants: %v", len(variants), variants)
	}
	want := map[string]bool{}
	for _, v := range variants {
		want[filepath.Base(v.golden())] = true
		t.Run(v.product+"/"+v.arch+"/"+v.platform, func(t *testing.T) {
			r := eibEnv(t, []string{"EIB_SRCDIR=" + srcRoot, planEpoch}, "--product", v.product, "--arch", v.arch,
				"--platform", v.platform, "-P", "base", "--localdir", local, "--show-plan", "master")
			if r.Code != 0 {
				t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
			}
			var plan map[string]any
			if err := json.Unmarshal([]byte(r.Stdout), &plan); err != nil {
				t.Fatalf("--show-plan is not JSON: %v\n%s", err, r.Stdout)
			}
			if plan["outversion"] != v.product+"-master-"+v.arch+"-"+v.platform+".231114-221320.base" {
				t.Errorf("outversion = %v", plan["outversion"])
			}
			cache, _ := plan["cachedir"].(string)
			got := strings.ReplaceAll(r.Stdout, local, "@LOCALDIR@")
			got = strings.ReplaceAll(got, srcRoot, "@SRCDIR@")
			if cache != "" {
				got = strings.ReplaceAll(got, cache, "@CACHEDIR@")
			}
			if *update {
				if err := os.WriteFile(v.golden(), []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(v.golden())
			if err != nil {
				t.Fatalf("%v (go test ./tests/cli -run ShowPlanGolden -update writes it)", err)
			}
			if got != string(golden) {
				t.Errorf("--show-plan differs from %s (go test ./tests/cli -run ShowPlanGolden -update rewrites it):\n%s", v.golden(), got)
			}
		})
	}
	// No golden file of a variant that is gone.
	files, _ := filepath.Glob(filepath.Join(plansDir, "*.json"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s: no such variant any more (remove it)", f)
		}
	}
}

// TestShowPlanMasksPrivateValuesAndTakesNoLock: a private value (here the
// credentials of a pull_url, allowed with a public deploy_url) never
// appears in --show-plan, which prints while another build holds the lock.
func TestShowPlanMasksPrivateValuesAndTakesNoLock(t *testing.T) {
	local := t.TempDir()
	keys, _ := filepath.Glob(filepath.Join(plansDir, "localdir", "data", "keys", "*.asc"))
	key, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-Passw0rd"
	files := map[string]string{
		"data/keys/trusted.asc": string(key),
		"config/defaults.ini":   "[ostree]\ndeploy_url = https://ostree.example.org/repo\n",
		"config/private.ini":    "[ostree]\npull_url = https://builder:" + secret + "@ostree.example.org/repo\n",
	}
	for rel, text := range files {
		p := filepath.Join(local, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := eibEnv(t, []string{"EIB_SRCDIR=" + srcRoot, "EIB_LOCK_FILE=" + heldLock(t)}, "--product", "demo", "--arch", "amd64",
		"--localdir", local, "--lock-timeout", "60", "--show-plan")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stdout, secret) || strings.Contains(r.Stderr, secret) {
		t.Errorf("--show-plan shows the private value:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stdout, `"pull_url": "***"`) {
		t.Errorf("--show-plan does not show the masked pull_url:\n%s", r.Stdout)
	}
}

// TestShowPlanOfAMistakeExits1: --show-plan validates like a build.
func TestShowPlanOfAMistakeExits1(t *testing.T) {
	local := t.TempDir()
	os.MkdirAll(filepath.Join(local, "config"), 0o755)
	os.WriteFile(filepath.Join(local, "config", "defaults.ini"), []byte("[ostree]\ngpg_verify = false\n[image]\ncompression = zip\n"), 0o644)
	r := eibEnv(t, []string{"EIB_SRCDIR=" + srcRoot}, "--product", "demo", "--arch", "amd64", "--localdir", local, "--show-plan")
	if r.Code != 1 || !strings.Contains(r.Stderr, "[image] compression") || r.Stdout != "" {
		t.Errorf("exit %d, want 1 naming [image] compression\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestFromReusesTheBuildVersionAndRefusesWhatItCannotContinue: eib
// --from continues the build recorded in tmpdir with that build's
// build_version (so both halves make the same outversion, without
// SOURCE_DATE_EPOCH); without a recorded build, or with a stage that is
// not in the buildscript, it exits 1 before the lock.
func TestFromReusesTheBuildVersionAndRefusesWhatItCannotContinue(t *testing.T) {
	local := t.TempDir()
	cache := filepath.Join(t.TempDir(), "cache")
	os.MkdirAll(filepath.Join(local, "config"), 0o755)
	os.WriteFile(filepath.Join(local, "config", "defaults.ini"), []byte("[build]\ncachedir = "+cache+"\n[ostree]\ngpg_verify = false\n"), 0o644)
	args := []string{"--product", "demo", "--arch", "amd64", "--localdir", local}
	env := []string{"EIB_SRCDIR=" + srcRoot, "EIB_LOCK_FILE=" + heldLock(t), "SOURCE_DATE_EPOCH="}

	r := eibEnv(t, env, append(args, "--from", "check")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "--from check: no build to continue: "+filepath.Join(cache, "build", "tmp", "state.json")+" does not exist") {
		t.Errorf("--from without a build: exit %d\n%s", r.Code, r.Stderr)
	}
	r = eibEnv(t, env, append(args, "--until", "imgae")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "--until imgae: not a stage of "+filepath.Join(srcRoot, "buildscript")+" (ostree, image, check, manifest, publish)") {
		t.Errorf("--until imgae: exit %d\n%s", r.Code, r.Stderr)
	}

	tmp := filepath.Join(cache, "build", "tmp")
	os.MkdirAll(tmp, 0o755)
	os.WriteFile(filepath.Join(tmp, "state.json"), []byte(`{"build_version": "200102-030405", "completed": []}`), 0o644)
	r = eibEnv(t, env, append(args, "--from", "check", "--show-plan")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, `"outversion": "demo-master-amd64-amd64.200102-030405.base"`) {
		t.Errorf("--from --show-plan: exit %d, want the recorded build_version\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = eibEnv(t, env, append(args, "--from", "check")...)
	if r.Code != 1 || !strings.Contains(r.Stderr, "--from check: the plan differs from the one of the build in") {
		t.Errorf("--from a build of another plan: exit %d\n%s", r.Code, r.Stderr)
	}
}
