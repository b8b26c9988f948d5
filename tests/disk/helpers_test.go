// Package disk_test builds real disk images from fake OSTree-style sysroots
// and reads them back with sfdisk, debugfs and mtools.
package disk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/eib-builder/eib/lib/boot"
	"github.com/eib-builder/eib/lib/disk"
	"github.com/eib-builder/eib/tests/harness"
)

const (
	osName   = "demo"
	deplCsum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	bootCsum = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	kargs    = "root=LABEL=ostree rw console=ttyS0,115200n8 quiet"
)

// needTools skips the test when a tool the assembly runs is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	harness.Need(t, append([]string{"sfdisk", "mkfs.ext4", "debugfs", "e2fsck", "mkfs.vfat", "mmd", "mcopy"}, tools...)...)
	if os.Geteuid() != 0 {
		t.Skip("the sysroot fixtures need root (odd owners, device nodes, chattr)")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(content), mode))
	must(t, syscall.Chmod(path, uint32(mode))) // os.Chmod would drop 04000/02000
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	must(t, err)
	return b
}

// fixture is a fake deployed sysroot as `ostree admin deploy` leaves it.
type fixture struct {
	sysroot, deployment string
}

// deploymentRel is the deployment root inside the sysroot.
func (f fixture) deploymentRel() string {
	return "/ostree/deploy/" + osName + "/deploy/" + deplCsum + ".0"
}

// newSysroot makes a sysroot with two boot loader entries (the newer has
// version 2), a kernel and initramfs under boot/ostree, a deployment
// holding files, and a repo object hardlinked to one of them. The
// deployment root is immutable, as ostree leaves it.
func newSysroot(t *testing.T, dir string) fixture {
	t.Helper()
	f := fixture{sysroot: dir}
	f.deployment = filepath.Join(dir, f.deploymentRel())
	kdir := filepath.Join(dir, "boot", "ostree", osName+"-"+bootCsum)
	writeFile(t, filepath.Join(kdir, "vmlinuz-6.1.0-demo"), "kernel", 0o644)
	writeFile(t, filepath.Join(kdir, "initramfs-6.1.0-demo.img"), "initramfs", 0o644)
	entries := filepath.Join(dir, "boot", "loader.1", "entries")
	for _, e := range []struct{ file, title, version string }{
		{"ostree-1-demo.conf", "Demo OS 1.0 (ostree:1)", "1"},
		{"ostree-2-demo.conf", "Demo OS 2.0 (ostree:0)", "2"},
	} {
		writeFile(t, filepath.Join(entries, e.file), "title "+e.title+"\nversion "+e.version+
			"\noptions "+kargs+" ostree=/ostree/boot.1/demo/"+bootCsum+"/0\nlinux /ostree/"+osName+"-"+bootCsum+
			"/vmlinuz-6.1.0-demo\ninitrd /ostree/"+osName+"-"+bootCsum+"/initramfs-6.1.0-demo.img\n", 0o644)
	}
	must(t, os.Symlink("loader.1", filepath.Join(dir, "boot", "loader")))
	writeFile(t, filepath.Join(f.deployment, "usr", "bin", "hello"), "#!/bin/sh\necho hello\n", 0o755)
	writeFile(t, filepath.Join(f.deployment, "etc", "os-release"), "NAME=Demo\n", 0o644)
	// Symlinks to a directory and to a file (debugfs must not follow them).
	must(t, os.Symlink("usr/bin", filepath.Join(f.deployment, "bin")))
	must(t, os.Symlink("hello", filepath.Join(f.deployment, "usr", "bin", "hi")))
	must(t, os.MkdirAll(filepath.Join(dir, "ostree", "repo", "objects", "ab"), 0o755))
	must(t, os.Link(filepath.Join(f.deployment, "usr", "bin", "hello"),
		filepath.Join(dir, "ostree", "repo", "objects", "ab", "cdef.file")))
	must(t, os.MkdirAll(filepath.Join(dir, "ostree", "deploy", osName, "var"), 0o755))
	sh(t, "chattr", "+i", f.deployment)
	t.Cleanup(func() { exec.Command("chattr", "-i", f.deployment).Run() })
	return f
}

// build runs the whole pipeline the image stage runs, with a root
// partition of rootBytes instead of the sysroot's usage.
func build(t *testing.T, f fixture, p disk.Params, rootBytes int64, ids disk.IDs, epoch int64, extra func(*disk.Content)) (disk.Plan, string) {
	t.Helper()
	ctx := context.Background()
	layout, err := disk.ForPlatform(p)
	must(t, err)
	plan, err := disk.NewPlan(layout, rootBytes, 0)
	must(t, err)
	plan.AssignIDs(ids)
	work := t.TempDir()
	setup, err := boot.Prepare(ctx, plan, boot.Options{Sysroot: f.sysroot, Deployment: f.deployment,
		Kargs: kargs, TmpDir: work, Timeout: 1, Log: t.Logf})
	must(t, err)
	img := filepath.Join(work, "disk.img")
	c := disk.Content{Sysroot: f.sysroot, Deployment: f.deployment, Immutable: []string{f.deploymentRel()},
		Version: "demo-amd64-amd64.260101-000000.base", ESP: setup.ESP, Firmware: setup.Firmware, Raw: setup.Raw, Epoch: epoch, Log: t.Logf}
	if extra != nil {
		extra(&c)
	}
	must(t, disk.Assemble(ctx, plan, c, img))
	return plan, img
}

// sfdiskPart is one partition of `sfdisk --json`.
type sfdiskPart struct {
	Start int64  `json:"start"`
	Size  int64  `json:"size"`
	Type  string `json:"type"`
	UUID  string `json:"uuid"`
	Attrs string `json:"attrs"`
}

type sfdiskTable struct {
	PartitionTable struct {
		Label      string       `json:"label"`
		ID         string       `json:"id"`
		Partitions []sfdiskPart `json:"partitions"`
	} `json:"partitiontable"`
}

func readTable(t *testing.T, img string) sfdiskTable {
	t.Helper()
	var tab sfdiskTable
	must(t, json.Unmarshal([]byte(sh(t, "sfdisk", "--json", img)), &tab))
	return tab
}

func readAt(t *testing.T, img string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	must(t, err)
	return b
}

// debugfs runs a read-only debugfs request on the root filesystem.
func debugfs(t *testing.T, img string, root disk.Placed, req string) string {
	t.Helper()
	cmd := exec.Command("debugfs", "-R", req, img+"?offset="+itoa(root.Offset()))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs -R %q: %v\n%s", req, err, errb.String())
	}
	if e := strings.TrimSpace(strings.TrimPrefix(errb.String(), "debugfs 1.")); strings.Contains(e, "not found") {
		t.Fatalf("debugfs -R %q: %s", req, errb.String())
	}
	return out.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
