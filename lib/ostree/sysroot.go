package ostree

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Sysroot is an OSTree system root (what becomes the root file system of a
// disk image): /ostree/repo, /ostree/deploy/<os>/, /boot.
type Sysroot struct {
	Path string
}

// InitFS creates path (which must not hold anything yet that ostree
// would refuse) and the sysroot layout in it (admin init-fs).
func InitFS(ctx context.Context, path string) (*Sysroot, error) {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("creating sysroot: %w", err)
	}
	if _, err := run(ctx, nil, "admin", "init-fs", path); err != nil {
		return nil, err
	}
	return &Sysroot{Path: path}, nil
}

// Repo is the sysroot's own repository.
func (s *Sysroot) Repo() *Repo { return Open(filepath.Join(s.Path, "ostree", "repo")) }

// OSInit creates the state directory of an OS (ostree/deploy/<os>).
func (s *Sysroot) OSInit(ctx context.Context, osname string) error {
	_, err := run(ctx, nil, "admin", "os-init", "--sysroot="+s.Path, osname)
	return err
}

// Deploy describes one deployment.
type Deploy struct {
	OS      string
	Refspec string   // "remote:ref", "ref" or a checksum
	Kargs   []string // kernel arguments, in order (duplicates kept)
}

// Deploy deploys a commit of the sysroot's repository and returns the new
// default deployment.
func (s *Sysroot) Deploy(ctx context.Context, d Deploy) (*Deployment, error) {
	args := []string{"admin", "deploy", "--sysroot=" + s.Path, "--os=" + d.OS}
	for _, k := range d.Kargs {
		args = append(args, "--karg-append="+k)
	}
	args = append(args, d.Refspec)
	if _, err := run(ctx, nil, args...); err != nil {
		return nil, err
	}
	return s.DefaultDeployment()
}

// Deployment is one deployed commit in a sysroot.
type Deployment struct {
	OS       string
	Checksum string // the deployed commit
	Serial   int
	Path     string // ostree/deploy/<os>/deploy/<checksum>.<serial>
	VarDir   string // ostree/deploy/<os>/var
	Options  string // the kernel command line of its boot entry
	Version  int    // the boot entry's version (higher = newer)
}

// Name is the deployment's directory name, "<checksum>.<serial>"
// (OSTREE_CURRENT_DEPLOYMENT).
func (d *Deployment) Name() string { return d.Checksum + "." + strconv.Itoa(d.Serial) }

// Deployments returns the deployments named by the sysroot's boot
// entries (boot/loader/entries/*.conf), newest first. They are found from
// the files ostree writes, not from the text of `ostree admin status`.
func (s *Sysroot) Deployments() ([]Deployment, error) {
	entries, err := filepath.Glob(filepath.Join(s.Path, "boot", "loader", "entries", "*.conf"))
	if err != nil {
		return nil, err
	}
	var deps []Deployment
	for _, e := range entries {
		d, err := s.deploymentOfEntry(e)
		if err != nil {
			return nil, err
		}
		deps = append(deps, *d)
	}
	sort.SliceStable(deps, func(i, j int) bool { return deps[i].Version > deps[j].Version })
	return deps, nil
}

// DefaultDeployment returns the newest deployment (the one that boots).
func (s *Sysroot) DefaultDeployment() (*Deployment, error) {
	deps, err := s.Deployments()
	if err != nil {
		return nil, err
	}
	if len(deps) == 0 {
		return nil, fmt.Errorf("sysroot %s: no boot entry in boot/loader/entries: nothing is deployed", s.Path)
	}
	return &deps[0], nil
}

// deploymentOfEntry reads a BLS entry and follows its ostree= argument
// (a chain of relative symlinks inside the sysroot) to the deployment.
func (s *Sysroot) deploymentOfEntry(entry string) (*Deployment, error) {
	f, err := os.Open(entry)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Deployment{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		val = strings.TrimSpace(val)
		switch key {
		case "version":
			d.Version, _ = strconv.Atoi(val)
		case "options":
			d.Options = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", entry, err)
	}
	var bootlink string
	for _, w := range strings.Fields(d.Options) {
		if v, ok := strings.CutPrefix(w, "ostree="); ok {
			bootlink = v
		}
	}
	if bootlink == "" {
		return nil, fmt.Errorf("%s: no ostree= kernel argument in its options line", entry)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(s.Path, bootlink))
	if err != nil {
		return nil, fmt.Errorf("%s: ostree=%s: %w", entry, bootlink, err)
	}
	root, err := filepath.EvalSymlinks(s.Path)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(root, real)
	if err != nil {
		return nil, err
	}
	// ostree/deploy/<os>/deploy/<checksum>.<serial>
	parts := strings.Split(rel, string(filepath.Separator))
	if len(parts) != 5 || parts[0] != "ostree" || parts[1] != "deploy" || parts[3] != "deploy" {
		return nil, fmt.Errorf("%s: ostree=%s leads to %s, not to ostree/deploy/<os>/deploy/<commit>.<serial>", entry, bootlink, rel)
	}
	csum, serial, ok := strings.Cut(parts[4], ".")
	n, err := strconv.Atoi(serial)
	if !ok || err != nil || len(csum) != 64 {
		return nil, fmt.Errorf("%s: deployment directory %q is not <commit>.<serial>", entry, parts[4])
	}
	d.OS, d.Checksum, d.Serial = parts[2], csum, n
	d.Path = filepath.Join(s.Path, "ostree", "deploy", d.OS, "deploy", parts[4])
	d.VarDir = filepath.Join(s.Path, "ostree", "deploy", d.OS, "var")
	return d, nil
}
