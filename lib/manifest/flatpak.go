package manifest

import (
	"strings"
	"time"
)

// FlatpakFile is the fragment of the preinstalled Flatpak apps, written by
// the image stage into manifestdir under the name EIB's
// 70-flatpak-manifest hook gives it.
const FlatpakFile = "flatpak.json"

// FlatpakRemote is a remote of the image's Flatpak installation.
type FlatpakRemote struct {
	URL string `json:"url"`
	// CollectionID is EIB's "collection-id" (eib sets none: null).
	CollectionID *string `json:"collection-id"`
}

// FlatpakRef is one installed app or runtime, with the keys of EIB's
// fragment (name, arch, branch, remote, commit, size, ref, date, version;
// runtime for apps) and eib's download_size.
type FlatpakRef struct {
	Name   string `json:"name"`
	Arch   string `json:"arch"`
	Branch string `json:"branch"`
	Remote string `json:"remote"`
	Commit string `json:"commit"`
	// Size is the installed size in bytes (the commit's
	// xa.installed-size); DownloadSize the compressed size in bytes
	// (xa.download-size).
	Size         int64   `json:"size"`
	DownloadSize int64   `json:"download_size"`
	Ref          string  `json:"ref"`
	Date         string  `json:"date"`    // the commit's time, 2006-01-02T15:04:05-0700
	Version      *string `json:"version"` // appdata version: eib reads none (null)
	Runtime      *string `json:"runtime,omitempty"`
}

// Flatpak is the flatpak.json fragment being built.
type Flatpak struct {
	Remotes  map[string]FlatpakRemote
	Runtimes map[string]FlatpakRef // by name/arch/branch
	Apps     map[string]FlatpakRef
}

// NewFlatpak is an empty fragment (what a build without Flatpak writes,
// as EIB).
func NewFlatpak() *Flatpak {
	return &Flatpak{Remotes: map[string]FlatpakRemote{}, Runtimes: map[string]FlatpakRef{}, Apps: map[string]FlatpakRef{}}
}

// Add records an installed ref kind/name/arch/branch; runtime is an app's
// runtime (name/arch/branch), ignored for a runtime.
func (f *Flatpak) Add(ref, remote, commit string, date time.Time, installed, download int64, runtime string) {
	p := strings.Split(ref, "/")
	if len(p) != 4 {
		return
	}
	e := FlatpakRef{Name: p[1], Arch: p[2], Branch: p[3], Remote: remote, Commit: commit,
		Size: installed, DownloadSize: download, Ref: ref}
	if !date.IsZero() {
		e.Date = date.UTC().Format("2006-01-02T15:04:05-0700")
	}
	key := strings.Join(p[1:], "/")
	if p[0] == "app" {
		rt := runtime
		e.Runtime = &rt
		f.Apps[key] = e
		return
	}
	f.Runtimes[key] = e
}

// JSON is the fragment: {"flatpak": {"remotes", "runtimes", "apps"}}.
func (f *Flatpak) JSON() map[string]any {
	return map[string]any{"flatpak": map[string]any{"remotes": f.Remotes, "runtimes": f.Runtimes, "apps": f.Apps}}
}
