package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/tests/harness"
)

var update = flag.Bool("update", false, "rewrite the golden files of tests/cli/testdata")

var buildVersionRE = regexp.MustCompile(`(?m)^build_version = \d{6}-\d{6}$`)

// normalize replaces what changes between runs and machines.
func normalize(out, src string) string {
	out = buildVersionRE.ReplaceAllString(out, "build_version = @BUILD_VERSION@")
	return strings.ReplaceAll(out, src, "@SRCDIR@")
}

func TestShowConfigGolden(t *testing.T) {
	r := eib(t, fixture, "--product", "prod", "--arch", "arm64", "--platform", "board", "-P", "en_GB", "--show-config", "eos3.8")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	got := normalize(r.Stdout, fixture)
	golden := filepath.Join("testdata", "show-config.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("--show-config differs from %s (go test ./tests/cli -run ShowConfigGolden -update rewrites it):\n%s", golden, got)
	}
	if r.Stderr != "" {
		t.Errorf("stderr: %s", r.Stderr)
	}
}

func TestShowConfigOfTheShippedEosTree(t *testing.T) {
	r := eib(t, srcRoot, "--product", "eos", "--platform", "pinebookpro", "--show-config", "master")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"[build]\nproduct = eos\nbranch = master\n", "platform = pinebookpro\n", "series = master\n",
		"partition_table = dos\n", "srcdir = " + srcRoot + "\n", "dry_run = false\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "_add") || strings.Contains(r.Stdout, "_del") {
		t.Errorf("unmerged _add/_del keys in the output:\n%s", r.Stdout)
	}
	// Every product, arch and personality of the shipped tree loads.
	for _, args := range [][]string{
		{"-p", "eos", "-a", "arm64", "-P", "pt_BR"}, {"-p", "eos", "-a", "i386", "-P", "es"},
		{"-p", "eoscustom", "-P", "fr"}, {"-P", "en"}, {"-p", "eos", "-P", "base"},
	} {
		if r := eib(t, srcRoot, append(args, "--show-config")...); r.Code != 0 {
			t.Errorf("eib %s --show-config: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
}

func TestMergedListsOfShippedPersonality(t *testing.T) {
	r := eib(t, srcRoot, "-p", "eos", "-P", "es", "--explain", "flatpak-remote-eos-apps:apps")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"com.endlessm.encyclopedia.en = 0 (dropped)", "com.endlessm.encyclopedia.es = 1 (kept)",
		"(product_personality_eos_es): apps_del = com.endlessm.encyclopedia.en",
		"interpolated value:\n    com.endlessm.photos\n    com.endlessm.weather\n    com.endlessm.encyclopedia.es\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("--explain lacks %q:\n%s", want, r.Stdout)
		}
	}
}

func TestExplain(t *testing.T) {
	r := eib(t, fixture, "-p", "prod", "-a", "arm64", "--platform", "board", "-P", "en_GB", "--explain", "image:hooks")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	want := "[image] hooks\n" +
		"merged list: hooks_add* words count +1, hooks_del* words -1; words with a count above 0 are kept\n" +
		"  + @SRCDIR@/config/defaults.ini:13 (defaults): hooks_add = \n    10-first\n    20-second -> 10-first 20-second\n" +
		"  + @SRCDIR@/config/product/prod.ini:3 (product_prod): hooks_add = 30-third -> 30-third\n" +
		"  - @SRCDIR@/config/product/prod.ini:2 (product_prod): hooks_del = 20-second -> 20-second\n" +
		"counts:\n  10-first = 1 (kept)\n  20-second = 0 (dropped)\n  30-third = 1 (kept)\n" +
		"raw value:\n    10-first\n    30-third\n" +
		"interpolated value:\n    10-first\n    30-third\n" +
		"environment: EIB_IMAGE_HOOKS\n"
	if got := normalize(r.Stdout, fixture); got != want {
		t.Errorf("--explain image:hooks:\n%s\nwant:\n%s", got, want)
	}

	r = eib(t, fixture, "-p", "prod", "-a", "arm64", "--platform", "board", "-P", "en_GB", "--explain", "image:compression")
	want = "[image] compression\nset by:\n" +
		"  @SRCDIR@/config/defaults.ini:16 (defaults): compression = gz\n" +
		"  @SRCDIR@/config/platform/board.ini:2 (platform_board): compression = xz\n" +
		"raw value:\n    xz\ninterpolated value:\n    xz\nenvironment: EIB_IMAGE_COMPRESSION\n"
	if got := normalize(r.Stdout, fixture); r.Code != 0 || got != want {
		t.Errorf("--explain image:compression: exit %d\n%s\nwant:\n%s%s", r.Code, got, want, r.Stderr)
	}

	r = eib(t, fixture, "--explain", "build:outversion", "-a", "amd64")
	if r.Code != 0 || !strings.Contains(r.Stdout, "interpolated value:\n    eoscustom-master-amd64-amd64.") ||
		!strings.Contains(r.Stdout, "environment: EIB_OUTVERSION") {
		t.Errorf("--explain build:outversion: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestFlagsAfterBranchAndCombinedShortOptions(t *testing.T) {
	local := t.TempDir()
	r := eib(t, fixture, "eos3.8", "-a", "amd64", "-nd", local, "--show-config", "-p", "prod")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"branch = eos3.8\n", "series = eos3\n", "product = prod\n", "dry_run = true\n",
		"localdir = " + local + "\n", "localdatadir = ${localdir}/data\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
}

func TestDefaults(t *testing.T) {
	r := eib(t, fixture, "--show-config")
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	arch := map[string]string{"amd64": "amd64", "arm64": "arm64", "386": "i386"}[runtimeArch()]
	for _, want := range []string{
		"product = eoscustom\n", "branch = master\n", "personality = base\n", "arch = " + arch + "\n",
		"platform = " + arch + "\n", "use_production_ostree = false\n", "cachedir = /nonexistent/cache\n",
		"sysconfdir = ",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "localdir") {
		t.Errorf("localdir set without --localdir")
	}
}

func TestDeprecatedUseProduction(t *testing.T) {
	r := eib(t, fixture, "--use-production", "--show-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "use_production_ostree = true\n") ||
		!strings.Contains(r.Stderr, "--use-production is deprecated") {
		t.Errorf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	r = eib(t, fixture, "--use-production-ostree", "--show-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "use_production_ostree = true\n") || r.Stderr != "" {
		t.Errorf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestSrcDirFromResolvedExecutable(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "eib")
	data, err := os.ReadFile(eibBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	harness.WriteFiles(t, dir, map[string]string{"config/defaults.ini": "[build]\nfrom_tree = yes\n"})
	link := filepath.Join(t.TempDir(), "eib-link")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	env := []string{"EIB_SRCDIR="}
	tmp := t.TempDir()
	old := eibBin
	eibBin = link
	defer func() { eibBin = old }()
	r := eibEnv(t, append(env, "EIB_LOCK_FILE="+filepath.Join(tmp, "lock")), "--show-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "srcdir = "+dir+"\n") || !strings.Contains(r.Stdout, "from_tree = yes\n") {
		t.Errorf("exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

func TestUsageErrorsExit1(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"two branches":       {[]string{"master", "eos3.8", "--show-config"}, "eib: only one BRANCH may be given, got 2: master eos3.8"},
		"bad arch":           {[]string{"-a", "armhf", "--show-config"}, "eib: --arch armhf: not one of i386, amd64, arm64"},
		"unknown flag":       {[]string{"--frobnicate"}, "frobnicate"},
		"show and explain":   {[]string{"--show-config", "--explain", "image:hooks"}, "cannot be used together"},
		"bad explain ref":    {[]string{"--explain", "imagehooks"}, "expected SECTION:KEY"},
		"explain unset key":  {[]string{"--explain", "image:nope"}, "[image] nope: not set"},
		"negative timeout":   {[]string{"--lock-timeout", "-1"}, "--lock-timeout -1"},
		"missing localdir":   {[]string{"-d", "/nonexistent/local", "--show-config"}, "--localdir /nonexistent/local: not a directory"},
		"bad product name":   {[]string{"-p", "../x", "--show-config"}, "[build] product: \"../x\" is not a valid product name"},
		"missing flag value": {[]string{"--show-config", "-p"}, "-p"},
		// A build option before a subcommand would be silently ignored.
		"option before sign": {[]string{"-p", "demo", "sign", "/dev/null"}, `eib: --product given before "sign": a subcommand's options come after its name`},
		"option before lint": {[]string{"-d", "/tmp", "lint"}, `eib: --localdir given before "lint"`},
	} {
		t.Run(name, func(t *testing.T) {
			r := eib(t, fixture, tc.args...)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("exit %d, want 1 with %q\nstderr:\n%s", r.Code, tc.want, r.Stderr)
			}
			if strings.Contains(r.Stderr, "panic") || strings.Contains(r.Stderr, "goroutine") {
				t.Errorf("Go panic:\n%s", r.Stderr)
			}
		})
	}
}

func TestConfigErrorsExit1NamingFileLineSectionKey(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string // in the localdir
		want  string            // after the localdir path
	}{
		"syntax":                         {map[string]string{"config/defaults.ini": "[image]\nno delimiter here\n"}, "/config/defaults.ini:2: [image] \"no delimiter here\" is neither"},
		"duplicate key":                  {map[string]string{"config/defaults.ini": "[image]\na = 1\n\nA = 2\n"}, "/config/defaults.ini:4: [image] a: key already set in this section of this file (line 2)"},
		"duplicate section":              {map[string]string{"config/product/eoscustom.ini": "[s]\n[t]\n[s]\n"}, "/config/product/eoscustom.ini:3: [s] section \"s\" already exists"},
		"key before section":             {map[string]string{"config/defaults.ini": "a = 1\n"}, "/config/defaults.ini:1: \"a = 1\" comes before any [section] header"},
		"lone dollar":                    {map[string]string{"config/defaults.ini": "[publish]\nprice = 5$\n"}, "/config/defaults.ini:2: [publish] price: invalid interpolation syntax"},
		"bad reference in a merged list": {map[string]string{"config/defaults.ini": "[image]\nhooks_add = ${build:nope}\n"}, "/config/defaults.ini:2: [image] hooks_add_local_defaults: bad reference ${build:nope}: no key \"nope\" in [build] (while merging [image] hooks)"},
		"bad reference in a schema key":  {map[string]string{"config/defaults.ini": "[image]\ncompression = ${nosuch:key}\n"}, "/config/defaults.ini:2: [image] compression: bad reference ${nosuch:key}: no section [nosuch] (checking schema "},
		"lone dollar in a merged list":   {map[string]string{"config/defaults.ini": "[image]\nhooks_add = a$$b\n"}, "/config/defaults.ini:2: [image] hooks: the merged value \"10-first\\n20-second\\na$b\" is not valid"},
		"schema":                         {map[string]string{"config/defaults.ini": "[image]\ncompression = zstd\n"}, "/config/defaults.ini:2: [image] compression: \"zstd\" is not one of gz, xz, zst (schema "},
		"private add":                    {map[string]string{"config/defaults.ini": "[image]\nhooks_add = ${secret:hook}\n", "config/private.ini": "[secret]\nhook = x\n"}, "/config/defaults.ini:2: [image] hooks_add_local_defaults: bad reference ${secret:hook}: no section [secret] (while merging [image] hooks)"},
	} {
		t.Run(name, func(t *testing.T) {
			local := t.TempDir()
			harness.WriteFiles(t, local, tc.files)
			for _, mode := range [][]string{{"--show-config"}, {"--explain", "build:product"}, {}} {
				r := eib(t, fixture, append([]string{"-d", local}, mode...)...)
				lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
				if r.Code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "eib: "+local+tc.want) {
					t.Errorf("eib %s: exit %d, want 1 and one line starting with\neib: %s%s\nstderr:\n%s",
						strings.Join(mode, " "), r.Code, local, tc.want, r.Stderr)
				}
				if r.Stdout != "" {
					t.Errorf("stdout not empty:\n%s", r.Stdout)
				}
			}
		})
	}
}

func TestBadReferenceInPlainKeyFailsWhereRead(t *testing.T) {
	// Like EIB, a plain key is loaded and printed raw; its references are
	// resolved (and fail) only where it is read: --explain, lint, a build.
	local := t.TempDir()
	harness.WriteFiles(t, local, map[string]string{"config/defaults.ini": "[publish]\nurl = ${nosuch:key}\na = ${b}\nb = ${a}\n"})
	r := eib(t, fixture, "-d", local, "--show-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "[publish]\nurl = ${nosuch:key}\na = ${b}\nb = ${a}\n") {
		t.Errorf("--show-config: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = eib(t, fixture, "-d", local, "--explain", "publish:a")
	want := "eib: " + local + "/config/defaults.ini:3: [publish] a: more than 10 nested references: publish:a -> publish:b -> publish:a"
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, want) {
		t.Errorf("--explain publish:a: exit %d, want 1 and %q\n%s", r.Code, want, r.Stderr)
	}
	wantFindings(t, eib(t, fixture, "lint", "-d", local),
		local+"/config/defaults.ini:2: [publish] url: cannot be resolved: bad reference ${nosuch:key}: no section [nosuch]\n",
		local+"/config/defaults.ini:3: [publish] a: cannot be resolved: more than 10 nested references",
		local+"/config/defaults.ini:4: [publish] b: cannot be resolved: more than 10 nested references")
}

// wantFindings checks that an eib lint run exited 1 and printed each of
// the findings.
func wantFindings(t *testing.T, r harness.Result, findings ...string) {
	t.Helper()
	for _, want := range findings {
		if r.Code != 1 || !strings.Contains(r.Stdout, want) {
			t.Errorf("lint: exit %d, want 1 and %q\n%s%s", r.Code, want, r.Stdout, r.Stderr)
		}
	}
}

func TestLint(t *testing.T) {
	local := t.TempDir()
	harness.WriteFiles(t, local, map[string]string{
		"config/defaults.ini":     "[image]\ncompresion = xz\niso = true\n",
		"config/schema.ini":       "[image]\nsigning_key = path\n",
		"hooks/image/60-mine":     "echo \"$EIB_IMAGE_MINE\"\n",
		"config/product/prod.ini": "[image]\nmine = read by my hook\n",
	})
	// The fixture tree is no whole configuration: the plan's findings
	// (no [build] tmpdir...) come after the ones looked at here.
	r := eib(t, fixture, "lint", "-d", local, "-p", "prod", "-a", "amd64", "eos3.8")
	if i := strings.Index(r.Stdout, "\n[build] "); i >= 0 {
		r.Stdout = r.Stdout[:i+1]
	}
	want := local + "/config/defaults.ini:2: [image] compresion: not read by eib or by any hook\n" +
		local + "/config/defaults.ini:3: [image] iso: not read by eib: part of EIB's [image] iso (ISO images), which eib does not implement\n" +
		local + "/config/schema.ini:2: [image] signing_key: not a schema rule: a schema key ends in _required, _values or _type (EIB ignores this one)\n"
	if r.Code != 1 || !strings.HasSuffix(r.Stdout, want) || strings.Contains(r.Stdout, "[image] mine") {
		t.Errorf("lint: exit %d, want 1 and output ending in\n%s\ngot:\n%s%s", r.Code, want, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "eib lint: ") || !strings.Contains(r.Stderr, " finding(s)") {
		t.Errorf("lint: stderr %q", r.Stderr)
	}
	clean := t.TempDir()
	harness.WriteFiles(t, clean, map[string]string{"config/defaults.ini": "[image]\nhostname = box\n[ostree]\ngpg_verify = false\n"})
	if r := eib(t, srcRoot, "lint", "-d", clean, "-p", "demo", "-a", "amd64"); r.Code != 0 || r.Stdout != "" {
		t.Errorf("lint of keys eib reads: exit %d, want 0 and nothing\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// eib lint also reports what the build's plan refuses before it starts,
// as a build would: here gpg_verify with no trusted key.
func TestLintReportsWhatThePlanRefuses(t *testing.T) {
	local := t.TempDir()
	harness.WriteFiles(t, local, map[string]string{"config/defaults.ini": "[ostree]\ngpg_verify = true\n"})
	want := local + "/config/defaults.ini:2: [ostree] gpg_verify is on but no trusted key (*.asc) was found in"
	r := eib(t, srcRoot, "lint", "-d", local, "-p", "demo", "-a", "amd64")
	wantFindings(t, r, want)
	if !strings.Contains(r.Stderr, "eib lint: 1 finding(s)") {
		t.Errorf("lint: stderr %q, want 1 finding", r.Stderr)
	}
	if b := eib(t, srcRoot, "-d", local, "-p", "demo", "-a", "amd64", "-n"); b.Code != 1 || !strings.Contains(b.Stderr, want) {
		t.Errorf("a dry-run build: exit %d, want 1 and %q\n%s", b.Code, want, b.Stderr)
	}
}

// eib lint reports what the schema refuses with its other findings, in
// one round (a build stops at the schema's violations alone).
func TestLintReportsSchemaViolationsWithTheOtherFindings(t *testing.T) {
	local := t.TempDir()
	harness.WriteFiles(t, local, map[string]string{
		"config/defaults.ini": "[image]\ncompression = zstd\ncompresion = xz\n",
		"config/schema.ini":   "[image]\nsigning_key = path\n",
	})
	r := eib(t, fixture, "lint", "-d", local, "-a", "amd64")
	wantFindings(t, r,
		local+"/config/defaults.ini:2: [image] compression: \"zstd\" is not one of gz, xz, zst",
		local+"/config/defaults.ini:3: [image] compresion: not read by eib or by any hook\n",
		local+"/config/schema.ini:2: [image] signing_key: not a schema rule")
	if n := strings.Count(r.Stdout, "\n"); !strings.Contains(r.Stderr, fmt.Sprintf("eib lint: %d finding(s)", n)) {
		t.Errorf("lint: stderr %q, want the %d findings printed", r.Stderr, n)
	}
	if r := eib(t, fixture, "-d", local, "-a", "amd64", "--show-config"); r.Code != 1 || !strings.Contains(r.Stderr, "is not one of gz, xz, zst") {
		t.Errorf("--show-config still stops at the violation: exit %d\n%s", r.Code, r.Stderr)
	}
}

func TestSchemaViolationsAllReportedAtOnce(t *testing.T) {
	local := t.TempDir()
	harness.WriteFiles(t, local, map[string]string{
		"config/defaults.ini": "[image]\ncompression = zstd\n[build]\narch = sparc\n[check]\ndir = /nonexistent/x\n",
		"config/schema.ini":   "[check]\ndir_type = path\nneeded_required = true\n",
	})
	r := eib(t, fixture, "-d", local, "--show-config")
	if r.Code != 1 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		"eib: 3 schema violations:\n",
		local + "/config/defaults.ini:2: [image] compression: \"zstd\" is not one of gz, xz, zst",
		local + "/config/defaults.ini:6: [check] dir: \"/nonexistent/x\": no such path: /nonexistent/x (schema " + local + "/config/schema.ini:2)",
		"[check] needed: required but not set (schema " + local + "/config/schema.ini:3)",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
}

// A plan error (here an unknown stage) is a configuration error: exit 1;
// a failure of the build itself exits 2. Either is the final line.
func TestPlanErrorExits1AndBuildFailureExits2WithFinalLine(t *testing.T) {
	local := t.TempDir()
	cache := t.TempDir()
	harness.WriteFiles(t, local, map[string]string{
		"config/defaults.ini":          "[build]\ncachedir = " + cache + "\n[image]\ntypo_key = 1\n[publish]\nhooks = 10-fails\n",
		"config/product/eoscustom.ini": "[image]\ntypo_key = 2\n",
		"buildscript":                  "no-such-stage\n",
		"hooks/publish/10-fails":       "exit 3\n",
	})
	r := eib(t, srcRoot, "-d", local, "master")
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if r.Code != 1 || !strings.HasPrefix(lines[len(lines)-1], "eib: ") || !strings.Contains(r.Stderr, "no-such-stage") {
		t.Errorf("exit %d, want 1 with the error as the final line\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	harness.WriteFiles(t, local, map[string]string{"buildscript": "publish\n"})
	r2 := eib(t, srcRoot, "-d", local, "master")
	lines2 := strings.Split(strings.TrimRight(r2.Stderr, "\n"), "\n")
	if r2.Code != 2 || !strings.HasPrefix(lines2[len(lines2)-1], "eib: build failed in stage publish, hook publish/10-fails") {
		t.Errorf("exit %d, want 2 with the failure as the final line\nstdout:\n%s\nstderr:\n%s", r2.Code, r2.Stdout, r2.Stderr)
	}
	// A key nothing reads is warned about once, where it was last set.
	warning := "eib: warning: " + local + "/config/product/eoscustom.ini:2: [image] typo_key: not read by eib or by any hook\n"
	if strings.Count(r.Stderr, "typo_key") != 1 || !strings.Contains(r.Stderr, warning) {
		t.Errorf("stderr lacks, once, %q:\n%s", warning, r.Stderr)
	}
}

func TestShowConfigTakesNoLock(t *testing.T) {
	lockFile := filepath.Join(t.TempDir(), "eib.lock")
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r := eibEnv(t, []string{"EIB_SRCDIR=" + fixture, "EIB_LOCK_FILE=" + lockFile}, "--lock-timeout", "0", "--show-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "[build]\n") {
		t.Errorf("--show-config with the lock held: exit %d\n%s", r.Code, r.Stderr)
	}
	r = eibEnv(t, []string{"EIB_SRCDIR=" + fixture, "EIB_LOCK_FILE=" + lockFile}, "--lock-timeout", "0", "--explain", "image:hooks")
	if r.Code != 0 {
		t.Errorf("--explain with the lock held: exit %d\n%s", r.Code, r.Stderr)
	}
}
