package farm

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// The pipeline is YAML that reads back as one job per variant, each
// keeping its results, and a report job needing them all.
func TestGitLabPipeline(t *testing.T) {
	c := testConfig()
	text, err := GitLab{Variants: c.Variants, EIB: "/usr/bin/eib", LocalDir: "/srv/my local", Published: c.Published}.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	py := "import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin)))"
	cmd := exec.Command("/usr/bin/python3", "-c", py)
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 yaml: %v\n%s", err, text)
	}
	type jobT struct {
		Stage  string   `json:"stage"`
		Tags   []string `json:"tags"`
		Script []string `json:"script"`
		Needs  []struct {
			Job string `json:"job"`
		} `json:"needs"`
		Artifacts struct {
			When string `json:"when"`
		} `json:"artifacts"`
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	p := map[string]jobT{}
	for k, v := range raw {
		if k == "stages" {
			continue
		}
		var j jobT
		if err := json.Unmarshal(v, &j); err != nil {
			t.Fatalf("job %s: %v", k, err)
		}
		p[k] = j
	}
	job := p["eib-demo-master-arm64-arm64-base"]
	if job.Stage != "build" || len(job.Tags) != 1 || job.Tags[0] != "eib-arm64" || job.Artifacts.When != "always" ||
		len(job.Script) != 1 || !strings.Contains(job.Script[0], "--localdir '/srv/my local'") || !strings.Contains(job.Script[0], "--variant demo-master-arm64-arm64-base") {
		t.Errorf("job of the arm64 variant: %+v", job)
	}
	if r := p["eib-report"]; len(r.Needs) != 2 || !strings.Contains(r.Script[0], "report --html") {
		t.Errorf("report job: %+v", r)
	}
}
