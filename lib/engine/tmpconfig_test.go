package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/stage"
)

// [build] tmpconfig and tmpfullconfig (EIB_TMPCONFIG, EIB_TMPFULLCONFIG for
// hooks) say where the merged configurations are written.
func TestConfigFilesAreWrittenWhereTmpconfigKeysSay(t *testing.T) {
	e := newEnv(t, "t-one\n")
	for _, c := range []string{"full", "public"} {
		cfg := e.loaded.Full
		if c == "public" {
			cfg = e.loaded.Public
		}
		cfg.Set("build", "tmpconfig", "${tmpdir}/public.ini")
		cfg.Set("build", "tmpfullconfig", "${builddir}/full.ini")
	}
	p, err := stage.NewPlan(e.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(e.cache, "build")
	if p.ConfigFile != b+"/tmp/public.ini" || p.FullConfigFile != b+"/full.ini" {
		t.Fatalf("plan config files %s %s", p.ConfigFile, p.FullConfigFile)
	}
	if err := execute(context.Background(), e.opts(t)); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(p.ConfigFile)
	if err != nil || strings.Contains(string(pub), "very-secret") || !strings.Contains(string(pub), "tmpfullconfig = ${builddir}/full.ini") {
		t.Errorf("%s (%v):\n%s", p.ConfigFile, err, pub)
	}
	if full, err := os.ReadFile(p.FullConfigFile); err != nil || !strings.Contains(string(full), "very-secret-token") {
		t.Errorf("%s (%v):\n%s", p.FullConfigFile, err, full)
	}
	for _, old := range []string{"config.ini", "fullconfig.ini"} {
		if _, err := os.Stat(filepath.Join(b, "tmp", old)); err == nil {
			t.Errorf("%s written although the keys name other files", old)
		}
	}

	// A relative path is refused before anything is touched.
	e.loaded.Full.Set("build", "tmpfullconfig", "full.ini")
	if _, err := stage.NewPlan(e.opts(t)); err == nil || !strings.Contains(err.Error(), `[build] tmpfullconfig: "full.ini" is a relative path`) {
		t.Errorf("relative tmpfullconfig: %v", err)
	}
}
