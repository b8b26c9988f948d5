package stage

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/check"
	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/disk"
	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/sign"
)

// validate checks, before the build takes the lock and touches anything,
// every setting that a planned stage would otherwise find wrong only once
// it runs, minutes into the build (osbuild's "declare, then execute";
// debos's verify step of an action). Each check calls the reader the
// stage itself uses, so every rule lives in one place:
//
//   - ostree, image: readOSTreeSettings (the source, its trusted keys
//     found, and each of them an OpenPGP key);
//   - image: readDiskSettings and diskLayout (arch, platform, [image]
//     partition_table, sdboot, max_size, bootloader_timeout; nothing
//     that needs the sysroot), readOutputSettings and sign.Check (the
//     compression, the signing key read and its passphrase tried), the
//     content and image hooks;
//   - check: readCheckSettings (the marker compiled, the integers) and,
//     with the image stage, the firmwares the image boots with
//     (check.FirmwaresFor);
//   - the hooks of every stage that runs and of the error stage
//     (hooks.GroupHooks: a missing hook, a name that is not a file name);
//   - the publish destinations ([publish] keys: the publish and the error
//     stage use them);
//   - checkPrivateFlows: no private value reaches the image, the outputs
//     or the published files.
//
// It returns every error found, each naming the file and line, section
// and key at fault.
func (p *Plan) validate(loaded *config.Loaded) error {
	b := p.NewBuild(loaded)
	runs := func(stage string) bool {
		_, skipped := p.Skipped[stage]
		return slices.Contains(p.Stages, stage) && !skipped
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	var ost *ostreeSettings
	if runs("ostree") || runs("image") {
		s, err := readOSTreeSettings(b)
		add(err)
		if err == nil {
			ost = &s
			p.settings.ostree = ost
			p.OSTree = &PlanOSTree{PullURL: s.pullURL, PullKey: s.pullURLKey, DeployURL: s.deployURL,
				Remote: s.remote, Ref: s.ref, RefDeploy: s.refDeploy, OS: s.os, GPGVerify: s.gpgVerify,
				TrustedKeys: append([]string{}, s.keys...)}
			for _, k := range s.keys {
				if err := sign.CheckPublicKeyFile(k); err != nil {
					add(fmt.Errorf("%w (a trusted key: every data/keys/*.asc is imported into the OSTree remote)", err))
				}
			}
		}
	}

	var layout *disk.Layout
	if runs("image") {
		if ds, err := readDiskSettings(b); err != nil {
			add(err)
		} else if l, err := diskLayout(b, ds); err != nil {
			add(err)
		} else {
			p.settings.disk = &ds
			layout = &l
			p.Layout = planLayout(l)
		}
		if out, err := readOutputSettings(b); err != nil {
			add(err)
		} else if signer, err := sign.Check(out.signing); err != nil {
			add(signingErr(b, err))
		} else {
			p.settings.output = &out
			p.Image = &PlanImage{Compression: string(out.compression), QCOW2: out.qcow2,
				SigningKey: out.signing.KeyFile, Signed: signer != nil, Artifacts: []string{}}
			for _, f := range out.formats {
				p.Image.Artifacts = append(p.Image.Artifacts, f.Name())
			}
		}
	}

	if runs("image") {
		fs, err := readFlatpakSettings(b)
		add(err)
		if fs != nil {
			p.settings.flatpak = fs
			p.Flatpak = fs.plan()
		}
	}

	// The destinations: of the publish stage, and of the error stage,
	// which runs when any stage fails (its log goes to them).
	if _, err := destinations(b); err != nil {
		add(locate(b, err))
	}

	if runs("check") {
		cs, err := readCheckSettings(b)
		add(locate(b, err))
		if err == nil {
			p.settings.check = &cs
			p.Check = &PlanCheck{Boot: cs.boot, Firmwares: []string{}, TimeoutSecs: int(cs.timeout.Seconds()),
				Marker: cs.marker.String(), MemoryMiB: cs.memoryMiB, Accel: cs.accel, AccelFrom: cs.accelFrom}
		}
		if err == nil && cs.boot && layout != nil {
			if fws, err := check.FirmwaresFor(layout.Arch, cs.firmware, layout.Firmware); err != nil {
				add(keyErrorf(b, "check", "firmware", "[check] firmware = %s: %s/%s image: %w", strings.TrimSpace(cs.firmware), layout.Arch, layout.Platform, err))
			} else {
				for _, fw := range fws {
					p.Check.Firmwares = append(p.Check.Firmwares, string(fw))
				}
			}
		}
	}

	// The hook groups, in the order the stages run them; the error
	// stage's too: it runs when any stage fails.
	for _, stage := range append(append([]string(nil), p.Stages...), ErrorStageName) {
		if stage != ErrorStageName && !runs(stage) {
			continue
		}
		for _, g := range hookGroups[stage] {
			hs, err := hooks.GroupHooks(b, g)
			if err != nil {
				add(hookErr(b, g, err))
				continue
			}
			files := []string{}
			for _, h := range hs {
				files = append(files, h.Path)
			}
			p.Hooks[g] = files
		}
	}

	add(checkPrivateFlows(b, runs, ost, p.settings.flatpak))
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return configErrors(errs)
}

// planLayout is the typed layout as the plan shows it.
func planLayout(l disk.Layout) *PlanLayout {
	pl := &PlanLayout{Arch: l.Arch, Platform: l.Platform, PartitionTable: string(l.Label),
		Bootloader: l.Bootloader, Firmware: append([]string{}, l.Firmware...), Partitions: []PlanPartition{}}
	for _, pt := range l.Partitions {
		pl.Partitions = append(pl.Partitions, PlanPartition{Role: string(pt.Role), Start: pt.Start, Size: pt.Size,
			Type: pt.TypeGUID, MBRType: pt.MBRType, FS: pt.FS, Label: pt.FSLabel})
	}
	return pl
}

// configErrors are the errors validate found, one per line.
type configErrors []error

func (e configErrors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = err.Error()
	}
	return fmt.Sprintf("%d configuration errors:\n%s", len(e), strings.Join(lines, "\n"))
}

func (e configErrors) Unwrap() []error { return e }

// hookGroups are the hook groups each stage runs (its Run).
var hookGroups = map[string][]string{
	"image": {
		"content", // on the deployment, before
		"image",
	},
	"check":        {"check"},
	"manifest":     {"manifest"},
	"publish":      {"publish"},
	ErrorStageName: {"error"},
}

// namedKey matches the "[section] key" an error message starts with.
var namedKey = regexp.MustCompile(`^\[([^\]]+)\] ([A-Za-z0-9_.-]+)`)

// locate places an error whose message starts with "[section] key" (as
// readCheckSettings' do) at the file and line that set the key. An error
// that only wraps the *config.Error of that key (which names the file,
// the section and the key already) is that error.
func locate(b *build.Build, err error) error {
	if err == nil {
		return nil
	}
	m := namedKey.FindStringSubmatch(err.Error())
	if m == nil || !b.Config.Has(m[1], m[2]) {
		return err
	}
	var ce *config.Error
	if errors.As(err, &ce) && ce.File != "" && ce.Section == m[1] && ce.Key == m[2] {
		return ce
	}
	// Likewise a *config.KeyError of that key, located already (the
	// typed readers, config.Reader, return one).
	var ke *config.KeyError
	if errors.As(err, &ke) && ke.Origin.Where() != "" && ke.Section == m[1] && ke.Key == m[2] {
		return ke
	}
	return b.Config.At(m[1], m[2], err)
}

// hookErr locates an error of a hook group's hooks (hooks.GroupHooks) at
// the key that listed the hook: the last <group>:hooks_add that added the
// name (config.Merge), else <group>:hooks itself.
func hookErr(b *build.Build, group string, err error) error {
	var he *build.HookError
	if !errors.As(err, &he) || he.Hook == "" {
		return keyErr(b, group, "hooks", err)
	}
	if m := b.Config.MergeOf(group, "hooks"); m != nil && !m.Verbatim {
		for i := len(m.Contributions) - 1; i >= 0; i-- {
			ct := m.Contributions[i]
			if ct.Add && slices.Contains(ct.Words, he.Hook) {
				return &config.KeyError{Section: group, Key: ct.Origin.Key, Origin: ct.Origin,
					Err: fmt.Errorf("[%s] %s: %w", group, ct.Origin.Key, err)}
			}
		}
	}
	return keyErr(b, group, "hooks", err)
}
