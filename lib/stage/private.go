package stage

import (
	"errors"
	"fmt"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/config"
)

// flow is one value of the configuration that a stage writes into the
// image, its outputs or the published files.
type flow struct {
	into         string // what it becomes, for the message
	section, key string // the key it is read from
	value        string
	// empty, when not "", is the key that was empty so that this key's
	// value is used ([ostree] deploy_url, whose fallback is pull_url).
	empty string
}

// imageFlows are the values of the configuration that the image and ostree
// stages put where anyone with the image or the published files reads
// them (see deploy, writeTreeInfo, makeDiskImages and writeImageOutputs):
// the deployed remote (name, URL, branch), the OS name, the kernel
// arguments, the pulled ref (<outversion>.ostree.txt, the manifest), the
// outversion (every output's file name, the image's version xattr, the
// published directory) and the keys of the shipped image hooks 50-hostname,
// 50-timezone and 50-language.
func imageFlows(b *build.Build, runs func(string) bool, s *ostreeSettings) []flow {
	var fl []flow
	// Each key read on its own, an error as "" (the readers of the
	// stages report the errors).
	str := func(section, key string) string {
		r := b.Config.Read()
		return optional(r, section, key, r.String)
	}
	deployURL := func() string {
		r := b.Config.Read()
		return optional(r, "ostree", "deploy_url", r.URL)
	}
	if s != nil && runs("image") {
		url := flow{into: "the image's OSTree remote URL", section: "ostree", key: "deploy_url", value: s.deployURL}
		if deployURL() == "" {
			url.key, url.empty = s.pullURLKey, "deploy_url"
		}
		branch := flow{into: "the image's OSTree branch", section: "ostree", key: "ref_deploy", value: s.refDeploy}
		if str("ostree", "ref_deploy") == "" {
			branch.key, branch.empty = "ref", "ref_deploy"
		}
		fl = append(fl, url, branch,
			flow{into: "the image's OSTree remote name", section: "ostree", key: "remote", value: s.remote},
			flow{into: "the image's OS name (its ostree stateroot)", section: "ostree", key: "os", value: s.os},
			flow{into: "the image's kernel command line", section: "ostree", key: "kargs", value: strings.Join(s.kargs, " ")},
			flow{into: "<outversion>.ostree.txt and the manifest (the pulled ref)", section: "ostree", key: "ref", value: s.ref})
		for _, k := range []struct{ key, hook string }{{"hostname", "50-hostname"}, {"timezone", "50-timezone"}, {"language", "50-language"}} {
			fl = append(fl, flow{into: "the image (image hook " + k.hook + ")", section: "image", key: k.key, value: str("image", k.key)})
		}
	}
	if runs("image") || runs("manifest") || runs("publish") {
		fl = append(fl, flow{into: "the name of every output and published file and the image's version", section: "build", key: "outversion", value: str("build", "outversion")})
	}
	return fl
}

// flatpakFlows are the values of the Flatpak remotes that the image's
// installation keeps (its remotes' URLs and titles; nil: no Flatpak).
func flatpakFlows(fs *flatpakSettings) []flow {
	if fs == nil {
		return nil
	}
	var fl []flow
	for _, rm := range fs.s.Remotes {
		url := flow{into: "the image's Flatpak remote " + rm.Name + " URL", section: rm.Section, key: "deploy_url", value: rm.DeployURL}
		if rm.DeployURL == "" {
			url.key, url.empty, url.value = "url", "deploy_url", rm.URL
		}
		fl = append(fl, url,
			flow{into: "the image's Flatpak remote " + rm.Name + " title", section: rm.Section, key: "title", value: rm.Title})
	}
	return fl
}

// checkPrivateFlows fails when a value that the image, its outputs or the
// published files would carry holds a private value
// (config.PrivateValues: a private file set or changed it): a private
// value never reaches an image. The error names the key to set, and where
// the private value comes from, never the value.
func checkPrivateFlows(b *build.Build, runs func(string) bool, s *ostreeSettings, fs *flatpakSettings) error {
	privs := config.PrivateValues(b.Config, b.Public)
	if len(privs) == 0 {
		return nil
	}
	var errs []error
	flows := imageFlows(b, runs, s)
	if runs("image") {
		flows = append(flows, flatpakFlows(fs)...)
	}
	for _, f := range flows {
		if err := f.check(privs); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// check returns the error of a flow that carries a private value.
func (f flow) check(privs []config.Private) error {
	p, ok := config.FindPrivate(f.value, privs)
	if !ok {
		return nil
	}
	from := p.Origin.Where()
	if p.Section != f.section || p.Key != f.key {
		name := fmt.Sprintf("[%s] %s", p.Section, p.Key)
		if p.Section == config.DefaultSection {
			name = "[DEFAULT] " + p.Key
		}
		if from == "" {
			from = "the private " + name
		} else {
			from = "the private " + name + ", " + from
		}
	}
	if from != "" {
		from = " (" + from + ")"
	}
	if f.empty != "" {
		return fmt.Errorf("[%s] %s is empty, so %s would be [%s] %s, which holds a private value%s: set [%s] %s",
			f.section, f.empty, f.into, f.section, f.key, from, f.section, f.empty)
	}
	return fmt.Errorf("[%s] %s holds a private value%s, which would reach %s: set it in a public file, without the private value",
		f.section, f.key, from, f.into)
}
