package stage

import (
	"slices"
	"strings"
)

// Record is the plan as a build records it in its state (--until,
// --from): its JSON without the volatile keys, private values masked, as
// a map, and the fingerprint of that map (sha256 hex, see Fingerprint).
func (p *Plan) Record() (map[string]any, string, error) {
	m, err := p.fingerprintMap()
	if err != nil {
		return nil, "", err
	}
	fp, err := fingerprintOf(m)
	if err != nil {
		return nil, "", err
	}
	return m, fp, nil
}

// ResumeDiff names what differs between recorded, the Record of the plan
// of an earlier build, and this plan, in what the stages before p.From
// read (one "key: old, now new" line each, sorted): none, and --from
// p.From may continue that build. What only p.From and the stages after
// it read (laterKeys), and the error stage's hooks, may change.
func (p *Plan) ResumeDiff(recorded map[string]any) ([]string, error) {
	cur, err := p.fingerprintMap()
	if err != nil {
		return nil, err
	}
	return planDiff(p.onlyBefore(recorded), p.onlyBefore(cur)), nil
}

// laterKeys are the plan's keys that only a stage and the ones after it
// read (and the error stage's hooks, which did not run): a build may
// continue --from that stage when only they changed (a new check hook, a
// longer [check] boot_timeout).
var laterKeys = map[string][]string{
	"check":    {"check", "hooks.check"},
	"manifest": {"hooks.manifest"},
	"publish":  {"hooks.publish"},
}

// onlyBefore is a plan's fingerprint map without the keys that only
// p.From and the stages after it read.
func (p *Plan) onlyBefore(plan map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range plan {
		m[k] = v
	}
	drop := []string{"hooks." + ErrorStageName}
	from := slices.Index(p.Stages, p.From)
	for i, s := range p.Stages {
		if i >= from {
			drop = append(drop, laterKeys[s]...)
		}
	}
	for _, k := range drop {
		if sec, key, ok := strings.Cut(k, "."); ok {
			if sub, isMap := m[sec].(map[string]any); isMap {
				c := map[string]any{}
				for k2, v2 := range sub {
					if k2 != key {
						c[k2] = v2
					}
				}
				m[sec] = c
			}
		} else {
			delete(m, k)
		}
	}
	return m
}
