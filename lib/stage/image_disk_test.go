package stage

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/build"
	"github.com/eib-builder/eib/lib/buildlog"
	"github.com/eib-builder/eib/lib/config"
)

// diskBuild is a build with a small deployed sysroot and the [image] keys
// of the disk image set (image overrides them).
func diskBuild(t *testing.T, image map[string]string) (*build.Build, string, *bytes.Buffer) {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "") // empty = not set
	dir := t.TempDir()
	c := config.New()
	for k, v := range map[string]string{"arch": "amd64", "platform": "amd64", "outversion": "os-1",
		"tmpdir": filepath.Join(dir, "tmp"), "outdir": filepath.Join(dir, "out")} {
		c.Set("build", k, v)
	}
	for k, v := range map[string]string{
		"partition_table": "gpt", "sdboot": "false", "rootfs_resize": "true", "max_size": "",
		"reproducible": "false", "bootloader_timeout": "1",
		"compression": "zst", "signing_key": filepath.Join(dir, "absent.asc"), "signing_passphrase_file": "",
		"signing_keyid": "", "gpg_homedir": filepath.Join(dir, "gnupg"), "qcow2": "false",
	} {
		if s, ok := image[k]; ok {
			v = s
		}
		c.Set("image", k, v)
	}
	sysroot := filepath.Join(dir, "sysroot")
	dep := filepath.Join(sysroot, "ostree/deploy/os/deploy/abc.0")
	for p, content := range map[string]string{
		"boot/ostree/os-def/vmlinuz-1":       "kernel",
		"boot/ostree/os-def/initramfs-1.img": "initramfs",
		"boot/loader/entries/ostree-1-os.conf": "title OS\nversion 1\noptions root=LABEL=ostree\n" +
			"linux /ostree/os-def/vmlinuz-1\ninitrd /ostree/os-def/initramfs-1.img\n",
		"ostree/deploy/os/deploy/abc.0/usr/bin/true": "#!/bin/sh\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(sysroot, p)), 0o755)
		if err := os.WriteFile(filepath.Join(sysroot, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var term bytes.Buffer
	b := &build.Build{Config: c, Public: c, Log: buildlog.New(&term, false, nil),
		Results: build.Results{Deployment: build.Deployment{Sysroot: sysroot, Path: dep, Kargs: "root=LABEL=ostree"}}}
	return b, dir, &term
}

func TestDiskImageStageMakesImageAndOutputs(t *testing.T) {
	for _, tool := range []string{"sfdisk", "mkfs.ext4", "debugfs", "mkfs.vfat", "mcopy", "grub-mkimage", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (make deps)", tool)
		}
	}
	b, dir, term := diskBuild(t, nil)
	defer b.Cleanup()
	if err := makeDiskImagesNow(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, term)
	}
	if len(b.Images) != 1 || b.Images[0].Path != filepath.Join(dir, "tmp", "os-1.img") || b.Images[0].Size < 1<<30 {
		t.Fatalf("b.Images = %+v", b.Images)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "os-1.img.zst")); err != nil {
		t.Errorf("no compressed output: %v", err)
	}
	for _, want := range []string{"disk layout amd64/amd64: gpt label", "boot loader grub", "e2fsck -fn of the root filesystem: clean"} {
		if !strings.Contains(term.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, term)
		}
	}
}

func TestDiskImageSettingsErrorsNameTheKey(t *testing.T) {
	for _, row := range []struct {
		image map[string]string
		env   string
		want  string
	}{
		{map[string]string{"max_size": "12G"}, "", "[image] max_size: \"12G\" is not an integer"},
		{map[string]string{"max_size": "-1"}, "", "[image] max_size: -1: not a number of bytes"},
		{map[string]string{"partition_table": "mbr"}, "", "[image] partition_table: \"mbr\" is not one of gpt, dos"},
		{map[string]string{"bootloader_timeout": "soon"}, "", "[image] bootloader_timeout: \"soon\" is not an integer (a number of seconds)"},
		{map[string]string{"bootloader_timeout": "-1"}, "", "[image] bootloader_timeout: -1 seconds: must be 0 or more"},
		{map[string]string{"sdboot": "maybe"}, "", "sdboot"},
		{nil, "yesterday", `SOURCE_DATE_EPOCH="yesterday": not a number of seconds`},
	} {
		b, _, _ := diskBuild(t, row.image)
		if row.env != "" {
			t.Setenv("SOURCE_DATE_EPOCH", row.env)
		}
		_, err := readDiskSettings(b)
		if err == nil || !strings.Contains(err.Error(), row.want) {
			t.Errorf("%v %q: error %v, want one naming %q", row.image, row.env, err, row.want)
		}
	}
}

func TestDiskImageSettingsReproducible(t *testing.T) {
	b, _, _ := diskBuild(t, nil)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	s, err := readDiskSettings(b)
	if err != nil || s.epoch != 1700000000 {
		t.Errorf("SOURCE_DATE_EPOCH: epoch %d, %v", s.epoch, err)
	}
	b, _, _ = diskBuild(t, map[string]string{"reproducible": "true"})
	s, err = readDiskSettings(b)
	if err != nil || s.epoch != -1 {
		t.Errorf("reproducible, read before the commit is known: epoch %d, %v", s.epoch, err)
	}
	if s.resolveEpoch(context.Background(), b); s.epoch != 0 {
		t.Errorf("reproducible without a commit: epoch %d", s.epoch)
	}
	b, _, _ = diskBuild(t, nil)
	if s, err := readDiskSettings(b); err != nil || s.epoch != -1 {
		t.Errorf("not reproducible: epoch %d, %v", s.epoch, err)
	}
}

func TestDiskImageUnsupportedPlatformFailsBeforeWork(t *testing.T) {
	b, dir, _ := diskBuild(t, nil)
	b.Config.Set("build", "platform", "pinebookpro")
	err := makeDiskImagesNow(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), `"amd64"`) || !strings.Contains(err.Error(), `"pinebookpro"`) {
		t.Fatalf("error %v does not name arch and platform", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp")); err == nil {
		t.Error("the tmpdir was touched before the layout was checked")
	}
}

func TestShowDateReadsTheCommitDate(t *testing.T) {
	show := "commit 9673f0a8\nParent:  a86f342c\nDate:  2026-11-22 08:53:34 +0000\nVersion: 1\n"
	if got := showDate(show); got != 1795337614 {
		t.Errorf("showDate = %d, want 1795337614", got)
	}
	if got := showDate("commit abc\n"); got != 0 {
		t.Errorf("no Date line: %d, want 0", got)
	}
}
