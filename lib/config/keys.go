package config

// KeyRead is one configuration key that eib reads, and who reads it.
type KeyRead struct {
	Section, Key string
	By           string // the package, stage or hook that reads it
}

// KeysRead is the one table of the configuration keys eib itself reads:
// its Go code (lib/stage, lib/build, lib/hooks, lib/sign, cmd/eib), its
// shipped hooks (hooks/) and the hooks' shell library (lib/eib.sh). It was
// made by grepping that code for the keys it gets ("section", "key"
// pairs, b.Dir("key"), the [ostree] getter of lib/stage/ostree.go) and the
// hooks for EIB_<SECTION>_<KEY> variables; TestKeysReadCoversTheCode
// keeps it in step with the code.
//
// What else counts as read (see Usage): the [build] keys eib sets itself
// (BuildKeys), the _add/_del keys of merged lists (the merge consumes
// them), any key whose EIB_* variable a hook of the build (SRCDIR/hooks,
// LOCALDIR/hooks) or lib/eib.sh names, and any key that a read key refers
// to with ${...}.
var KeysRead = []KeyRead{
	{"build", "builddir", "lib/stage (plan)"},
	{"build", "tmpdir", "lib/stage (plan), hooks/publish/40-build-log, hooks/error/40-build-log"},
	{"build", "outdir", "lib/stage (plan), lib/eib.sh, hooks/publish/*"},
	{"build", "manifestdir", "lib/stage (plan, manifest)"},
	{"build", "contentdir", "lib/stage (plan)"},
	{"build", "outversion", "lib/stage (plan, image, manifest), lib/eib.sh, hooks/publish/*"},
	{"build", "tmpconfig", "lib/stage (plan)"},
	{"build", "tmpfullconfig", "lib/stage (plan), lib/eib.sh"},
	{"build", "baselib", "lib/eib.sh"},
	{"build", "helpersdir", "lib/eib.sh"},
	{"build", "datadir", "lib/stage (ostree: datadir/keys), lib/eib.py (get_ostree_trusted_keys)"},
	{"build", "ssh_options", "users' hooks, as EIB_SSH_OPTIONS (EIB's value; eib's own hooks do not use it)"},

	{"ostree", "repodir", "lib/stage (ostree)"},
	{"ostree", "remote", "lib/stage (ostree)"},
	{"ostree", "ref", "lib/stage (ostree)"},
	{"ostree", "ref_deploy", "lib/stage (ostree)"},
	{"ostree", "os", "lib/stage (ostree)"},
	{"ostree", "checkout", "lib/stage (plan, ostree)"},
	{"ostree", "kargs", "lib/stage (ostree)"},
	{"ostree", "pull_url", "lib/stage (ostree)"},
	{"ostree", "dev_pull_url", "lib/stage (ostree)"},
	{"ostree", "prod_pull_url", "lib/stage (ostree)"},
	{"ostree", "deploy_url", "lib/stage (ostree)"},
	{"ostree", "gpg_verify", "lib/stage (ostree)"},
	{"ostree", "enable_p2p_updates", "lib/stage (ostree, image)"},

	{"image", "hooks", "lib/hooks"},
	{"image", "partition_table", "lib/stage (image)"},
	{"image", "sdboot", "lib/stage (image)"},
	{"image", "rootfs_resize", "lib/stage (image)"},
	{"image", "reproducible", "lib/stage (image)"},
	{"image", "max_size", "lib/stage (image)"},
	{"image", "bootloader_timeout", "lib/stage (image)"},
	{"image", "compression", "lib/stage (image), lib/eib.sh"},
	{"image", "qcow2", "lib/stage (image)"},
	{"image", "signing_key", "lib/sign, lib/eib.sh"},
	{"image", "signing_passphrase_file", "lib/sign"},
	{"image", "signing_keyid", "lib/sign, lib/eib.sh"},
	{"image", "gpg_homedir", "lib/sign, lib/eib.sh"},
	{"image", "product_name", "lib/stage (manifest)"},
	{"image", "hostname", "hooks/image/50-hostname"},
	{"image", "language", "hooks/image/50-language"},
	{"image", "timezone", "hooks/image/50-timezone"},

	{"content", "hooks", "lib/hooks"},

	{"check", "hooks", "lib/hooks"},
	{"check", "boot", "lib/stage (check)"},
	{"check", "firmware", "lib/stage (check)"},
	{"check", "boot_timeout", "lib/stage (check)"},
	{"check", "boot_marker", "lib/stage (check)"},
	{"check", "qemu_memory", "lib/stage (check)"},
	{"check", "accel", "lib/stage (check)"},
	{"check", "kvm_stall_timeout", "lib/stage (check)"},

	{"manifest", "hooks", "lib/hooks"},

	{"publish", "hooks", "lib/hooks"},
	{"publish", "dir", "hooks/publish/50-local-dir"},
	{"publish", "rsync_dest", "hooks/publish/52-rsync"},
	{"publish", "rsync_options", "hooks/publish/52-rsync"},
	{"publish", "ssh_key", "hooks/publish/52-rsync"},
	{"publish", "ssh_known_hosts", "hooks/publish/52-rsync"},
	{"publish", "ssh_port", "hooks/publish/52-rsync"},
	{"publish", "s3_bucket", "hooks/publish/54-s3"},
	{"publish", "s3_endpoint", "hooks/publish/54-s3"},
	{"publish", "s3_prefix", "hooks/publish/54-s3"},
	{"publish", "s3_region", "hooks/publish/54-s3"},
	{"publish", "aws_credentials", "hooks/publish/54-s3"},

	{"error", "hooks", "lib/hooks"},
}

// BuildKeys are the [build] keys eib sets from the command line before any
// file is read (see buildKeys); they count as read.
var BuildKeys = []string{
	"product", "branch", "personality", "dry_run", "use_production_ostree", "series",
	"arch", "platform", "localdir", "localdatadir", "srcdir", "cachedir", "sysconfdir", "build_version",
}

// EIBFeature is a part of EIB that eib does not implement (yet), and the
// keys of EIB's configuration (config/defaults.ini of EIB) that belong to
// it. An unread key is named with its feature, so that a drop-in EIB tree
// says what eib leaves out.
type EIBFeature struct {
	Name    string // e.g. "[flatpak-remote-*]" or "[image] iso"
	Section string // section glob ("*" matches any text)
	Key     string // key glob; "*" for every key of the section
	What    string
}

// EIBFeatures are the parts of EIB eib leaves out, as of EIB commit
// f934a3ba90 (the keys of its config/defaults.ini and the hooks that read
// them). The first match names a key.
var EIBFeatures = []EIBFeature{
	{"[flatpak]", "flatpak", "*", "flatpak apps and runtimes installed into the image"},
	{"[flatpak-remote-*]", "flatpak-remote-*", "*", "the flatpak remotes the image's apps and runtimes come from"},
	{"[kolibri]", "kolibri", "*", "Kolibri and its content"},
	{"[kolibri-*]", "kolibri-*", "*", "Kolibri content channels"},
	{"[endlesskey]", "endlesskey", "*", "Endless Key content"},
	{"[jenkins]", "jenkins", "*", "starting Jenkins jobs after a build"},
	{"[buildroot]", "buildroot", "*", "the build root EIB runs its stages in, and its bind mounts; eib needs none"},
	{"[image] iso", "image", "iso", "ISO images"},
	{"[image] vm_image", "image", "vm_image", "virtual machine images"},
	{"[image] boot_zip", "image", "boot_zip", "the boot zip of ARM images"},
	{"[image] kalite_*", "image", "kalite_*", "KA Lite content"},
	{"[image] chromium_policies", "image", "chromium_policies*", "Chromium policies"},
	{"[image] branding_fbe_config", "image", "branding_fbe_config", "first boot experience branding"},
	{"[image] icon_grid", "image", "icon_grid", "the desktop's icon grid"},
	{"[image] settings", "image", "settings", "dconf settings"},
	{"[image] settings_locks", "image", "settings_locks", "dconf setting locks"},
	{"[image] xkb_layout", "image", "xkb_*", "the keyboard layout"},
	{"[image] metrics_server_url", "image", "metrics_server_url", "the metrics server"},
	{"[image] activation_server_url", "image", "activation_server_url", "the activation server"},
	{"image upload", "image", "upload_api_*", "uploading images to Endless's image servers"},
	{"image upload", "image", "download_*", "uploading images to Endless's image servers"},
	{"image upload", "image", "user", "uploading images to Endless's image servers"},
	{"image upload", "image", "path", "uploading images to Endless's image servers"},
	{"image upload", "image", "destdir", "uploading images to Endless's image servers"},
	{"[publish] path", "publish", "path", "where EIB's publish hook copies images"},
	{"OSTree server URLs", "ostree", "*_server_url", "the URLs EIB builds from its OSTree servers"},
	{"OSTree server URLs", "ostree", "*_repo_path", "the URLs EIB builds from its OSTree servers"},
	{"OSTree server URLs", "ostree", "*_repo_url", "the URLs EIB builds from its OSTree servers"},
	{"[ostree] stable_branch", "ostree", "stable_branch", "the stable branch EIB's tests use"},
}

// eibFeature returns the feature a key belongs to, if any.
func eibFeature(section, key string) (EIBFeature, bool) {
	for _, f := range EIBFeatures {
		if globMatch(f.Section, section) && globMatch(f.Key, key) {
			return f, true
		}
	}
	return EIBFeature{}, false
}
