package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/disk"
)

// plansDir holds one golden plan per shipped variant, and the localdir the
// plans are made with (data/keys: a trusted key, as gpg_verify needs one).
var plansDir = filepath.Join("testdata", "plans")

// planEpoch fixes [build] build_version (and so the outversion).
const planEpoch = "SOURCE_DATE_EPOCH=1700000000"

// boards are the platforms that are not an arch of config/arch and have no
// config/platform file, which disk.ForPlatform lays out.
var boards = []string{"rpi"}

// planVariant is one product/arch/platform build of the shipped tree.
type planVariant struct{ product, arch, platform string }

func (v planVariant) golden() string {
	return filepath.Join(plansDir, v.product+"-"+v.arch+"-"+v.platform+".json")
}

// shippedVariants are the products of config/product × the arches of
// config/arch × the platforms (the arches, config/platform, boards) that
// disk.ForPlatform lays out for that arch, with either partition table.
func shippedVariants(t *testing.T) []planVariant {
	t.Helper()
	names := func(dir string) []string {
		files, err := filepath.Glob(filepath.Join(srcRoot, "config", dir, "*.ini"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no config/%s/*.ini (%v)", dir, err)
		}
		var out []string
		for _, f := range files {
			out = append(out, strings.TrimSuffix(filepath.Base(f), ".ini"))
		}
		return out
	}
	products, arches := names("product"), names("arch")
	platforms := append(append(append([]string(nil), arches...), names("platform")...), boards...)
	var out []planVariant
	for _, product := range products {
		for _, arch := range arches {
			for _, platform := range platforms {
				_, gpt := disk.ForPlatform(disk.Params{Arch: arch, Platform: platform, PartitionTable: disk.GPT})
				_, dos := disk.ForPlatform(disk.Params{Arch: arch, Platform: platform, PartitionTable: disk.DOS})
				if gpt == nil || dos == nil {
					out = append(out, planVariant{product, arch, platform})
				}
			}
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
