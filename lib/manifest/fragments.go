package manifest

import (
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/artifact"
	"github.com/eib-builder/eib/lib/build"
)

// The names of eib's own fragments (merged first, before manifestdir's;
// see MergeDir). basic-info.json is the name of EIB's stages/eib_manifest
// fragment; EIB's image stage calls its images fragment "images".
const (
	BasicInfoFile = "basic-info.json"
	ImagesFile    = "images.json"
	OSTreeFile    = "ostree.json"
	BootCheckFile = "boot-check.json"
	TimingsFile   = "timings.json"
)

// BasicInfo is what the build is: basic-info.json, with the keys of EIB's
// (stages/eib_manifest) and eib's builder.
type BasicInfo struct {
	Product      string `json:"product"`
	ProductName  string `json:"product_name"`
	Branch       string `json:"branch"`
	Arch         string `json:"arch"`
	Platform     string `json:"platform"`
	Personality  string `json:"personality"`
	BuildVersion string `json:"build_version"`
	// BuilderCommit is EIB's builder_commit: the git commit of the
	// builder's tree ("" outside a git checkout), as Builder.Commit.
	BuilderCommit string  `json:"builder_commit"`
	Builder       Builder `json:"builder"`
}

// Builder identifies the eib that made the build.
type Builder struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

// Image describes one output in the images fragment. A compressed image's
// entry also describes the raw image it extracts to (whose checksum and
// signature files are published beside it, the raw image itself not).
type Image struct {
	File               string `json:"file"`
	CompressedSize     int64  `json:"compressed_size"`
	ExtractedSize      int64  `json:"extracted_size"`
	CompressionType    string `json:"compression_type"`
	Signature          string `json:"signature"`
	Checksum           string `json:"checksum"`
	SHA256             string `json:"sha256"`
	ExtractedFile      string `json:"extracted_file,omitempty"`
	ExtractedSHA256    string `json:"extracted_sha256,omitempty"`
	ExtractedChecksum  string `json:"extracted_checksum,omitempty"`
	ExtractedSignature string `json:"extracted_signature,omitempty"`
}

// FullImage is the key of the main disk image in the images fragment, as
// EIB's stages/eib_image names it (images.full).
const FullImage = "full"

// Images returns the images fragment: {"images": {FILE: Image}}, one entry
// per artifact record (the caller leaves out the records it does not
// list), keyed by its file name; compressed_size is the record's Size. A
// record that is not in outdir (Path "") and is what a compressed record
// extracts to (FILE.COMPRESSION) is folded into that record's entry as
// extracted_*. The entry of the file
// named full (the compressed main disk image) is also under "full", where
// EIB's consumers read it; full "" or not an output adds none.
func Images(outputs []artifact.Record, full string) map[string]any {
	images := map[string]Image{}
	extracted := map[string]artifact.Record{}
	for _, o := range outputs {
		if o.Path == "" {
			extracted[o.File] = o
		}
	}
	folded := map[string]bool{}
	for _, o := range outputs {
		if o.Path == "" {
			continue
		}
		img := Image{
			File:            o.File,
			CompressedSize:  o.Size,
			ExtractedSize:   o.ExtractedSize,
			CompressionType: o.Compression,
			Signature:       o.SignatureFile,
			Checksum:        o.ChecksumFile,
			SHA256:          o.SHA256,
		}
		if raw, ok := extracted[strings.TrimSuffix(o.File, "."+o.Compression)]; ok && o.Compression != "" {
			img.ExtractedFile = raw.File
			img.ExtractedSHA256 = raw.SHA256
			img.ExtractedChecksum = raw.ChecksumFile
			img.ExtractedSignature = raw.SignatureFile
			folded[raw.File] = true
		}
		images[o.File] = img
	}
	for name, o := range extracted {
		if !folded[name] {
			// Not in outdir: no compressed size.
			images[name] = Image{File: o.File, ExtractedSize: o.ExtractedSize,
				CompressionType: o.Compression, Signature: o.SignatureFile, Checksum: o.ChecksumFile, SHA256: o.SHA256}
		}
	}
	if img, ok := images[full]; ok && full != "" {
		images[FullImage] = img
	}
	return map[string]any{"images": images}
}

// OSTree is the ostree fragment's content: the keys of EIB's image hook
// 70-ostree-manifest, with their meaning there, and eib's ref_deploy and
// pull_ref.
type OSTree struct {
	Remote string `json:"remote"`
	// Ref is the ref the deployed system follows ([ostree] ref_deploy),
	// as in EIB; PullRef the ref the build pulled ([ostree] ref).
	Ref       string `json:"ref"`
	RefDeploy string `json:"ref_deploy"`
	PullRef   string `json:"pull_ref"`
	Commit    string `json:"commit"`
	// Version is VERSION of the deployment's /etc/os-release (EIB's),
	// else the commit's version metadata.
	Version string `json:"version"`
	URL     string `json:"url"`
	OS      string `json:"os"`
	// Date is the commit's time in UTC as EIB writes it
	// (%Y-%m-%dT%H:%M:%S%z: 2026-01-16T03:26:40+0000); omitted when
	// the commit could not be read.
	Date string `json:"date,omitempty"`
	// CollectionID is the collection ID of the deployed remote, null
	// when it has none (as EIB writes it).
	CollectionID *string `json:"collection-id"`
}

// OSTreeExtra is what the ostree fragment takes from the deployment rather
// than from the pull.
type OSTreeExtra struct {
	OSVersion    string    // VERSION of the deployment's os-release ("" = unknown)
	Date         time.Time // the commit's time (zero = unknown)
	CollectionID string    // the deployed remote's collection-id ("" = none)
}

// OSTreeFragment returns {"ostree": OSTree} for the commit that was built.
func OSTreeFragment(o build.OSTreeInfo, x OSTreeExtra) map[string]any {
	f := OSTree{
		Remote:    o.Remote,
		Ref:       o.RefDeploy,
		RefDeploy: o.RefDeploy,
		PullRef:   o.Ref,
		Commit:    o.Commit,
		Version:   o.Version,
		URL:       o.DeployURL,
		OS:        o.OS,
	}
	if f.Ref == "" {
		f.Ref = o.Ref
	}
	if x.OSVersion != "" {
		f.Version = x.OSVersion
	}
	if !x.Date.IsZero() {
		f.Date = FormatDate(x.Date)
	}
	if x.CollectionID != "" {
		id := x.CollectionID
		f.CollectionID = &id
	}
	return map[string]any{"ostree": f}
}

// FormatDate writes t in UTC the way EIB's 70-ostree-manifest does
// (strftime %Y-%m-%dT%H:%M:%S%z).
func FormatDate(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05-0700")
}

// Boot is one boot check in the boot_check fragment.
type Boot struct {
	Image    string  `json:"image"`
	Firmware string  `json:"firmware"`
	Result   string  `json:"result"`
	Seconds  float64 `json:"seconds_to_marker"`
	Reason   string  `json:"reason,omitempty"`
	// Accel is "kvm" or "tcg"; AccelReason why (the probe's verdict or
	// the setting); Fallback why a KVM boot was retried under TCG.
	Accel       string `json:"accel,omitempty"`
	AccelReason string `json:"accel_reason,omitempty"`
	Fallback    string `json:"accel_fallback,omitempty"`
	// VCPUs is the guest's vCPUs; AtOnce, whether the image's firmwares
	// booted at the same time (then with fewer vCPUs on a small host).
	VCPUs  int  `json:"vcpus,omitempty"`
	AtOnce bool `json:"at_once,omitempty"`
}

// BootCheck returns {"boot_check": [Boot...]} in the order the checks ran.
func BootCheck(boots []build.BootResult) map[string]any {
	list := make([]Boot, 0, len(boots))
	for _, r := range boots {
		list = append(list, Boot{Image: r.Image, Firmware: r.Firmware, Result: r.Result, Seconds: round(r.Seconds), Reason: r.Reason,
			Accel: r.Accel, AccelReason: r.AccelReason, Fallback: r.Fallback, VCPUs: r.CPUs, AtOnce: r.AtOnce})
	}
	return map[string]any{"boot_check": list}
}

// StageTiming is one stage in the timings fragment.
type StageTiming struct {
	Seconds float64               `json:"seconds"`
	Status  string                `json:"status"`
	Started string                `json:"started,omitempty"`
	Hooks   map[string]HookTiming `json:"hooks,omitempty"`
}

// HookTiming is one hook of a stage in the timings fragment.
type HookTiming struct {
	Seconds float64 `json:"seconds"`
	Status  string  `json:"status"`
}

// Timings returns {"timings": {STAGE: StageTiming}}; a hook's timing goes
// under its stage's "hooks". Objects (not a list) so that hooks can add
// their own timings to the merge.
func Timings(timings []build.Timing) map[string]any {
	stages := map[string]*StageTiming{}
	get := func(name string) *StageTiming {
		if s, ok := stages[name]; ok {
			return s
		}
		s := &StageTiming{}
		stages[name] = s
		return s
	}
	for _, t := range timings {
		s := get(t.Stage)
		if t.Hook == "" {
			s.Seconds = round(t.Seconds)
			s.Status = t.Status
			if !t.Started.IsZero() {
				s.Started = t.Started.UTC().Format(time.RFC3339)
			}
			continue
		}
		if s.Hooks == nil {
			s.Hooks = map[string]HookTiming{}
		}
		s.Hooks[t.Hook] = HookTiming{Seconds: round(t.Seconds), Status: t.Status}
	}
	out := make(map[string]StageTiming, len(stages))
	for n, s := range stages {
		out[n] = *s
	}
	return map[string]any{"timings": out}
}

// round keeps milliseconds: enough for a build, and stable in review.
func round(s float64) float64 {
	return float64(int64(s*1000+0.5)) / 1000
}
