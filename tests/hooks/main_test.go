// Package hooks tests eib as a drop-in for the hooks written for EIB
// (Endless OS's image builder): lib/eib.py under Debian's python3 and
// pytest, and a demo build whose localdir hooks use every contract EIB's
// hooks rely on (the eib Python module, the EIB_* variables of EIB's
// [build] keys, lib/eib.sh's functions, the deployment's /tmp shared by
// host and .chroot hooks).
package hooks

import (
	"testing"

	"github.com/eib-builder/eib/tests/harness"
)

var (
	srcRoot = harness.Src()
	eibBin  string
)

func TestMain(m *testing.M) { harness.Main(m, &eibBin, nil) }

// needDemo builds the demo OS repo and serves it on 127.0.0.1, once
// (harness.DemoRepo; its cache is EIB_TEST_DEMO_CACHE when set, else a
// temporary one); it skips a test that cannot run here.
func needDemo(t *testing.T) harness.Demo {
	t.Helper()
	return harness.NeedDemo(t, "ostree", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage", "bwrap", "/usr/bin/python3")
}
