package ostree

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/eib-builder/eib/lib/ostree"
	"github.com/eib-builder/eib/lib/ostree/ostreetest"
	"github.com/eib-builder/eib/tests/harness"
)

const compatCollectionID = "org.example.EibCompat"

// compatRepo is an OSTree-style OS as EIB's users have them: /usr/local a
// link to ../var/local, a VERSION in os-release, signed commits, and a
// collection ID (so the summary also carries a signed ostree-metadata).
func compatRepo(t *testing.T) (dir, pubKey string) {
	t.Helper()
	ctx := context.Background()
	signer, pub := ostreetest.Key(t, "compat")
	tree := ostreetest.Tree(t)
	if err := os.Symlink("../var/local", filepath.Join(tree, "usr", "local")); err != nil {
		t.Fatal(err)
	}
	// /etc/os-release links to ../lib/os-release: /lib is usr/lib.
	if err := os.Symlink("usr/lib", filepath.Join(tree, "lib")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "usr", "lib", "os-release"), []byte("ID=eibtest\nVERSION=\"7.0.1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo, err := ostree.Init(ctx, filepath.Join(t.TempDir(), "repo"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.ConfigSet(ctx, "core.collection-id", compatCollectionID); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Commit(ctx, ostree.Commit{Branch: ostreetest.DemoRef, Tree: tree, Subject: "compat", Version: "7.0.1-meta", Signer: signer}); err != nil {
		t.Fatal(err)
	}
	if err := repo.UpdateSummary(ctx, signer); err != nil {
		t.Fatal(err)
	}
	return repo.Path, pub
}

// ostreeManifestHook writes ostree.json into the manifestdir from an image
// hook, as EIB's hooks/image/70-ostree-manifest does (here with jq, and a
// version of its own so that it differs from eib's).
const ostreeManifestHook = `repo="$EIB_OSTREE_CHECKOUT/ostree/repo"
cid=$(ostree --repo="$repo" config get "remote \"$EIB_OSTREE_REMOTE\".collection-id")
jq -n --arg remote "$EIB_OSTREE_REMOTE" --arg ref "$EIB_OSTREE_REF_DEPLOY" --arg url "$EIB_OSTREE_DEPLOY_URL" \
  --arg os "$EIB_OSTREE_OS" --arg cid "$cid" \
  '{ostree: {remote: $remote, ref: $ref, url: $url, os: $os, version: "hook-version", "collection-id": $cid}}' \
  > "$EIB_MANIFESTDIR/ostree.json"
`

// TestEIBUsersOSBuildsWithItsHooks builds (ostree, image, manifest) an OS
// whose /usr/local links to ../var/local, with the hooks an EIB user has:
// an image hook that runs mkdir -p "$OSTREE_DEPLOYMENT/usr/local/bin"
// (which failed with "File exists" before eib created the link's target,
// as EIB's stages/eib_image does), and one that writes ostree.json into
// the manifestdir (EIB's 70-ostree-manifest), which eib's own ostree
// fragment must not replace. The file the hook put in /usr/local is in the
// disk image, under the OS's /var; outdir was emptied before the image
// hooks; the manifest has the hook's values, eib's other keys and EIB's
// images.full, ostree.date and ostree.collection-id.
func TestEIBUsersOSBuildsWithItsHooks(t *testing.T) {
	harness.Need(t, "jq", "zstd", "sfdisk", "debugfs", "mkfs.ext4", "mkfs.vfat", "grub-mkimage")
	repo, pub := compatRepo(t)
	url := ostreetest.Serve(t, repo)
	p := newProject(t, "[content]\nhooks = 50-outdir\n\n[image]\nhooks = 50-usr-local 70-ostree-manifest\ncompression = zst\n")
	p.Write("buildscript", "ostree\nimage\nmanifest\n", 0o644)
	p.Write("config/product/demo.ini", "[ostree]\npull_url = "+url+"\ndeploy_url = "+url+"\nenable_p2p_updates = true\n", 0o644)
	p.trust(pub, "compat.asc")
	p.Write("hooks/content/50-outdir", `echo content > "$EIB_OUTDIR/from-a-content-hook"`+"\n", 0o644)
	p.Write("hooks/image/50-usr-local", `mkdir -p "$OSTREE_DEPLOYMENT/usr/local/bin"
echo hello > "$OSTREE_DEPLOYMENT/usr/local/bin/eib-hello"
`, 0o644)
	p.Write("hooks/image/70-ostree-manifest", ostreeManifestHook, 0o644)

	code, stdout, stderr := p.run()
	if code != 0 {
		t.Fatalf("eib exited %d: %s\n%s", code, harness.LastLine(stderr), stdout+stderr)
	}
	if _, err := os.Stat(filepath.Join(p.Outdir(), "from-a-content-hook")); !os.IsNotExist(err) {
		t.Errorf("outdir kept what a content hook wrote (%v); EIB empties it before the image hooks", err)
	}
	manifests, _ := filepath.Glob(filepath.Join(p.Outdir(), "*.manifest.json"))
	if len(manifests) != 1 {
		t.Fatalf("manifests in outdir: %v", manifests)
	}
	data, err := os.ReadFile(manifests[0])
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		OSTree map[string]any `json:"ostree"`
		Images map[string]struct {
			File            string `json:"file"`
			CompressionType string `json:"compression_type"`
		} `json:"images"`
		BuilderCommit *string `json:"builder_commit"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"version":       "hook-version",     // the hook's, not eib's
		"collection-id": compatCollectionID, // the deployed remote's
		"ref":           "eib-demo/amd64/master",
		"pull_ref":      "eib-demo/amd64/master", // eib's own key, kept
		"url":           url,
	} {
		if m.OSTree[k] != want {
			t.Errorf("manifest ostree.%s = %v, want %v", k, m.OSTree[k], want)
		}
	}
	if d, _ := m.OSTree["date"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$`).MatchString(d) {
		t.Errorf("manifest ostree.date = %q, want EIB's %%Y-%%m-%%dT%%H:%%M:%%S%%z in UTC", d)
	}
	full := m.Images["full"]
	if !strings.HasSuffix(full.File, ".img.zst") || full.CompressionType != "zst" || m.Images[full.File] != full {
		t.Errorf("manifest images.full = %+v, want the compressed main image's entry", full)
	}
	if m.BuilderCommit == nil {
		t.Errorf("manifest has no builder_commit (EIB's basic-info key)")
	}
	log, err := os.ReadFile(filepath.Join(p.Tmpdir(), "build.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "manifest:") || strings.Contains(line, "collection ID") {
			t.Logf("build.txt: %s", line)
		}
	}
	if want := `key "ostree.version": "7.0.1" from eib:ostree.json replaced by "hook-version" from ostree.json`; !strings.Contains(string(log), want) {
		t.Errorf("build.txt does not log the replaced version (eib's from os-release) %q:\n%s", want, log)
	}
	if hook, err := os.ReadFile(filepath.Join(p.Tmpdir(), "manifest", "ostree.json")); err != nil || !strings.Contains(string(hook), "hook-version") {
		t.Errorf("the hook's ostree.json is %q (%v), want it as the hook wrote it", hook, err)
	}

	// The hook's file is in the image, where /usr/local leads on the
	// booted system.
	img := filepath.Join(t.TempDir(), "disk.img")
	if out, err := exec.Command("zstd", "-q", "-d", "-o", img, filepath.Join(p.Outdir(), full.File)).CombinedOutput(); err != nil {
		t.Fatalf("zstd -d: %v\n%s", err, out)
	}
	out, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var tab struct {
		PartitionTable struct {
			Partitions []struct{ Start int64 } `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &tab); err != nil || len(tab.PartitionTable.Partitions) == 0 {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	parts := tab.PartitionTable.Partitions
	root := img + "?offset=" + strconv.FormatInt(parts[len(parts)-1].Start*512, 10)
	got, err := exec.Command("debugfs", "-R", "cat /ostree/deploy/eib-demo/var/local/bin/eib-hello", root).Output()
	if err != nil || string(got) != "hello\n" {
		t.Errorf("the image's /ostree/deploy/eib-demo/var/local/bin/eib-hello is %q (%v), want what the hook wrote", got, err)
	}
}
