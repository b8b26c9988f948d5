// Package artifact describes the output formats of a build behind one
// interface, Format, and every file they produce with one type, Record.
//
// A format says what it is built from (Needs: the deployed sysroot, the
// raw disk image, or another artifact's records), which single config key
// selects it (Key), how the check stage boots it (Boot), and how it is
// built (Build). Formats live in their own packages and register
// themselves from init() with Register; the image stage imports them for
// their side effect, picks the selected ones with Selected and runs them
// per raw disk with BuildAll. The records it gets back are what the
// manifest lists, what SHA256SUMS is written from (Sums, SumLines) and
// what the check stage boots (ToBoot). Adding a format is adding one
// package and importing it.
package artifact

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
	"github.com/eib-builder/eib/lib/terminal"
)

// Input is what a format is built from: InputSysroot, InputRawDisk, or
// the Name of another format (whose records the Job then carries in
// From).
type Input string

const (
	// InputSysroot is the deployed sysroot directory (Job.Sysroot).
	InputSysroot Input = "@sysroot"
	// InputRawDisk is the raw disk image (Job.Disk).
	InputRawDisk Input = "@raw-disk"
)

// Artifact returns the format name an input names, and false for
// InputSysroot and InputRawDisk.
func (in Input) Artifact() (string, bool) {
	if in == InputSysroot || in == InputRawDisk || in == "" {
		return "", false
	}
	return string(in), true
}

// Medium is how the check stage boots a record's BootPath.
type Medium string

const (
	MediumDisk  Medium = "disk"  // attached as a virtio disk
	MediumCDROM Medium = "cdrom" // attached as a CD-ROM (ISO 9660 images)
	MediumNone  Medium = "none"  // not booted; Boot gives the reason
)

// Format is one output format.
type Format interface {
	// Name is the format's unique name, e.g. "raw" or "qcow2": the value
	// of Record.Format and what other formats' Needs name.
	Name() string
	// Key is the one config key whose boolean value selects the format
	// (e.g. "image", "qcow2": [image] qcow2 = true). ("", "") means the
	// format has no key and is always built.
	Key() (section, key string)
	// Needs says what the format is built from.
	Needs() Input
	// Boot says how the check stage boots what the format builds, and,
	// for MediumNone, a one-line reason why it is not booted.
	Boot() (m Medium, reason string)
	// Build writes the format's files for one job into Job.OutDir and
	// returns one Record per file, the format's main file first. On an
	// error no file of the format is left in OutDir under its final name.
	Build(ctx context.Context, job Job) ([]Record, error)
}

// Disk is a raw disk image made by the image stage.
type Disk struct {
	// Name is the disk's name: "" for the main image, e.g. "disk" for
	// another (build.Image.Name).
	Name string
	// Path is the raw image file (in tmpdir, not published).
	Path      string
	Arch      string
	Platform  string
	Firmwares []string // "bios", "uefi": what the disk boots with
}

// Job is what a format builds from and where its files go.
type Job struct {
	// Disk is the raw disk image, for formats that need InputRawDisk
	// (and for the records of every format: arch, platform, firmwares).
	Disk Disk
	// Sysroot is the deployed sysroot directory, for InputSysroot.
	Sysroot string
	// From holds the records of the format named by Needs, when it is
	// another artifact (BuildAll fills it).
	From []Record
	// OutDir receives the files; it must exist.
	OutDir string
	// Base is the base name of the files: "<outversion>" for the main
	// disk, "<outversion>.<disk name>" for another; formats append their
	// suffixes (".img.zst", ".qcow2").
	Base string
	// Compression is [image] compression (raw images).
	Compression output.Compression
	// Signer signs the files; nil writes no .asc files.
	Signer sign.Signer
	// Logf receives log lines; nil discards them.
	Logf func(format string, args ...any)
	// Terminal, when not nil, receives progress bars.
	Terminal io.Writer
	// Progress, when not nil, is the build's terminal
	// (buildlog.Log.Terminal): progress goes through it, and Terminal
	// is ignored (output.Image.Progress).
	Progress *terminal.Terminal
}

// Log calls Logf when it is set.
func (j Job) Log(format string, args ...any) {
	if j.Logf != nil {
		j.Logf(format, args...)
	}
}

// Record is one file a build produced: the one description that the
// state file, the manifest, SHA256SUMS and the boot check read.
type Record struct {
	// Format is the Name of the format that made it ("file" for plain
	// files recorded with PlainRecord).
	Format string `json:"format"`
	// Disk is the name of the disk it was made from ("" = main).
	Disk string `json:"disk,omitempty"`
	// File is the base name.
	File string `json:"file"`
	// Path is the file's path in outdir; "" when the file is not in
	// outdir (the uncompressed raw image, whose .sha256 and .asc are).
	Path string `json:"path,omitempty"`
	// Compression is the file's compression ("gz", "xz", "zst"; "" for
	// none).
	Compression string `json:"compression,omitempty"`
	// Size is the file's size in bytes.
	Size int64 `json:"size"`
	// ExtractedSize is the size in bytes of the raw disk it holds (equal
	// to Size for an uncompressed file).
	ExtractedSize int64 `json:"extracted_size"`
	// SHA256 is the file's SHA-256, lower-case hex.
	SHA256 string `json:"sha256"`
	// ChecksumFile, SignatureFile and SizeFile are the base names, in
	// outdir, of its "<hex>  <file>" checksum, armored detached
	// signature and extracted size files; "" when not written.
	ChecksumFile  string `json:"checksum_file,omitempty"`
	SignatureFile string `json:"signature_file,omitempty"`
	SizeFile      string `json:"size_file,omitempty"`
	// Boot is how the check stage boots BootPath; BootReason says why
	// not when it is MediumNone.
	Boot       Medium `json:"boot"`
	BootReason string `json:"boot_reason,omitempty"`
	// BootPath is the file to boot: for a raw image, the uncompressed
	// raw disk in tmpdir. "" when Boot is MediumNone.
	BootPath  string   `json:"boot_path,omitempty"`
	Arch      string   `json:"arch,omitempty"`
	Platform  string   `json:"platform,omitempty"`
	Firmwares []string `json:"firmwares,omitempty"`
}

// Files returns the base names of the record's files in outdir: the file
// itself (when in outdir), then its checksum, signature and size files.
func (r Record) Files() []string {
	var out []string
	if r.Path != "" {
		out = append(out, r.File)
	}
	for _, f := range []string{r.ChecksumFile, r.SignatureFile, r.SizeFile} {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// NewRecord returns a record of format f for a file made from job's disk:
// Format, Disk, File, Path (outdir + file), the boot medium of f (BootPath
// is job.Disk.Path when f boots as a disk or CD-ROM), arch, platform and
// firmwares. The caller fills in sizes, checksum and sidecar files.
func NewRecord(f Format, job Job, file string) Record {
	m, reason := f.Boot()
	r := Record{
		Format:    f.Name(),
		Disk:      job.Disk.Name,
		File:      file,
		Path:      filepath.Join(job.OutDir, file),
		Boot:      m,
		Arch:      job.Disk.Arch,
		Platform:  job.Disk.Platform,
		Firmwares: slices.Clone(job.Disk.Firmwares),
	}
	if m == MediumNone || m == "" {
		r.Boot, r.BootReason = MediumNone, reason
	} else {
		r.BootPath = job.Disk.Path
	}
	return r
}

// PlainRecord records a plain file in outdir that no format made (the
// build's <outversion>.config.ini, <outversion>.ostree.txt): Format
// "file", not booted, its size and SHA-256 read from path.
func PlainRecord(path string) (Record, error) {
	sum, n, err := output.SHA256File(path)
	if err != nil {
		return Record{}, err
	}
	return Record{Format: "file", File: filepath.Base(path), Path: path, Size: n, ExtractedSize: n, SHA256: sum,
		Boot: MediumNone, BootReason: "not a disk image"}, nil
}

var registry = struct {
	sync.Mutex
	m map[string]Format
}{m: map[string]Format{}}

// Register adds a format; formats call it from init(). It panics on an
// empty or reserved name (one starting with "@", or "file") and on a name
// already registered.
func Register(f Format) {
	name := f.Name()
	if name == "" || strings.HasPrefix(name, "@") || name == "file" {
		panic(fmt.Sprintf("artifact: invalid format name %q", name))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		panic(fmt.Sprintf("artifact: format %q registered twice", name))
	}
	registry.m[name] = f
}

// Lookup returns the registered format called name.
func Lookup(name string) (Format, bool) {
	registry.Lock()
	defer registry.Unlock()
	f, ok := registry.m[name]
	return f, ok
}

// Formats returns every registered format in build order (see Order).
// A format that needs an unregistered or circular artifact comes last.
func Formats() []Format {
	registry.Lock()
	all := make([]Format, 0, len(registry.m))
	for _, f := range registry.m {
		all = append(all, f)
	}
	registry.Unlock()
	out, _ := order(all)
	return out
}

// Order sorts formats so that each comes after the artifact it needs,
// and otherwise by name. It fails when a format needs an artifact that is
// not among fs (naming the key that would select it) or needs form a
// cycle.
func Order(fs []Format) ([]Format, error) {
	return order(fs)
}

func order(fs []Format) ([]Format, error) {
	byName := map[string]Format{}
	for _, f := range fs {
		byName[f.Name()] = f
	}
	// depth: 0 for a format built from the sysroot or the raw disk, one
	// more than its input's otherwise; -1 for a missing input or a cycle.
	depth := map[string]int{}
	var errs []string
	var walk func(f Format, seen map[string]bool) int
	walk = func(f Format, seen map[string]bool) int {
		if d, ok := depth[f.Name()]; ok {
			return d
		}
		in, ok := f.Needs().Artifact()
		if !ok {
			depth[f.Name()] = 0
			return 0
		}
		dep, present := byName[in]
		d := -1
		switch {
		case seen[f.Name()]:
			errs = append(errs, fmt.Sprintf("artifact %s: its needs form a cycle", f.Name()))
		case !present:
			errs = append(errs, fmt.Sprintf("artifact %s needs artifact %s%s, which is not built", f.Name(), in, keyNote(in)))
		default:
			seen[f.Name()] = true
			if dd := walk(dep, seen); dd >= 0 {
				d = dd + 1
			}
		}
		depth[f.Name()] = d
		return d
	}
	for _, f := range fs {
		walk(f, map[string]bool{})
	}
	out := slices.Clone(fs)
	sort.SliceStable(out, func(i, j int) bool {
		di, dj := depth[out[i].Name()], depth[out[j].Name()]
		if di < 0 {
			di = 1 << 30
		}
		if dj < 0 {
			dj = 1 << 30
		}
		if di != dj {
			return di < dj
		}
		return out[i].Name() < out[j].Name()
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return out, fmt.Errorf("%s", strings.Join(slices.Compact(errs), "; "))
	}
	return out, nil
}

// keyNote names the key that selects a registered format, for errors.
func keyNote(name string) string {
	f, ok := Lookup(name)
	if !ok {
		return " (no such format)"
	}
	if s, k := f.Key(); k != "" {
		return fmt.Sprintf(" (selected by [%s] %s = true)", s, k)
	}
	return ""
}

// Selected returns the registered formats to build, in build order: those
// without a key, and those whose key enabled reports true. enabled reads
// the boolean key (its error should name the config file, section and
// key: it is returned as is). It fails when a selected format needs an
// artifact that is not selected.
func Selected(enabled func(section, key string) (bool, error)) ([]Format, error) {
	var fs []Format
	for _, f := range Formats() {
		s, k := f.Key()
		if k != "" {
			on, err := enabled(s, k)
			if err != nil {
				return nil, err
			}
			if !on {
				continue
			}
		}
		fs = append(fs, f)
	}
	return Order(fs)
}

// BuildAll builds fs (in build order, as Selected returns them) for one
// job and returns all their records in that order. A format that needs
// another artifact gets that artifact's records in Job.From. Errors name
// the format and the disk.
func BuildAll(ctx context.Context, fs []Format, job Job) ([]Record, error) {
	built := map[string][]Record{}
	var all []Record
	for _, f := range fs {
		j := job
		j.From = nil
		if in, ok := f.Needs().Artifact(); ok {
			recs, done := built[in]
			if !done {
				return all, fmt.Errorf("artifact %s of %s: needs artifact %s, which was not built before it", f.Name(), diskName(job), in)
			}
			j.From = recs
		}
		switch f.Needs() {
		case InputRawDisk:
			if job.Disk.Path == "" {
				return all, fmt.Errorf("artifact %s of %s: needs a raw disk image, and the job has none", f.Name(), diskName(job))
			}
		case InputSysroot:
			if job.Sysroot == "" {
				return all, fmt.Errorf("artifact %s of %s: needs the sysroot, and the job has none", f.Name(), diskName(job))
			}
		}
		recs, err := f.Build(ctx, j)
		if err != nil {
			return all, fmt.Errorf("artifact %s of %s: %w", f.Name(), diskName(job), err)
		}
		built[f.Name()] = recs
		all = append(all, recs...)
	}
	return all, nil
}

func diskName(job Job) string {
	if job.Disk.Name == "" {
		return "the main disk (" + job.Base + ")"
	}
	return "disk " + job.Disk.Name + " (" + job.Base + ")"
}

// ToBoot returns the records the check stage boots: those whose Boot is
// MediumDisk or MediumCDROM, with a BootPath.
func ToBoot(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if (r.Boot == MediumDisk || r.Boot == MediumCDROM) && r.BootPath != "" {
			out = append(out, r)
		}
	}
	return out
}

// Sums maps the base name of every record's file in outdir (Path not "")
// to its SHA-256: publish.WriteSums's known sums, so that SHA256SUMS does
// not read the images again.
func Sums(recs []Record) map[string]string {
	m := map[string]string{}
	for _, r := range recs {
		if r.Path != "" && r.SHA256 != "" {
			m[r.File] = r.SHA256
		}
	}
	return m
}

// SumLines returns the sha256sum lines ("<hex>  <file>") of the records'
// files in outdir, sorted by file name, one per file.
func SumLines(recs []Record) []string {
	m := Sums(recs)
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	lines := make([]string, len(names))
	for i, n := range names {
		lines[i] = m[n] + "  " + n
	}
	return lines
}
