package manifest

import "github.com/eib-builder/eib/lib/planhash"

// PlanHashFile is eib's fragment with the build's plan hash.
const PlanHashFile = "plan-hash.json"

// PlanHashKey is the manifest's top-level key of the plan hash.
const PlanHashKey = "plan_hash"

// PlanHashInfo is the manifest's "plan_hash" object: the hash and, to
// tell why two builds' hashes differ, the inputs' own values and digests
// (the configuration as its sha256, not its text).
type PlanHashInfo struct {
	Hash         string            `json:"hash"`   // "sha256:<hex>" (planhash.Inputs.Sum)
	Scheme       string            `json:"scheme"` // planhash.Scheme
	ConfigSHA256 string            `json:"config_sha256"`
	OSTreeCommit string            `json:"ostree_commit"`
	EIBVersion   string            `json:"eib_version"`
	Files        map[string]string `json:"files"`
	Flatpak      map[string]string `json:"flatpak"`
}

// PlanHash is the plan-hash.json fragment of in.
func PlanHash(in planhash.Inputs) map[string]any {
	files, flatpak := in.Files, in.Flatpak
	if files == nil {
		files = map[string]string{}
	}
	if flatpak == nil {
		flatpak = map[string]string{}
	}
	return map[string]any{PlanHashKey: PlanHashInfo{
		Hash: in.Sum(), Scheme: planhash.Scheme, ConfigSHA256: planhash.TextSum(in.Config),
		OSTreeCommit: in.OSTreeCommit, EIBVersion: in.EIBVersion, Files: files, Flatpak: flatpak,
	}}
}
