package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/stage"
)

// State is what a build persisted after its stages: the plan it ran
// (and its fingerprint), and after each completed stage the results that
// the later stages read from the build.
type State struct {
	Fingerprint string         `json:"fingerprint"`
	Plan        map[string]any `json:"plan"` // the plan without its volatile keys
	// BuildVersion is the plan's [build] build_version, which --from
	// reuses so that both halves make the same outversion.
	BuildVersion string `json:"build_version"`
	// Completed are the stages that ran to the end, in order, each with
	// the results as they were after it.
	Completed []StageResults `json:"completed"`
}

// StageResults are the results of the build after one stage, and the
// variables the stages set for the later hooks.
type StageResults struct {
	Stage string `json:"stage"`
	build.Results
	Env map[string]string `json:"env"` // set by the stages (OSTREE_DEPLOYMENT, EIB_CHECK_*)
}

// engineEnv are the variables the engine sets itself at each run: not a
// stage's result.
var engineEnv = []string{"EIB_PROGRAM", "EIB_ERROR_STAGE", "EIB_ERROR_HOOK", "EIB_ERROR_LOG"}

func resultsOf(name string, b *build.Build) StageResults {
	r := StageResults{Stage: name, Results: b.Results, Env: map[string]string{}}
	for _, kv := range b.ExtraEnv() {
		k, v, _ := strings.Cut(kv, "=")
		if !slices.Contains(engineEnv, k) {
			r.Env[k] = v
		}
	}
	return r
}

// restore puts the results into a new build.
func (r StageResults) restore(b *build.Build) {
	b.Results = r.Results
	b.Timings = append([]build.Timing(nil), r.Timings...)
	for k, v := range r.Env {
		b.SetEnv(k, v)
	}
}

// newState is the empty state of plan p.
func newState(p *stage.Plan) (*State, error) {
	m, fp, err := p.Record()
	if err != nil {
		return nil, err
	}
	return &State{Fingerprint: fp, Plan: m, BuildVersion: p.BuildVersion, Completed: []StageResults{}}, nil
}

// saveState records that stage completed, with the build's results, in
// the state file p.StateFile (written to a temporary file, then renamed).
func saveState(p *stage.Plan, st *State, name string, b *build.Build) error {
	st.Completed = append(st.Completed, resultsOf(name, b))
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := p.StateFile + ".new"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("build state: %w", err)
	}
	if err := os.Rename(tmp, p.StateFile); err != nil {
		return fmt.Errorf("build state: %w", err)
	}
	return nil
}

// ReadState reads the state file of a tmpdir (stage.StateFileName in it);
// (nil, nil) when there is none. An error names the file.
func ReadState(tmpdir string) (*State, error) {
	path := tmpdir + "/" + stage.StateFileName
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("build state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("build state %s: %w", path, err)
	}
	return &st, nil
}

// resume checks that --from p.From may continue the build st records and
// returns the state to continue, truncated to the stages before p.From,
// and the results to start from. Every stage of the plan before p.From
// that runs must have completed; a stage at or after p.From may have run
// already (it runs again: iterate on the check, manifest or publish hooks).
func resume(p *stage.Plan, st *State) (*State, *StageResults, error) {
	if st == nil {
		return nil, nil, fmt.Errorf("--from %s: no build to continue: %s does not exist (run the build, or eib --until STAGE, first)", p.From, p.StateFile)
	}
	_, fp, err := p.Record()
	if err != nil {
		return nil, nil, err
	}
	if fp != st.Fingerprint {
		diff, err := p.ResumeDiff(st.Plan)
		if err != nil {
			return nil, nil, err
		}
		if len(diff) == 0 {
			// Only what p.From and the stages after it read changed.
			return resumeAt(p, st)
		}
		if len(diff) > 10 {
			diff = append(diff[:10], fmt.Sprintf("... and %d more", len(diff)-10))
		}
		return nil, nil, fmt.Errorf("--from %s: the plan differs from the one of the build in %s (eib --show-plan prints it):\n  %s",
			p.From, p.StateFile, strings.Join(diff, "\n  "))
	}
	return resumeAt(p, st)
}

// resumeAt is resume once the plans agree.
func resumeAt(p *stage.Plan, st *State) (*State, *StageResults, error) {
	var before []string
	for _, s := range p.Stages {
		if s == p.From {
			break
		}
		if _, skipped := p.Skipped[s]; !skipped {
			before = append(before, s)
		}
	}
	last := "none"
	if n := len(st.Completed); n > 0 {
		last = st.Completed[n-1].Stage
	}
	if len(before) == 0 {
		return nil, nil, fmt.Errorf("--from %s: %s is the first stage: run the build without --from", p.From, p.From)
	}
	for i, s := range before {
		if i >= len(st.Completed) || st.Completed[i].Stage != s {
			return nil, nil, fmt.Errorf("--from %s: stage %s of the build in %s has not completed (last completed stage: %s): --from %s needs every stage before it (%s) completed",
				p.From, s, p.StateFile, last, p.From, strings.Join(before, ", "))
		}
	}
	kept := *st
	// The state goes on with the current plan.
	kept.Plan, kept.Fingerprint = nil, ""
	if cur, err := newState(p); err == nil {
		kept.Plan, kept.Fingerprint = cur.Plan, cur.Fingerprint
	}
	kept.Completed = append([]StageResults(nil), st.Completed[:len(before)]...)
	r := kept.Completed[len(before)-1]
	return &kept, &r, nil
}

// CheckResume checks, before the lock, that --from p.From can continue
// the build recorded in the state file p.StateFile (the same plan in what
// the stages before p.From read, every stage before p.From completed):
// an error is a usage error. Run checks again under the lock. nil when
// p.From is "".
func CheckResume(p *stage.Plan) error {
	if p.From == "" {
		return nil
	}
	st, err := ReadState(p.TmpDir)
	if err != nil {
		return err
	}
	_, _, err = resume(p, st)
	return err
}
