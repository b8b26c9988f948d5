package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	eibboot "github.com/eib-builder/eib/lib/boot"
	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/hooks"
	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/mount"
	"github.com/eib-builder/eib/lib/ostree"
)

// imageStage deploys the pulled commit into a fresh sysroot, runs the
// content hooks on it, runs the image hooks with the deployment set up
// like a running system (mounts torn down again, even on failure), and
// then makes the disk images (makeDiskImages).
//
// Everything a hook can see of the sysroot, the deployment and the
// environment is prepared the way EIB's stages/eib_image prepares it,
// step by step (deploy, then setupImageRoot).
type imageStage struct {
	// The settings the plan resolved (readOSTreeSettings,
	// readDiskSettings, readOutputSettings).
	ost  ostreeSettings
	disk diskSettings
	out  outputSettings
	fp   *flatpakSettings // nil: no Flatpak apps (lib/stage/flatpak.go)
}

func (imageStage) Name() string { return "image" }

func (st imageStage) Run(ctx context.Context, b *build.Build) error {
	if err := deploy(ctx, b, st.ost); err != nil {
		return err
	}
	dep := b.Deployment.Path
	// The Flatpak content first, as EIB's content hook 50-flatpak.
	if st.fp != nil {
		if err := pullFlatpaks(ctx, b, st.fp); err != nil {
			return err
		}
	}
	if b.Hooks != nil {
		if err := b.Hooks.RunGroup(ctx, b, "content", dep); err != nil {
			return err
		}
	}
	if err := installOrNoFlatpaks(ctx, b, st.fp); err != nil {
		return err
	}
	mark := b.CleanupMark()
	err := setupImageRoot(b)
	if err == nil {
		err = recreateOutDir(b)
	}
	if err == nil {
		// Files the image hooks write into outdir are recorded.
		err = runHooks(ctx, b, "image", dep)
	}
	if cerr := b.CleanupTo(mark); cerr != nil {
		err = errors.Join(err, fmt.Errorf("tearing down the image hook mounts: %w", cerr))
	}
	if err != nil {
		return err
	}
	return makeDiskImages(ctx, b, st.disk, st.out)
}

// deploy recreates the sysroot, deploys the commit of the cache repo into
// it, and exports where the deployment is.
func deploy(ctx context.Context, b *build.Build, s ostreeSettings) error {
	if b.OSTree.Commit == "" {
		// The ostree stage did not run in this build (a buildscript
		// subset): use what the cache repo holds.
		commit, err := ostree.Open(s.repoDir).RevParse(ctx, s.refDeploy)
		if err != nil {
			return fmt.Errorf("the ostree stage did not run and the cache repo has no %s: %w", s.refDeploy, err)
		}
		b.OSTree = s.info(commit, "")
	}
	logf := b.Log.Printf
	if err := hostclean.RemoveAll(s.checkout, logf); err != nil {
		return fmt.Errorf("recreating the sysroot [ostree] checkout: %w", err)
	}
	// The sysroot is scratch: removed at the end of the build, whatever
	// happens (a half-made one must not stay behind).
	b.Defer("remove sysroot "+s.checkout, func() error { return hostclean.RemoveAll(s.checkout, logf) })
	sysroot, err := ostree.InitFS(ctx, s.checkout)
	if err != nil {
		return err
	}
	if err := sysroot.OSInit(ctx, s.os); err != nil {
		return err
	}
	repo := sysroot.Repo()
	if err := repo.AddRemote(ctx, ostree.Remote{
		Name: s.remote, URL: s.deployURL, Branches: []string{s.refDeploy},
		GPGVerify: s.gpgVerify, GPGVerifySummary: verifySummary(s.gpgVerify, s.deployURL),
		Keys: s.keys,
	}); err != nil {
		return err
	}
	if err := repo.PullLocalVerified(ctx, ostree.VerifiedPull{Src: ostree.Open(s.repoDir), SrcName: "[ostree] repodir", Remote: s.remote, Ref: s.refDeploy, Logf: b.Log.Printf}); err != nil {
		return err
	}
	collectionID, err := remoteCollectionID(ctx, b, repo, s)
	if err != nil {
		return err
	}
	r := b.Config.Read()
	arch := r.String("build", "arch")
	if err := r.Err(); err != nil {
		return err
	}
	if err := prepareBootDir(ctx, repo, s.checkout, arch); err != nil {
		return err
	}
	if sdboot, err := configBool(b, "image", "sdboot"); err != nil {
		return err
	} else if sdboot {
		// EIB exports it for its ostree's PAYG deploy; the hooks
		// inherit it.
		b.SetEnv("OSTREE_DEPLOY_PAYG", "1")
	}
	refspec := s.remote + ":" + s.refDeploy
	b.Log.Printf("deploying %s (%s) as OS %s, kernel arguments %q", refspec, b.OSTree.Commit, s.os, strings.Join(s.kargs, " "))
	d, err := sysroot.Deploy(ctx, ostree.Deploy{OS: s.os, Refspec: refspec, Kargs: s.kargs})
	if err != nil {
		return err
	}
	if d.Checksum != b.OSTree.Commit {
		return fmt.Errorf("deployed commit %s, but %s is %s", d.Checksum, s.refDeploy, b.OSTree.Commit)
	}
	// As EIB: `ostree remote add` on the booted system then writes the
	// repo config, not /etc/ostree/remotes.d (which flatpak mishandles).
	if err := repo.ConfigSet(ctx, "core.add-remotes-config-dir", "false"); err != nil {
		return err
	}
	if collectionID != "" {
		// As EIB: P2P updates verify per-commit metadata, not the
		// summary's signature.
		group := "remote \"" + s.remote + "\"."
		if err := repo.ConfigSet(ctx, group+"collection-id", collectionID); err != nil {
			return err
		}
		if err := repo.ConfigSet(ctx, group+"gpg-verify-summary", "false"); err != nil {
			return err
		}
	}
	b.Deployment = build.Deployment{Sysroot: s.checkout, Path: d.Path, VarDir: d.VarDir, Kargs: d.Options}
	b.SetEnv("OSTREE_DEPLOYMENT", d.Path)
	b.SetEnv("OSTREE_VAR", d.VarDir)
	b.SetEnv("OSTREE_CURRENT_DEPLOYMENT", d.Name())
	return writeTreeInfo(ctx, b, repo, s, refspec)
}

// remoteCollectionID returns the collection ID of the deployed remote's
// summary when [ostree] enable_p2p_updates is on, "" otherwise, and pulls
// the remote's ostree-metadata ref (repo metadata for USB updates) when
// it has one. EIB's stages/eib_image does both from the deploy URL
// (helpers/fetch-remote-collection-id; `ostree pull REMOTE
// ostree-metadata`, which it runs even without P2P and which fails on a
// repo without a collection ID, so without that ref).
func remoteCollectionID(ctx context.Context, b *build.Build, repo *ostree.Repo, s ostreeSettings) (string, error) {
	if !s.p2p {
		b.Log.Debugf("[ostree] enable_p2p_updates is off: the deployed remote gets no collection ID and no ostree-metadata")
		return "", nil
	}
	id, err := repo.RemoteCollectionID(ctx, s.remote)
	if err != nil {
		return "", fmt.Errorf("[ostree] enable_p2p_updates: reading the collection ID of %s (%s): %w", s.remote, s.deployURL, err)
	}
	if id == "" {
		b.Log.Printf("the summary of %s (%s) has no collection ID: no P2P updates, no ostree-metadata", s.remote, s.deployURL)
		return "", nil
	}
	b.Log.Printf("remote %s has collection ID %s: pulling its ostree-metadata, enabling P2P updates", s.remote, id)
	if err := repo.Pull(ctx, ostree.Pull{Remote: s.remote, Refs: []string{"ostree-metadata"},
		Attempts: pullAttempts, RetryDelay: 2 * time.Second}); err != nil {
		return "", err
	}
	return id, nil
}

// prepareBootDir sets the sysroot's /boot and boot loader up before the
// deploy, as EIB's stages/eib_image: on arm64 an empty boot/loader.0 with
// a uEnv.txt (ostree's u-boot backend then writes the kernel's), linked as
// boot/loader and boot/uEnv.txt, and sysroot.bootloader = uboot; on the
// other arches boot/grub and the menu ostree keeps current itself
// (boot.PrepareOSTreeMenu: sysroot.bootloader = syslinux, which eib's GRUB
// reads when the OS ships ostree; otherwise eib writes a static grub.cfg
// when it assembles the disk).
func prepareBootDir(ctx context.Context, repo *ostree.Repo, sysroot, arch string) error {
	boot := filepath.Join(sysroot, "boot")
	loader := "none"
	if arch == "arm64" {
		loader = "uboot"
		if err := os.MkdirAll(filepath.Join(boot, "loader.0"), 0o755); err != nil {
			return fmt.Errorf("preparing the sysroot's boot directory: %w", err)
		}
		if err := os.Symlink("loader.0", filepath.Join(boot, "loader")); err != nil {
			return fmt.Errorf("preparing the sysroot's boot directory: %w", err)
		}
		if err := os.WriteFile(filepath.Join(boot, "loader.0", "uEnv.txt"), nil, 0o644); err != nil {
			return fmt.Errorf("preparing the sysroot's boot directory: %w", err)
		}
		if err := os.Symlink("loader/uEnv.txt", filepath.Join(boot, "uEnv.txt")); err != nil {
			return fmt.Errorf("preparing the sysroot's boot directory: %w", err)
		}
	} else {
		if err := os.MkdirAll(filepath.Join(boot, "grub"), 0o755); err != nil {
			return fmt.Errorf("preparing the sysroot's boot directory: %w", err)
		}
		var err error
		if loader, err = eibboot.PrepareOSTreeMenu(sysroot); err != nil {
			return fmt.Errorf("preparing the sysroot's boot directory: %w", err)
		}
	}
	return repo.ConfigSet(ctx, "sysroot.bootloader", loader)
}

// configBool reads section:key as a boolean (config.Reader.Bool); a
// missing key is false.
func configBool(b *build.Build, section, key string) (bool, error) {
	r := b.Config.Read()
	v := optional(r, section, key, r.Bool)
	return v, r.Err()
}

// writeTreeInfo writes ${tmpdir}/ostree.txt: the branch and `ostree show`
// of the deployed commit.
func writeTreeInfo(ctx context.Context, b *build.Build, repo *ostree.Repo, s ostreeSettings, refspec string) error {
	tmpdir, err := b.Dir("tmpdir")
	if err != nil {
		return err
	}
	show, err := repo.Show(ctx, refspec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(tmpdir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(tmpdir, "ostree.txt")
	if err := os.WriteFile(path, []byte("Branch "+s.ref+"\n"+show), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// setupImageRoot makes the deployment look like a running system for the
// image hooks, step by step as EIB's stages/eib_image does before
// run_hooks image. Every step registers its undo on the build, so
// CleanupTo (the caller's mark) takes it all down in reverse order.
func setupImageRoot(b *build.Build) error {
	dep, sysroot := b.Deployment.Path, b.Deployment.Sysroot
	in := func(p string) string { return filepath.Join(dep, p) }
	cacheDir, err := b.Dir("cachedir")
	if err != nil {
		return err
	}
	steps := []func() error{
		// The deployment bound over itself, private (nothing mounted
		// below leaks into the host's namespace), and bound again so
		// that the root's parent mount is private too (bubblewrap's
		// pivot_root needs both).
		func() error { return mount.BindSelfPrivate(b, dep) },
		func() error { return mount.Bind(b, dep, dep) },
		func() error {
			// A fresh sysfs; where the kernel refuses one (some
			// containers), the host's.
			if err := mount.Sysfs(b, in("sys")); err != nil {
				b.Log.Debugf("%v; binding /sys instead", err)
				return mount.Bind(b, "/sys", in("sys"))
			}
			return nil
		},
		func() error { return mount.Proc(b, in("proc")) },
		func() error { return mount.Bind(b, "/dev", in("dev")) },
		func() error { return mount.Bind(b, "/dev/pts", in("dev/pts")) },
		func() error { return mount.Tmpfs(b, in("tmp"), "mode=1777") },
		func() error { return mount.Bind(b, b.Deployment.VarDir, in("var")) },
		func() error { return mount.Bind(b, sysroot, in("sysroot")) },
		// The cache and eib's tree, writable as in EIB, where the
		// hook runner's chroot finds them (hooks.ChrootCacheDir and
		// ChrootSrcDir, exported as EIB_CACHEDIR_CHROOT and
		// EIB_SRCDIR_CHROOT; EIB's stages/eib_image binds them at
		// /tmp/eos-image-builder and /tmp/eos-image-builder/src).
		func() error {
			for _, d := range []string{filepath.Join(cacheDir, "src"), in(hooks.ChrootCacheDir)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
			}
			return mount.Bind(b, cacheDir, in(hooks.ChrootCacheDir))
		},
		func() error { return mount.Bind(b, b.SrcDir, in(hooks.ChrootSrcDir)) },
		func() error { return copyResolvConf(b, in("etc/resolv.conf")) },
		func() error { return makeUsrLocalTarget(b, dep) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("setting up the deployment %s for the image hooks: %w", dep, err)
		}
	}
	// Registered last, so it runs first: no hook process may keep a
	// mount busy.
	b.Defer("kill processes in "+dep, func() error {
		return hostclean.KillProcesses([]string{dep}, b.Log.Printf)
	})
	return nil
}

// makeUsrLocalTarget creates what /usr/local links to when it is a symlink
// (OSTree systems link it to ../var/local, which systemd-tmpfiles would
// only create at boot), so that image hooks can populate /usr/local, as
// EIB's stages/eib_image does. The link is followed as the booted OS
// would follow it, inside the deployment (an absolute target starts at
// the deployment's root); through the /var bind, ../var/local lands in
// OSTREE_VAR/local.
func makeUsrLocalTarget(b *build.Build, dep string) error {
	st, err := os.Lstat(filepath.Join(dep, "usr", "local"))
	if errors.Is(err, os.ErrNotExist) || err == nil && st.Mode()&os.ModeSymlink == 0 {
		return nil
	} else if err != nil {
		return err
	}
	target, err := inRoot(dep, "/usr/local")
	if err != nil {
		return fmt.Errorf("/usr/local: %w", err)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("creating the target of the /usr/local link: %w", err)
	}
	b.Log.Debugf("/usr/local is a link: created its target %s", target)
	return nil
}

// maxLinks is how many symlinks inRoot follows before it gives up (the
// kernel's own limit).
const maxLinks = 40

// inRoot returns the host path of p (a path as the OS in root sees it)
// with every symlink followed as if root were /: an absolute target starts
// again at root, and ".." never climbs above it. The part of p that does
// not exist yet is kept as written.
func inRoot(root, p string) (string, error) {
	done := ""
	rest := strings.Split(p, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if done = path.Dir(done); done == "." || done == "/" {
				done = ""
			}
			continue
		}
		next := path.Join(done, c)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if err != nil || st.Mode()&os.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: more than %d symbolic links", p, maxLinks)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = ""
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(root, done), nil
}

// recreateOutDir empties outdir before the image hooks, as EIB's
// stages/eib_image does (recreate_dir "${EIB_OUTDIR}"): the hooks start with
// an empty outdir, and what a content hook put there is gone. The records
// of files in outdir (b.Artifacts, of an earlier run of the stage) go
// with it.
func recreateOutDir(b *build.Build) error {
	outdir, err := b.Dir("outdir")
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(outdir); err == nil && len(ents) > 0 {
		b.Log.Printf("emptying outdir %s before the image hooks (%d entries), as EIB does", outdir, len(ents))
	}
	if err := os.RemoveAll(outdir); err != nil {
		return fmt.Errorf("recreating outdir: %w", err)
	}
	if err := os.MkdirAll(outdir, 0o755); err != nil {
		return fmt.Errorf("recreating outdir: %w", err)
	}
	b.Artifacts = nil
	return nil
}

// copyResolvConf puts the host's resolv.conf into the deployment for the
// hooks' network access, setting aside what the OS ships and putting it
// back afterwards.
func copyResolvConf(b *build.Build, dst string) error {
	host, err := os.Open("/etc/resolv.conf")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer host.Close()
	saved := dst + ".eib-saved"
	hadOwn := false
	if _, err := os.Lstat(dst); err == nil {
		if err := os.Rename(dst, saved); err != nil {
			return err
		}
		hadOwn = true
	}
	restore := func() error {
		if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if hadOwn {
			return os.Rename(saved, dst)
		}
		return nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return errors.Join(err, restore())
	}
	_, err = io.Copy(out, host)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("copying /etc/resolv.conf to %s: %w", dst, err), restore())
	}
	b.Defer("remove "+dst, restore)
	return nil
}
