package stage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/flatpak"
	"github.com/eib-builder/eib/lib/manifest"
)

// remoteSectionPrefix starts the name of every Flatpak remote's section.
const remoteSectionPrefix = "flatpak-remote-"

// flatpakSettings are the [flatpak] and [flatpak-remote-*] settings of a
// build that preinstalls Flatpak apps: the remotes enabled, in the order
// of their sections, with their lists merged.
type flatpakSettings struct {
	s flatpak.Settings
	// cacheDir is the content cache's Flatpak installation,
	// <contentdir>/flatpak (its repo: <contentdir>/flatpak/repo, as
	// EIB's).
	cacheDir string
}

// PlanFlatpak is what the image stage preinstalls (--show-plan).
type PlanFlatpak struct {
	Arch              string              `json:"arch"`
	Locales           []string            `json:"locales"`
	SetExtraLanguages bool                `json:"set_extra_languages"`
	Cache             string              `json:"cache"`
	Remotes           []PlanFlatpakRemote `json:"remotes"`
}

// PlanFlatpakRemote is one enabled [flatpak-remote-NAME].
type PlanFlatpakRemote struct {
	Name           string   `json:"name"`
	URL            string   `json:"url"`
	DeployURL      string   `json:"deploy_url"`
	RepoFile       string   `json:"repo_file,omitempty"`
	Apps           []string `json:"apps"`
	Runtimes       []string `json:"runtimes"`
	Exclude        []string `json:"exclude"`
	AllowExtraData []string `json:"allow_extra_data"`
	DefaultBranch  string   `json:"default_branch,omitempty"`
	TrustedKey     bool     `json:"trusted_key"` // repo_file gave a GPGKey
}

// flatpakArches maps [build] arch to Flatpak's arch names.
var flatpakArches = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "i386": "i386", "armhf": "arm"}

// readFlatpakSettings reads [flatpak] and the [flatpak-remote-*]
// sections. It returns nil (nothing to do) when [flatpak] enable is false
// or no remote is enabled; otherwise the flatpak command must be
// installed (an error naming [flatpak] enable says so). A local repo_file
// is read here; an http(s) one when the stage runs (fetchRepoFiles).
func readFlatpakSettings(b *build.Build) (*flatpakSettings, error) {
	r := b.Config.Read()
	if r.Has("flatpak", "enable") && !r.Bool("flatpak", "enable") {
		return nil, r.Err()
	}
	var fs flatpakSettings
	fs.s.Arch = optional(r, "flatpak", "arch", r.String)
	fs.s.Locales = optional(r, "flatpak", "locales", r.List)
	fs.s.SetExtraLanguages = optional(r, "flatpak", "set_extra_languages", r.Bool)
	arch := r.String("build", "arch")
	contentDir := r.Path("build", "contentdir")
	if err := r.Err(); err != nil {
		return nil, err
	}
	if fs.s.Arch == "" {
		fs.s.Arch = flatpakArches[arch]
		if fs.s.Arch == "" {
			return nil, keyErrorf(b, "flatpak", "arch", "[flatpak] arch: empty, and [build] arch %s has no Flatpak arch eib knows: set it", arch)
		}
	}
	fs.cacheDir = filepath.Join(contentDir, "flatpak")
	for _, sect := range b.Config.Sections() {
		name, ok := strings.CutPrefix(sect, remoteSectionPrefix)
		if !ok {
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("[%s]: no remote name after %q", sect, remoteSectionPrefix)
		}
		if r.Has(sect, "enable") && !r.Bool(sect, "enable") {
			if err := r.Err(); err != nil {
				return nil, err
			}
			continue
		}
		rm := flatpak.Remote{Name: name, Section: sect,
			URL:            optional(r, sect, "url", r.URL),
			DeployURL:      optional(r, sect, "deploy_url", r.URL),
			RepoFile:       optional(r, sect, "repo_file", r.String),
			Title:          optional(r, sect, "title", r.String),
			DefaultBranch:  optional(r, sect, "default_branch", r.String),
			Apps:           optional(r, sect, "apps", r.List),
			Runtimes:       optional(r, sect, "runtimes", r.List),
			Exclude:        optional(r, sect, "exclude", r.List),
			AllowExtraData: optional(r, sect, "allow_extra_data", r.List),
		}
		if r.Has(sect, "prio") {
			rm.Prio = fmt.Sprint(r.Int(sect, "prio"))
		}
		if r.Has(sect, "noenumerate") {
			rm.NoEnumerate = fmt.Sprint(r.Bool(sect, "noenumerate"))
		}
		if err := r.Err(); err != nil {
			return nil, err
		}
		if rm.RepoFile != "" && !isHTTP(rm.RepoFile) {
			if err := applyRepoFile(&rm, nil); err != nil {
				return nil, keyErr(b, sect, "repo_file", err)
			}
		}
		if rm.URL == "" && !isHTTP(rm.RepoFile) {
			return nil, sectionErr(b, sect, fmt.Errorf("[%s] url: not set, and no repo_file gives one (set one, or enable = false in the section)", sect))
		}
		fs.s.Remotes = append(fs.s.Remotes, rm)
	}
	if len(fs.s.Remotes) == 0 {
		return nil, nil
	}
	if _, ok := flatpak.Available(); !ok {
		names := make([]string, len(fs.s.Remotes))
		for i, rm := range fs.s.Remotes {
			names[i] = "[" + rm.Section + "]"
		}
		return nil, keyErrorf(b, "flatpak", "enable", "[flatpak] enable = true with the remotes %s, but the %s command is not installed: install Debian's package flatpak (make deps), or set [flatpak] enable = false",
			strings.Join(names, " "), flatpak.Command)
	}
	return &fs, nil
}

// sectionErr locates err, about a key the section lacks, at the first key
// the section sets (a section of merged lists only: where its words came
// from).
func sectionErr(b *build.Build, sect string, err error) error {
	for _, k := range b.Config.Options(sect) {
		if located := b.Config.At(sect, k, err); located != err {
			return located
		}
	}
	return err
}

func isHTTP(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// applyRepoFile fills the remote's unset url, title and default_branch
// from its .flatpakrepo file and takes its GPGKey; data nil: read the
// local file (a path or file:// URL).
func applyRepoFile(rm *flatpak.Remote, data []byte) error {
	if data == nil {
		p := rm.RepoFile
		if u, err := url.Parse(p); err == nil && u.Scheme == "file" {
			p = u.Path
		}
		var err error
		if data, err = os.ReadFile(p); err != nil {
			return fmt.Errorf("[%s] repo_file: %w", rm.Section, err)
		}
	}
	u, title, branch, key, err := flatpak.RepoFileKeys(data)
	if err != nil {
		return fmt.Errorf("[%s] repo_file %s: %w", rm.Section, rm.RepoFile, err)
	}
	if rm.URL == "" {
		rm.URL = u
	}
	if rm.Title == "" {
		rm.Title = title
	}
	if rm.DefaultBranch == "" {
		rm.DefaultBranch = branch
	}
	rm.GPGKey = key
	return nil
}

// fetchRepoFiles downloads the http(s) repo_file of every remote and
// applies it.
func (fs *flatpakSettings) fetchRepoFiles(ctx context.Context) error {
	for i := range fs.s.Remotes {
		rm := &fs.s.Remotes[i]
		if !isHTTP(rm.RepoFile) || rm.GPGKey != nil {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rm.RepoFile, nil)
		if err != nil {
			return fmt.Errorf("[%s] repo_file: %w", rm.Section, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("[%s] repo_file: %w", rm.Section, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s", resp.Status)
		}
		if err != nil {
			return fmt.Errorf("[%s] repo_file %s: %w", rm.Section, rm.RepoFile, err)
		}
		if err := applyRepoFile(rm, data); err != nil {
			return err
		}
		if rm.URL == "" {
			return fmt.Errorf("[%s] url: not set, and repo_file %s has no Url", rm.Section, rm.RepoFile)
		}
	}
	return nil
}

// plan is what --show-plan prints of the settings.
func (fs *flatpakSettings) plan() *PlanFlatpak {
	p := &PlanFlatpak{Arch: fs.s.Arch, Locales: nonNil(fs.s.Locales), SetExtraLanguages: fs.s.SetExtraLanguages,
		Cache: fs.cacheDir, Remotes: []PlanFlatpakRemote{}}
	for _, rm := range fs.s.Remotes {
		deploy := rm.DeployURL
		if deploy == "" {
			deploy = rm.URL
		}
		p.Remotes = append(p.Remotes, PlanFlatpakRemote{Name: rm.Name, URL: rm.URL, DeployURL: deploy, RepoFile: rm.RepoFile,
			Apps: nonNil(rm.Apps), Runtimes: nonNil(rm.Runtimes), Exclude: nonNil(rm.Exclude),
			AllowExtraData: nonNil(rm.AllowExtraData), DefaultBranch: rm.DefaultBranch, TrustedKey: len(rm.GPGKey) > 0})
	}
	return p
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// pullFlatpaks is the content part: everything the apps need, pulled into
// the content cache (flatpak.Installation.Pull). Nothing of it is in the
// image yet.
func pullFlatpaks(ctx context.Context, b *build.Build, fs *flatpakSettings) error {
	if err := fs.fetchRepoFiles(ctx); err != nil {
		return err
	}
	cache := flatpak.Installation{Dir: fs.cacheDir, Logf: b.Log.Printf, Debugf: b.Log.Debugf}
	start := time.Now()
	res, err := cache.Pull(ctx, fs.s)
	if err != nil {
		return fmt.Errorf("flatpak content: %w", err)
	}
	n := 0
	for _, rr := range res {
		n += len(rr.Refs)
	}
	b.Log.Printf("flatpak: %d apps and runtimes and what they need pulled into %s in %s", n, cache.RepoDir(), time.Since(start).Round(time.Millisecond))
	return nil
}

// installFlatpaks installs what pullFlatpaks cached into the deployment's
// system installation (<var>/lib/flatpak, the booted OS's /var/lib/flatpak),
// runs the deployment's own Flatpak triggers on it
// (flatpak.Installation.RunTriggers: an OS without any is logged, a
// failing one fails the stage naming it) and writes the flatpak.json
// manifest fragment.
func installFlatpaks(ctx context.Context, b *build.Build, fs *flatpakSettings) error {
	tmpdir, err := b.Dir("tmpdir")
	if err != nil {
		return err
	}
	// eib's scratch files stay out of the image.
	scratch := filepath.Join(tmpdir, "flatpak-image")
	if err := os.RemoveAll(scratch); err != nil {
		return err
	}
	dest := flatpak.Installation{Dir: filepath.Join(b.Deployment.VarDir, "lib", "flatpak"), Scratch: scratch,
		Logf: b.Log.Printf, Debugf: b.Log.Debugf}
	cache := flatpak.Installation{Dir: fs.cacheDir, Logf: b.Log.Printf, Debugf: b.Log.Debugf}
	if err := dest.Install(ctx, fs.s, cache); err != nil {
		return fmt.Errorf("flatpak install into the image: %w", err)
	}
	// The OS's own triggers (exports' desktop and MIME databases, icon
	// caches), which flatpak ran in EIB's install inside the OS tree.
	if err := dest.RunTriggers(ctx, b.Deployment.Path, b.Deployment.VarDir); err != nil {
		return fmt.Errorf("flatpak install into the image: %w", err)
	}
	if err := writeFlatpakManifest(ctx, b, dest); err != nil {
		return err
	}
	return os.RemoveAll(scratch)
}

// writeFlatpakManifest writes manifestdir/flatpak.json from the installed
// refs, as EIB's 70-flatpak-manifest hook does.
func writeFlatpakManifest(ctx context.Context, b *build.Build, dest flatpak.Installation) error {
	list, err := dest.List(ctx)
	if err != nil {
		return err
	}
	frag := manifest.NewFlatpak()
	remotes, err := dest.Remotes(ctx)
	if err != nil {
		return err
	}
	for name, u := range remotes {
		frag.Remotes[name] = manifest.FlatpakRemote{URL: u}
	}
	b.Flatpaks = map[string]string{}
	for _, it := range list {
		date, _ := dest.CommitDate(ctx, it.Commit)
		frag.Add(it.Ref, it.Remote, it.Commit, date, it.InstalledSize, it.DownloadSize, metadataRuntime(it.Metadata))
		b.Flatpaks[it.Remote+":"+it.Ref] = it.Commit
	}
	dir, err := b.Dir("manifestdir")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(frag.JSON(), "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dir, manifest.FlatpakFile)
	if err := os.WriteFile(p, append(data, '\n'), 0o644); err != nil {
		return err
	}
	names := make([]string, 0, len(list))
	for _, it := range list {
		names = append(names, it.Ref)
	}
	sort.Strings(names)
	b.Log.Printf("flatpak: installed %s; wrote %s", strings.Join(names, " "), p)
	return nil
}

// metadataRuntime is an app metadata's [Application] runtime ("" if none).
func metadataRuntime(md string) string {
	in := false
	for _, l := range strings.Split(md, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			in = l == "[Application]"
			continue
		}
		if v, ok := strings.CutPrefix(l, "runtime="); ok && in {
			return v
		}
	}
	return ""
}

// installOrNoFlatpaks installs the Flatpak apps (fs not nil), or writes
// the empty flatpak.json fragment EIB writes without them.
func installOrNoFlatpaks(ctx context.Context, b *build.Build, fs *flatpakSettings) error {
	if fs != nil {
		return installFlatpaks(ctx, b, fs)
	}
	dir, err := b.Dir("manifestdir")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(manifest.NewFlatpak().JSON(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, manifest.FlatpakFile), append(data, '\n'), 0o644)
}

// ShowApps prints the Flatpak apps and runtimes the plan's image stage
// would preinstall (eib --show-apps), read from the remotes' summaries in
// a scratch installation (nothing is pulled, no lock is taken): grouped by
// groupBy ("runtime" or "nature", flatpak.Selection.Print), and with trim
// > 0 the apps whose removal saves at least trim bytes of download size.
// The sizes are in bytes; a locale extension counts at its full size
// (the build installs only the locale subsets).
func (p *Plan) ShowApps(ctx context.Context, w io.Writer, groupBy string, trim int64) error {
	fs := p.settings.flatpak
	if fs == nil {
		_, err := fmt.Fprintln(w, "no Flatpak apps: [flatpak] enable is false, no [flatpak-remote-*] is enabled, or the buildscript has no image stage")
		return err
	}
	if err := fs.fetchRepoFiles(ctx); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "eib-show-apps-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	in := flatpak.Installation{Dir: tmp}
	sizes, res, err := in.RemoteSizes(ctx, fs.s)
	if err != nil {
		return err
	}
	sel := flatpak.Select(sizes, res)
	sel.Print(w, groupBy)
	if trim > 0 {
		remove, saved, short := sel.Trim(trim)
		fmt.Fprintf(w, "\nto save %d bytes of download, remove (%d bytes):\n", trim, saved)
		for _, a := range remove {
			fmt.Fprintf(w, "  %s (remote %s)\n", a.Ref, a.Remote)
		}
		if short > 0 {
			fmt.Fprintf(w, "removing every app still leaves %d bytes to save\n", short)
		}
	}
	return nil
}
