package farm

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/eib-builder/eib/lib/matrix"
)

// GitLab is the matrix as a GitLab CI child pipeline (for sites on
// GitLab rather than Buildbot): one job per variant on a runner tagged
// with its arch ("eib-<arch>"), each running `eib farm run` and keeping
// its results as artifacts whatever happened, and one report job that
// needs them all. One eib build per host is the runners' business
// (concurrent = 1 in each build host's runner configuration): GitLab has
// no worker lock.
type GitLab struct {
	Variants []matrix.Variant
	// EIB, LocalDir, Matrix and Published are as in Buildbot, on the
	// runners.
	EIB, LocalDir, Matrix, Published string
}

// Pipeline is the text of the child pipeline's .gitlab-ci.yml. Every
// scalar is written as a JSON string, which YAML reads as the same
// string.
func (g GitLab) Pipeline() (string, error) {
	if len(g.Variants) == 0 {
		return "", fmt.Errorf("no variant to build")
	}
	if g.EIB == "" {
		return "", fmt.Errorf("the eib executable must be set")
	}
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	var b strings.Builder
	b.WriteString("# GitLab CI child pipeline written by \"eib farm gitlab\": one job per variant.\n")
	b.WriteString("stages: [\"build\", \"report\"]\n\n")
	var jobs []string
	for _, v := range g.Variants {
		job := "eib-" + v.Name()
		jobs = append(jobs, job)
		cmd := []string{g.EIB, "farm", "run", "--variant", v.Name(), "--results", "results/" + v.Name()}
		if g.LocalDir != "" {
			cmd = append(cmd, "--localdir", g.LocalDir)
		}
		if g.Matrix != "" {
			cmd = append(cmd, "--matrix", g.Matrix)
		}
		if g.Published != "" {
			cmd = append(cmd, "--published", g.Published)
		}
		cmd = append(cmd, "--worker", "$CI_RUNNER_DESCRIPTION")
		for i, a := range cmd {
			if a != "$CI_RUNNER_DESCRIPTION" {
				cmd[i] = shellQuote(a)
			} else {
				cmd[i] = `"$CI_RUNNER_DESCRIPTION"`
			}
		}
		fmt.Fprintf(&b, "%s:\n  stage: \"build\"\n  tags: [%s]\n  script:\n    - %s\n", q(job), q("eib-"+v.Arch), q(strings.Join(cmd, " ")))
		b.WriteString("  artifacts:\n    when: \"always\"\n    paths: [" + q("results/"+v.Name()+"/") + "]\n\n")
	}
	fmt.Fprintf(&b, "%s:\n  stage: \"report\"\n  when: \"always\"\n  needs:\n", q("eib-report"))
	for _, j := range jobs {
		fmt.Fprintf(&b, "    - job: %s\n      artifacts: true\n", q(j))
	}
	fmt.Fprintf(&b, "  script:\n    - %s\n", q(shellQuote(g.EIB)+" report --html results/index.html results"))
	b.WriteString("  artifacts:\n    when: \"always\"\n    paths: [\"results/\"]\n")
	return b.String(), nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
