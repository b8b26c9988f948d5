package output

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eib-builder/eib/lib/sign/signtest"
	"github.com/eib-builder/eib/tests/harness"
)

// TestDemoBuildOutputsVerify builds the demo product (boot check off, qcow2
// on) and checks its outputs with the real tools: names, sha256sum -c,
// gpg --verify with the demo public key, zstd -t, the .size, the qcow2's
// virtual size and the manifest's image entries. The demo repo is
// harness.DemoRepo's (EIB_TEST_DEMO_CACHE may name a helpers/make-demo-repo
// cache to reuse).
func TestDemoBuildOutputsVerify(t *testing.T) {
	t0 := time.Now()
	demo := harness.NeedDemo(t, "ostree", "mkfs.ext4", "mkfs.vfat", "sfdisk", "grub-mkimage", "qemu-img", "zstd", "gpg", "sha256sum")
	t.Logf("demo repo ready in %.1f s", time.Since(t0).Seconds())
	dir := t.TempDir()
	t.Cleanup(func() { harness.AssertNoLeftovers(t, dir) })

	local := filepath.Join(dir, "local")
	buildCache := filepath.Join(dir, "cache")
	demo.Install(t, local)
	harness.WriteFiles(t, local, map[string]string{
		"config/defaults.ini": "[build]\ncachedir = " + buildCache + "\n\n[check]\nboot = false\n\n[image]\nqcow2 = true\n",
	})
	sysconf := filepath.Join(dir, "etc-eib")
	os.Mkdir(sysconf, 0o755)
	start := time.Now()
	r := run(t, []string{"EIB_SYSCONFDIR=" + sysconf}, eibBin, "--product", "demo", "--arch", "amd64", "--localdir", local, "--dry-run", "master")
	t.Logf("demo build: exit %d in %.1f s", r.Code, time.Since(start).Seconds())
	if r.Code != 0 {
		t.Fatalf("demo build exit %d:\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}

	outdir := filepath.Join(buildCache, "build", "out")
	imgs, _ := filepath.Glob(filepath.Join(outdir, "*.img.zst"))
	if len(imgs) != 1 {
		t.Fatalf("want one .img.zst in %s, found %q", outdir, imgs)
	}
	zst := filepath.Base(imgs[0])
	ov := strings.TrimSuffix(zst, ".img.zst")
	for _, f := range []string{zst, zst + ".sha256", zst + ".asc", zst + ".size", ov + ".img.sha256", ov + ".img.asc", ov + ".qcow2", ov + ".ostree.txt", ov + ".config.ini"} {
		if _, err := os.Stat(filepath.Join(outdir, f)); err != nil {
			t.Errorf("output missing: %v", err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(outdir, ".*.tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %q", m)
	}
	pub := filepath.Join(srcRoot, "data", "demo", "image-signing-key.DEMO-ONLY.asc")
	if err := signtest.Verify(t, pub, imgs[0], imgs[0]+".asc"); err != nil {
		t.Errorf("%s.asc: %v", zst, err)
	}
	runIn := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = outdir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t0 = time.Now()
	runIn("zstd", "-t", "-q", zst)
	runIn("sha256sum", "-c", zst+".sha256")
	// The uncompressed image: expand it, then its checksum and signature.
	runIn("zstd", "-d", "-q", zst)
	runIn("sha256sum", "-c", ov+".img.sha256")
	if err := signtest.Verify(t, pub, filepath.Join(outdir, ov+".img"), filepath.Join(outdir, ov+".img.asc")); err != nil {
		t.Errorf("%s.img.asc: %v", ov, err)
	}
	st, _ := os.Stat(filepath.Join(outdir, ov+".img"))
	t.Logf("%s (%d MiB, %d MiB compressed) checked in %.1f s", zst, st.Size()>>20, func() int64 { c, _ := os.Stat(imgs[0]); return c.Size() >> 20 }(), time.Since(t0).Seconds())
	size, _ := os.ReadFile(filepath.Join(outdir, zst+".size"))
	if strings.TrimSpace(string(size)) != strconv.FormatInt(st.Size(), 10) {
		t.Errorf("%s.size = %q, the image has %d bytes", zst, size, st.Size())
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	json.Unmarshal([]byte(runIn("qemu-img", "info", "--output=json", ov+".qcow2")), &info)
	if info.VirtualSize != st.Size()+10<<30 {
		t.Errorf("qcow2 virtual size %d, want the image's %d + 10 GiB", info.VirtualSize, st.Size())
	}
	ini, _ := os.ReadFile(filepath.Join(outdir, ov+".config.ini"))
	if !strings.Contains(string(ini), "compression = zst") {
		t.Errorf("%s.config.ini lacks the [image] compression:\n%s", ov, ini)
	}

	// The manifest lists the outputs with their checksum and signature.
	data, err := os.ReadFile(filepath.Join(outdir, ov+".manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Images map[string]map[string]any `json:"images"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range m.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	e := m.Images[zst]
	if e == nil {
		t.Fatalf("manifest images %q lack %s", names, zst)
	}
	sum := strings.Fields(runIn("sha256sum", zst))[0]
	if e["sha256"] != sum || e["signature"] != zst+".asc" || e["checksum"] != zst+".sha256" || e["extracted_size"] != float64(st.Size()) {
		t.Errorf("manifest entry for %s: %v", zst, e)
	}
	if e["extracted_file"] != ov+".img" || e["extracted_signature"] != ov+".img.asc" || e["extracted_checksum"] != ov+".img.sha256" {
		t.Errorf("manifest entry for %s lacks the raw image's files: %v", zst, e)
	}
}
