package stage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
)

// The parts of a plan that validate resolves from the configuration: what
// the build will pull, lay out, write, boot and run, as typed values that
// `eib --show-plan` prints as JSON and whose hash (Fingerprint) ties the
// state of a build (--until, --from) to the plan it was built with.
//
// No private value appears here: the values are the ones checkPrivateFlows
// allows into the image and the published files, or paths of files.

// PlanOSTree is the OSTree source of the build.
type PlanOSTree struct {
	PullURL   string `json:"pull_url"`
	PullKey   string `json:"pull_url_key"` // the key PullURL comes from
	DeployURL string `json:"deploy_url"`
	Remote    string `json:"remote"`
	Ref       string `json:"ref"`
	RefDeploy string `json:"ref_deploy"`
	OS        string `json:"os"`
	GPGVerify bool   `json:"gpg_verify"`
	// TrustedKeys are the public key files imported into the remote.
	TrustedKeys []string `json:"trusted_keys"`
}

// PlanPartition is one partition of the disk layout.
type PlanPartition struct {
	Role    string `json:"role"`
	Start   int64  `json:"start,omitempty"` // sectors; 0: after the previous one
	Size    int64  `json:"size,omitempty"`  // sectors; 0: the rest of the disk
	Type    string `json:"type,omitempty"`  // GPT type GUID
	MBRType string `json:"mbr_type,omitempty"`
	FS      string `json:"fs,omitempty"`
	Label   string `json:"label,omitempty"`
}

// PlanLayout is the platform and disk layout of the image.
type PlanLayout struct {
	Arch           string          `json:"arch"`
	Platform       string          `json:"platform"`
	PartitionTable string          `json:"partition_table"`
	Partitions     []PlanPartition `json:"partitions"`
	Bootloader     string          `json:"bootloader"`
	// Firmware lists the firmware interfaces the image boots with.
	Firmware []string `json:"firmware"`
}

// PlanImage are the outputs of the image stage.
type PlanImage struct {
	Compression string `json:"compression"` // "" for none
	QCOW2       bool   `json:"qcow2"`
	SigningKey  string `json:"signing_key,omitempty"` // the key file
	Signed      bool   `json:"signed"`
	// Artifacts are the names of the artifact formats built of each
	// disk, in build order (artifact.Selected).
	Artifacts []string `json:"artifacts"`
}

// PlanCheck are the settings of the check stage.
type PlanCheck struct {
	Boot bool `json:"boot"`
	// Firmwares are the firmwares the image will be booted with (empty
	// when boot is off or the image stage does not run).
	Firmwares   []string `json:"firmwares"`
	TimeoutSecs int      `json:"timeout_secs"`
	Marker      string   `json:"marker"`
	MemoryMiB   int      `json:"memory_mib"`
	Accel       string   `json:"accel"`
	AccelFrom   string   `json:"accel_from"`
}

// volatileKeys are the plan's JSON keys left out of its fingerprint: the
// options of one run, not what is built (a --dry-run run may continue a
// build with --from).
var volatileKeys = []string{"dry_run", "skipped"}

// JSON is the plan as indented JSON (what --show-plan prints), every
// private value masked.
func (p *Plan) JSON() ([]byte, error) {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return p.mask(data), nil
}

// mask replaces every private value in the JSON data with buildlog.Mask
// (as the build log does): a value the plan resolved may hold one where
// the image never sees it (a pull_url with credentials, with a public
// deploy_url).
func (p *Plan) mask(data []byte) []byte {
	for _, s := range p.secrets { // longest first (config.PrivateStrings)
		if len(s) < config.MinPrivateLen {
			continue
		}
		esc, err := json.Marshal(s)
		if err != nil {
			continue
		}
		data = bytes.ReplaceAll(data, esc[1:len(esc)-1], []byte(buildlog.Mask))
	}
	return data
}

// fingerprintMap is the plan's JSON without the volatile keys, as a map.
func (p *Plan) fingerprintMap() (map[string]any, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	data = p.mask(data)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	for _, k := range volatileKeys {
		delete(m, k)
	}
	return m, nil
}

// Fingerprint is the sha256 of the plan's JSON without its volatile keys.
func (p *Plan) Fingerprint() (string, error) {
	m, err := p.fingerprintMap()
	if err != nil {
		return "", err
	}
	return fingerprintOf(m)
}

func fingerprintOf(m map[string]any) (string, error) {
	data, err := json.Marshal(m) // map keys sorted
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// planDiff names the keys (dotted paths) whose values differ between two
// plans' fingerprint maps, with both values, sorted.
func planDiff(old, cur map[string]any) []string {
	fo, fc := map[string]string{}, map[string]string{}
	flatten("", old, fo)
	flatten("", cur, fc)
	keys := map[string]bool{}
	for k := range fo {
		keys[k] = true
	}
	for k := range fc {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if fo[k] != fc[k] {
			o, c := fo[k], fc[k]
			if o == "" {
				o = "(none)"
			}
			if c == "" {
				c = "(none)"
			}
			out = append(out, fmt.Sprintf("%s: %s, now %s", k, o, c))
		}
	}
	sort.Strings(out)
	return out
}

func flatten(prefix string, v any, out map[string]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			flatten(strings.TrimPrefix(prefix+"."+k, "."), e, out)
		}
	case []any:
		for i, e := range t {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	default:
		data, _ := json.Marshal(t)
		out[prefix] = string(data)
	}
}
