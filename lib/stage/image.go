package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/hostclean"
	"github.com/eib-builder/eib/lib/mount"
	"github.com/eib-builder/eib/lib/ostree"
)

func init() { Register(imageStage{}) }

// imageStage deploys the pulled commit into a fresh sysroot, runs the
// content hooks on it, runs the image hooks with the deployment set up
// like a running system (mounts torn down again, even on failure), and
// then makes the disk images (makeDiskImages).
type imageStage struct{}

func (imageStage) Name() string { return "image" }

func (imageStage) Run(ctx context.Context, b *build.Build) error {
	s, err := readOSTreeSettings(b)
	if err != nil {
		return err
	}
	if err := deploy(ctx, b, s); err != nil {
		return err
	}
	dep := b.Deployment.Path
	if b.Hooks != nil {
		if err := b.Hooks.RunGroup(ctx, b, "content", dep); err != nil {
			return err
		}
	}
	mark := b.CleanupMark()
	err = setupImageRoot(b)
	if err == nil && b.Hooks != nil {
		err = b.Hooks.RunGroup(ctx, b, "image", dep)
	}
	if cerr := b.CleanupTo(mark); cerr != nil {
		err = errors.Join(err, fmt.Errorf("tearing down the image hook mounts: %w", cerr))
	}
	if err != nil {
		return err
	}
	return makeDiskImages(ctx, b)
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
	if err := repo.PullLocal(ctx, s.repoDir, s.remote, s.refDeploy); err != nil {
		return err
	}
	// eib writes the boot loader configuration itself (disk assembly).
	if err := repo.ConfigSet(ctx, "sysroot.bootloader", "none"); err != nil {
		return err
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
	b.Deployment = build.Deployment{Sysroot: s.checkout, Path: d.Path, VarDir: d.VarDir, Kargs: d.Options}
	b.SetEnv("OSTREE_DEPLOYMENT", d.Path)
	b.SetEnv("OSTREE_VAR", d.VarDir)
	b.SetEnv("OSTREE_CURRENT_DEPLOYMENT", d.Name())
	return writeTreeInfo(ctx, b, repo, s, refspec)
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
// image hooks. Every step registers its undo on the build, so CleanupTo
// (the caller's mark) takes it all down in reverse order.
func setupImageRoot(b *build.Build) error {
	dep, sysroot := b.Deployment.Path, b.Deployment.Sysroot
	in := func(p string) string { return filepath.Join(dep, p) }
	cacheDir, err := b.Get("build", "cachedir")
	if err != nil {
		return fmt.Errorf("[build] cachedir: %w", err)
	}
	// Private, so nothing mounted below leaks into the host's namespace.
	if err := mount.BindSelfPrivate(b, dep); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return mount.Proc(b, in("proc")) },
		func() error {
			// A fresh sysfs; where the kernel refuses one (some
			// containers), the host's.
			if err := mount.Sysfs(b, in("sys")); err != nil {
				b.Log.Debugf("%v; binding /sys instead", err)
				return mount.Bind(b, "/sys", in("sys"))
			}
			return nil
		},
		func() error { return mount.Bind(b, "/dev", in("dev")) },
		func() error { return mount.Bind(b, "/dev/pts", in("dev/pts")) },
		func() error { return mount.Tmpfs(b, in("tmp"), "mode=1777") },
		func() error { return mount.Bind(b, b.Deployment.VarDir, in("var")) },
		func() error { return mount.Bind(b, sysroot, in("sysroot")) },
		// Where .chroot hooks find the cache and the eib tree (as the
		// hook runner's sandbox has them).
		func() error {
			if err := os.MkdirAll(filepath.Join(cacheDir, "src"), 0o755); err != nil {
				return err
			}
			if err := os.MkdirAll(in("tmp/eib"), 0o755); err != nil {
				return err
			}
			return mount.BindReadOnly(b, cacheDir, in("tmp/eib"))
		},
		func() error { return mount.BindReadOnly(b, b.SrcDir, in("tmp/eib/src")) },
		func() error { return copyResolvConf(b, in("etc/resolv.conf")) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("setting up the deployment for the image hooks: %w", err)
		}
	}
	// Registered last, so it runs first: no hook process may keep a
	// mount busy.
	b.Defer("kill processes in "+dep, func() error {
		return hostclean.KillProcesses([]string{dep}, b.Log.Printf)
	})
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
