package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSysroot makes a sysroot prepared for ostree's syslinux backend with
// one BLS entry, the syslinux.cfg ostree would write for it (menu, "" =
// the matching one), and a deployment that ships ostree when withOSTree.
func fakeSysroot(t *testing.T, menu string, withOSTree bool) Options {
	t.Helper()
	sys := t.TempDir()
	if loader, err := PrepareOSTreeMenu(sys); err != nil || loader != "syslinux" {
		t.Fatalf("PrepareOSTreeMenu = %q, %v", loader, err)
	}
	dep := filepath.Join(sys, "ostree", "deploy", "os", "deploy", "abc.0")
	files := map[string]string{
		"boot/loader/entries/ostree-1-os.conf": "title OS 1\nversion 1\nlinux /ostree/os-x/vmlinuz\ninitrd /ostree/os-x/initramfs.img\noptions root=LABEL=ostree console=ttyS0,115200 ostree=/ostree/boot.1/os/x/0\n",
		"boot/ostree/os-x/vmlinuz":             "k",
		"boot/ostree/os-x/initramfs.img":       "i",
	}
	if menu == "" {
		menu = "DEFAULT OS 1 (ostree:0)\nLABEL OS 1 (ostree:0)\n\tKERNEL /boot/ostree/os-x/vmlinuz\n\tINITRD /boot/ostree/os-x/initramfs.img\n\tAPPEND root=LABEL=ostree console=ttyS0,115200 ostree=/ostree/boot.1/os/x/0\n"
	}
	files["boot/loader.0/syslinux.cfg"] = menu
	if withOSTree {
		files["ostree/deploy/os/deploy/abc.0/usr/bin/ostree"] = "#!/bin/true\n"
	}
	for rel, body := range files {
		p := filepath.Join(sys, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dep, 0o755); err != nil {
		t.Fatal(err)
	}
	return Options{Sysroot: sys, Deployment: dep, Timeout: 2}
}

func TestOSTreeMenuFollowsWhenTheOSShipsOSTree(t *testing.T) {
	o := fakeSysroot(t, "", true)
	entries, err := ReadEntries(o.Sysroot)
	if err != nil {
		t.Fatal(err)
	}
	ok, why, err := ostreeMenu(o, entries)
	if err != nil || !ok {
		t.Fatalf("ostreeMenu = %v, %q, %v; want the following menu", ok, why, err)
	}
	cfg := FollowingGrubConfig(entries, "", 2)
	for _, want := range []string{"syslinux_source /boot/syslinux/syslinux.cfg", "serial --unit=0 --speed=115200", "terminal_output serial console"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "vmlinuz") {
		t.Errorf("the following grub.cfg names a kernel (it must not change when the deployments do):\n%s", cfg)
	}
	// GRUB's syslinux parser boots nothing without a TIMEOUT line.
	if err := SetMenuTimeout(o.Sysroot, 0); err != nil {
		t.Fatal(err)
	}
	if err := SetMenuTimeout(o.Sysroot, 2); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(o.Sysroot, "boot", "loader.0", "syslinux.cfg"))
	if !strings.HasPrefix(string(b), "TIMEOUT 20\n") || strings.Count(string(b), "TIMEOUT") != 1 {
		t.Errorf("syslinux.cfg after SetMenuTimeout (written through the boot/loader link):\n%s", b)
	}
	if menu, err := ReadOSTreeMenu(o.Sysroot); err != nil || len(menu) != 1 || menu[0].Kernel != "/boot/ostree/os-x/vmlinuz" {
		t.Errorf("ReadOSTreeMenu = %+v, %v", menu, err)
	}
}

func TestNoOSTreeInTheDeploymentKeepsTheStaticMenu(t *testing.T) {
	o := fakeSysroot(t, "", false)
	entries, _ := ReadEntries(o.Sysroot)
	ok, why, err := ostreeMenu(o, entries)
	if err != nil || ok || !strings.Contains(why, "/usr/bin/ostree") {
		t.Errorf("ostreeMenu = %v, %q, %v; want the static menu, naming /usr/bin/ostree", ok, why, err)
	}
}

func TestABrokenOSTreeMenuIsAnErrorNamingTheFile(t *testing.T) {
	for name, menu := range map[string]string{
		"no kernel":     "LABEL OS 1 (ostree:0)\n\tAPPEND x\n",
		"stale":         "LABEL OS 0 (ostree:0)\n\tKERNEL /boot/ostree/os-old/vmlinuz\n",
		"not ostree's":  "# nothing\n",
		"missing files": "LABEL OS 1 (ostree:0)\n\tKERNEL /boot/ostree/os-x/vmlinuz\n\tINITRD /boot/ostree/os-x/gone.img\n",
	} {
		o := fakeSysroot(t, menu, true)
		entries, _ := ReadEntries(o.Sysroot)
		_, _, err := ostreeMenu(o, entries)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(o.Sysroot, OSTreeMenuPath)) {
			t.Errorf("%s: error %v, want one naming %s", name, err, OSTreeMenuPath)
		}
	}
}
