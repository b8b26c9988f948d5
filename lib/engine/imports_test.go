package engine

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEngineImportsNoDomainPackage: the engine runs the stages it is
// given and knows none of them; of eib's packages it may import only
// these.
func TestEngineImportsNoDomainPackage(t *testing.T) {
	allowed := map[string]bool{"build": true, "buildlog": true, "cgroup": true, "config": true, "hooks": true,
		"hostclean": true, "lock": true, "stage": true}
	files, _ := filepath.Glob("*.go")
	if len(files) == 0 {
		t.Fatal("no Go files")
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if pkg, ok := strings.CutPrefix(path, "github.com/eib-builder/eib/lib/"); ok && !allowed[pkg] {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
