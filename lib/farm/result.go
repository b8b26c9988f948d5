// Package farm runs the variant matrix on a build farm engine: it writes
// the Buildbot master configuration that builds it (Buildbot), and
// describes what one variant's build left for the master (Result).
package farm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ResultFile, ManifestFile and LogFile are the files one variant's build
// leaves in its results directory, which the Buildbot build uploads to
// <master results>/<run>/<variant>/ (the results of one run).
const (
	ResultFile   = "result.json"
	ManifestFile = "manifest.json"
	LogFile      = "build.log"
)

// Results of a variant.
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultSkipped = "skipped" // its plan hash was published already
)

// Result is result.json: what `eib farm run` did for one variant.
type Result struct {
	Variant  string    `json:"variant"`
	Result   string    `json:"result"` // ResultOK, ResultFailed or ResultSkipped
	Reason   string    `json:"reason,omitempty"`
	ExitCode int       `json:"exit_code"`
	Worker   string    `json:"worker,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	// PlanHash is the variant's plan hash (before the build; the
	// manifest records the one of what was built).
	PlanHash   string `json:"plan_hash,omitempty"`
	OutVersion string `json:"outversion,omitempty"`
	// ImageFile and ImageSize (bytes) are the largest image file of the
	// build's outdir ("" and 0 when it made none).
	ImageFile string `json:"image_file,omitempty"`
	ImageSize int64  `json:"image_size,omitempty"`
	// Published is the release whose plan hash is the variant's
	// (ResultSkipped).
	Published string `json:"published,omitempty"`
}

// WriteResult writes r as dir/result.json.
func WriteResult(dir string, r Result) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ResultFile), append(data, '\n'), 0o644)
}

// ReadResult reads dir/result.json; the error names the file.
func ReadResult(dir string) (Result, error) {
	var r Result
	p := filepath.Join(dir, ResultFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", p, err)
	}
	return r, nil
}
