package stage

import (
	"slices"

	"github.com/eib-builder/eib/lib/build"
)

// stageNames are the stages a buildscript may list, sorted (the error
// stage, ErrorStageName, runs only when another fails and is not listed).
var stageNames = []string{
	"check",
	"image",
	"manifest",
	"ostree",
	"publish",
}

// Known reports whether buildscript may list the stage name.
func Known(name string) bool { return slices.Contains(stageNames, name) }

// Names returns the stage names buildscript may list, sorted.
func Names() []string { return slices.Clone(stageNames) }

// StageRunners returns the stages of the plan that run, by name, and the
// error stage (under ErrorStageName), each constructed with the settings
// the plan resolved and validated (declare, then execute). A stage that
// does not run (not in the buildscript, or skipped) has no runner.
func (p *Plan) StageRunners() map[string]build.Stage {
	runners := map[string]build.Stage{ErrorStageName: errorStage{}}
	for _, name := range p.Stages {
		if _, skipped := p.Skipped[name]; skipped {
			continue
		}
		var s build.Stage
		switch r := p.settings; name {
		case "ostree":
			if r.ostree != nil {
				s = ostreeStage{s: *r.ostree}
			}
		case "image":
			if r.ostree != nil && r.disk != nil && r.output != nil {
				s = imageStage{ost: *r.ostree, disk: *r.disk, out: *r.output, fp: r.flatpak}
			}
		case "check":
			if r.check != nil {
				s = checkStage{s: *r.check}
			}
		case "manifest":
			s = manifestStage{}
		case "publish":
			s = publishStage{out: r.output}
		}
		if s != nil {
			runners[name] = s
		}
	}
	return runners
}
