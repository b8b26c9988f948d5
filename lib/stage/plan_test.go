package stage

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseBuildscript(t *testing.T) {
	known := func(s string) bool { return s == "ostree" || s == "image" || s == "publish" }
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"comments and blanks", "# head\nostree\n\n  image   # trailing\npublish\n", []string{"ostree", "image", "publish"}, ""},
		{"subset", "publish\n", []string{"publish"}, ""},
		{"empty", "# nothing\n", nil, ""},
		{"unknown stage names file and line", "ostree\nimgae\n", nil, "bs:2: unknown stage \"imgae\""},
		{"two names on a line", "ostree image\n", nil, "bs:1: \"ostree image\": one stage name per line"},
		{"repeated", "image\nostree\nimage\n", nil, "bs:3: stage \"image\" already listed on line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBuildscript(strings.NewReader(tc.in), "bs", known)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
