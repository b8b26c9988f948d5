package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Attrs are the build attributes that select config files, in load order.
var Attrs = []string{"product", "branch", "arch", "platform", "personality"}

// Defaults of the [build] keys that do not come from the command line.
const (
	DefaultCacheDir   = "/var/cache/eib"
	DefaultSysConfDir = "/etc/eib"
)

// Series is the branch without its last ".x" (eos3.8 -> eos3, master ->
// master).
func Series(branch string) string {
	if i := strings.LastIndexByte(branch, '.'); i > 0 {
		return branch[:i]
	}
	return branch
}

// PersonalityPrefixes expands a personality into the names it loads, in
// order: en_GB_orkney -> en, en_GB, en_GB_orkney.
func PersonalityPrefixes(p string) []string {
	parts := strings.Split(p, "_")
	out := make([]string, 0, len(parts))
	for i := range parts {
		out = append(out, strings.Join(parts[:i+1], "_"))
	}
	return out
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// treeFiles lists the attribute and combination files under dir (a config
// directory), with their namespaces, in load order.
func treeFiles(dir, nsPrefix string, o Options) []FileRef {
	values := map[string][]string{
		"product":     {o.Product},
		"branch":      {o.Branch},
		"arch":        {o.Arch},
		"platform":    {o.Platform},
		"personality": PersonalityPrefixes(o.Personality),
	}
	var refs []FileRef
	for _, a := range Attrs {
		for _, v := range values[a] {
			refs = append(refs, FileRef{
				Path:      filepath.Join(dir, a, v+".ini"),
				Namespace: nsPrefix + a + "_" + v,
			})
		}
	}
	for i, a1 := range Attrs {
		for _, a2 := range Attrs[i+1:] {
			for _, v1 := range values[a1] {
				for _, v2 := range values[a2] {
					refs = append(refs, FileRef{
						Path:      filepath.Join(dir, a1+"-"+a2, v1+"-"+v2+".ini"),
						Namespace: nsPrefix + a1 + "_" + a2 + "_" + v1 + "_" + v2,
					})
				}
			}
		}
	}
	return refs
}

// Candidates returns every file Load would read, present or not, in order:
// the public files, then the private files.
func Candidates(o Options) []FileRef {
	o = o.withDefaults()
	src := filepath.Join(o.SrcDir, "config")
	refs := []FileRef{{Path: filepath.Join(src, "defaults.ini"), Namespace: "defaults"}}
	refs = append(refs, treeFiles(src, "", o)...)
	refs = append(refs, FileRef{Path: filepath.Join(o.SysConfDir, "config.ini"), Namespace: "system_config"})
	if o.LocalDir != "" {
		local := filepath.Join(o.LocalDir, "config")
		refs = append(refs, FileRef{Path: filepath.Join(local, "defaults.ini"), Namespace: "local_defaults"})
		refs = append(refs, treeFiles(local, "local_", o)...)
	}
	refs = append(refs, FileRef{Path: filepath.Join(src, "local.ini"), Namespace: "local"})
	refs = append(refs, FileRef{Path: filepath.Join(o.SysConfDir, "private.ini"), Namespace: "system_private", Private: true})
	if o.LocalDir != "" {
		refs = append(refs, FileRef{Path: filepath.Join(o.LocalDir, "config", "private.ini"), Namespace: "local_private", Private: true})
	}
	refs = append(refs, FileRef{Path: filepath.Join(src, "private.ini"), Namespace: "private", Private: true})
	return refs
}

func (o Options) withDefaults() Options {
	if o.SysConfDir == "" {
		o.SysConfDir = DefaultSysConfDir
	}
	if o.LocalDir != "" {
		if abs, err := filepath.Abs(o.LocalDir); err == nil {
			o.LocalDir = abs
		}
	}
	return o
}

// buildKeys sets the [build] keys that exist before any file is read.
func buildKeys(c *Config, o Options) {
	cl := Origin{Namespace: "command line"}
	set := func(k, v string) { c.set("build", k, v, cl) }
	// In the order EIB's ImageBuilder.__init__ (run-build) sets them.
	set("product", o.Product)
	set("branch", o.Branch)
	set("personality", o.Personality)
	set("dry_run", boolString(o.DryRun))
	set("use_production_ostree", boolString(o.UseProductionOSTree))
	set("series", Series(o.Branch))
	set("arch", o.Arch)
	set("platform", o.Platform)
	if o.LocalDir != "" {
		set("localdir", o.LocalDir)
		set("localdatadir", "${localdir}/data")
	}
	set("srcdir", o.SrcDir)
	set("cachedir", DefaultCacheDir)
	set("sysconfdir", o.SysConfDir)
	set("build_version", o.BuildVersion)
}

// ReadFile parses one config file; ok is false when it does not exist (a
// dangling symbolic link does not exist either). A config file must be a
// regular file, or a symbolic link to one (eib's rule): a FIFO, a socket,
// a device or a directory is an *Error naming the path, found without
// blocking (the path is checked with stat before it is opened, opened
// with O_NONBLOCK, and checked again with fstat), where reading it could
// wait forever.
func ReadFile(path string) (f *File, ok bool, err error) {
	data, ok, err := ReadRegular(path, "a config file")
	if !ok || err != nil {
		return nil, ok, err
	}
	f, err = Parse(path, data)
	return f, err == nil, err
}

// ReadRegular reads the regular file at path (following symbolic links);
// ok is false when there is none. Anything else (a FIFO, a socket, a
// device, a directory) is an *Error naming the path and saying that what
// (e.g. "a config file", "the buildscript") must be a regular file; it is
// found without blocking, as ReadFile says.
func ReadRegular(path, what string) (data []byte, ok bool, err error) {
	notRegular := func(m fs.FileMode) error {
		return &Error{File: path, Msg: fmt.Sprintf("not a regular file (%s): %s must be a regular file or a symbolic link to one", FileKind(m), what)}
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, &Error{File: path, Msg: err.Error()}
	}
	if !fi.Mode().IsRegular() {
		return nil, false, notRegular(fi.Mode())
	}
	// O_NONBLOCK: if the file was replaced by a FIFO since the stat,
	// opening it must not wait for a writer.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, &Error{File: path, Msg: err.Error()}
	}
	defer fh.Close()
	if fi, err = fh.Stat(); err != nil {
		return nil, false, &Error{File: path, Msg: err.Error()}
	}
	if !fi.Mode().IsRegular() {
		return nil, false, notRegular(fi.Mode())
	}
	data, err = io.ReadAll(fh)
	if err != nil {
		return nil, false, &Error{File: path, Msg: err.Error()}
	}
	return data, true, nil
}

// FileKind names the type of a file that is not a regular file ("a
// FIFO", "a directory" ...), for errors about inputs that must be regular
// files.
func FileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "type " + m.Type().String()
}

// Load reads the whole layered configuration as EIB's configure and
// check_config (run-build) do: the public files (Candidates) into one
// configuration; a copy of it, merged, is the public configuration; the
// private files are read into the configuration itself, which is then
// merged once (so private _add/_del keys count like any other) and
// checked against the schema.
func Load(o Options) (*Loaded, error) {
	o = o.withDefaults()
	// SOURCE_DATE_EPOCH is checked even when the caller gives the build
	// version: the image stage takes its times from it too.
	version, err := DefaultBuildVersion(os.Getenv(SourceDateEpochVar), time.Now())
	if err != nil {
		return nil, &Error{Section: "build", Key: "build_version", Msg: err.Error()}
	}
	if o.BuildVersion == "" {
		o.BuildVersion = version
	}
	if o.SrcDir == "" {
		return nil, errors.New("config: no source directory (srcdir) given")
	}
	for _, a := range []struct{ name, v string }{
		{"product", o.Product}, {"branch", o.Branch}, {"arch", o.Arch},
		{"platform", o.Platform}, {"personality", o.Personality},
	} {
		if a.v == "" || strings.ContainsAny(a.v, "/\x00") || a.v == "." || a.v == ".." {
			return nil, &Error{Section: "build", Key: a.name, Msg: fmt.Sprintf("%q is not a valid %s name", a.v, a.name)}
		}
	}
	l := &Loaded{Options: o}
	full := New()
	buildKeys(full, o)
	for _, ref := range Candidates(o) {
		if ref.Private && l.Public == nil {
			if l.Public, err = publicConfig(full); err != nil {
				return nil, err
			}
		}
		f, ok, err := ReadFile(ref.Path)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := full.loadFile(ref, f); err != nil {
			return nil, err
		}
		l.Files = append(l.Files, ref)
	}
	if err := full.merge(); err != nil {
		return nil, err
	}
	// eib's rule: no value past MaxValueLen, no more than MaxConfigLen
	// in all.
	// full does not change from here on: one run of interpolation
	// serves the checks below.
	x := full.newInterpolation()
	if err := full.checkSizes(x); err != nil {
		return nil, err
	}
	l.Full = full

	// References are resolved where values are used (merged lists above,
	// the schema's keys below, the hooks' environment and the stages), not
	// here: like EIB, a plain option may refer to a key that is missing.
	schema, err := ReadSchema(SchemaPaths(o)...)
	if err != nil {
		return nil, err
	}
	if err := schema.Check(full); err != nil {
		var se *SchemaError
		if !o.KeepSchemaViolations || !errors.As(err, &se) {
			return nil, err
		}
		l.SchemaViolations = se.Violations
	}
	privs, err := privateValues(full, l.Public, x)
	if err != nil {
		return nil, err // a private value too short to mask
	}
	l.Secrets = PrivateStrings(privs)
	return l, nil
}

// publicConfig is EIB's public configuration: a copy of the configuration
// read before the private files (publicCopy), merged.
func publicConfig(c *Config) (*Config, error) {
	pub := c.publicCopy()
	if err := pub.merge(); err != nil {
		return nil, err
	}
	return pub, nil
}
