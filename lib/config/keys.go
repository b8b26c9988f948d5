package config

import "strings"

// Kind is what sort of value a setting holds.
type Kind string

// The kinds of KeysRead. Every value is text in the files; the kind says
// how eib reads it.
const (
	KindBool    Kind = "bool"    // configparser's getboolean (true/false, yes/no, on/off, 1/0)
	KindInt     Kind = "int"     // a decimal integer (empty where the doc says so)
	KindSeconds Kind = "seconds" // an integer number of seconds (Duration)
	KindEnum    Kind = "enum"    // one word of Type.Values (Enum)
	KindPath    Kind = "path"    // a file or directory
	KindRegex   Kind = "regex"   // a Go regular expression
	KindList    Kind = "list"    // words split on white space (merged lists, options)
	KindURL     Kind = "url"     // a URL (empty: not used, where the doc says so)
	KindString  Kind = "string"  // any other text
)

// Type is a setting's kind, with the values of an enum.
type Type struct {
	Kind   Kind
	Values []string // KindEnum: the accepted words, as config/schema.ini's <key>_values
}

// The types of KeysRead; OneOf makes an enum.
var (
	TypeBool    = Type{Kind: KindBool}
	TypeInt     = Type{Kind: KindInt}
	TypeSeconds = Type{Kind: KindSeconds}
	TypePath    = Type{Kind: KindPath}
	TypeRegex   = Type{Kind: KindRegex}
	TypeList    = Type{Kind: KindList}
	TypeURL     = Type{Kind: KindURL}
	TypeString  = Type{Kind: KindString}
)

// OneOf is the type of an enum setting whose value is one of values.
func OneOf(values ...string) Type { return Type{Kind: KindEnum, Values: values} }

// NotInDefaults is the Default of a setting that config/defaults.ini does
// not set: it is unset unless a file sets it, and its reader says what
// unset means.
const NotInDefaults = "(not in config/defaults.ini)"

// KeyRead is one configuration key that eib reads: its type, its default,
// what it does, and who reads it.
type KeyRead struct {
	Section, Key string
	Type         Type
	// Default is the raw value config/defaults.ini gives the key (before
	// interpolation), or NotInDefaults. For a merged list (hooks) it is
	// the words of the file's <key>_add, space-separated.
	Default string
	Doc     string // one line: what the key does (defaults.ini's comment says more)
	By      string // the package, stage or hook that reads it
}

// HasDefault reports whether config/defaults.ini sets the key.
func (k KeyRead) HasDefault() bool { return k.Default != NotInDefaults }

// Setting returns the KeysRead entry of section:key. An entry whose
// Section is a glob ("flatpak-remote-*": "*" matches any text) declares
// the key in every section it matches; the entry returned then carries
// the section asked for.
func Setting(section, key string) (KeyRead, bool) {
	key = optionXform(key)
	for _, k := range KeysRead {
		if k.Key == key && (k.Section == section || strings.Contains(k.Section, "*") && globMatch(k.Section, section)) {
			k.Section = section
			return k, true
		}
	}
	return KeyRead{}, false
}

// KeysRead is the one table of the configuration keys eib itself reads:
// its Go code (lib/stage, lib/build, lib/hooks, lib/sign, cmd/eib), its
// shipped hooks (hooks/) and the hooks' shell library (lib/eib.sh), each
// with its type, its default (config/defaults.ini, which keeps the longer
// comment) and a one-line doc. It was made by grepping that code for the
// keys it gets ("section", "key" pairs, b.Dir("key"), the [ostree] getter
// of lib/stage/ostree.go) and the hooks for EIB_<SECTION>_<KEY> variables;
// TestKeysReadCoversTheCode keeps it in step with the code, and the tests
// of keys_test.go with config/defaults.ini and config/schema.ini.
//
// What else counts as read (see Usage): the [build] keys eib sets itself
// (BuildKeys, not in this table: they have no default), the _add/_del keys
// of merged lists (the merge consumes them), any key whose EIB_* variable a
// hook of the build (SRCDIR/hooks, LOCALDIR/hooks) or lib/eib.sh names, and
// any key that a read key refers to with ${...}.
var KeysRead = []KeyRead{
	{"build", "builddir", TypePath, "${cachedir}/build", "Scratch space of one build, deleted and recreated at every build.", "lib/stage (plan)"},
	{"build", "tmpdir", TypePath, "${builddir}/tmp", "Temporary files of the build (config.ini, build.txt, ostree.txt ...).", "lib/stage (plan, publish)"},
	{"build", "outdir", TypePath, "${builddir}/out", "Finished outputs (images, checksums, signatures, manifest).", "lib/stage (plan, publish), lib/eib.sh"},
	{"build", "manifestdir", TypePath, "${tmpdir}/manifest", "JSON manifest fragments merged by the manifest stage.", "lib/stage (plan, manifest)"},
	{"build", "contentdir", TypePath, "${cachedir}/content", "Downloaded content kept between builds (a cache, never deleted by eib).", "lib/stage (plan)"},
	{"build", "outversion", TypeString, "${product}-${branch}-${arch}-${platform}.${build_version}.${personality}", "Base name of every output file.", "lib/stage (plan, image, manifest, publish, error), lib/eib.sh"},
	{"build", "tmpconfig", TypePath, "${tmpdir}/config.ini", "The merged configuration without the private files (published as <outversion>.config.ini).", "lib/stage (plan)"},
	{"build", "tmpfullconfig", TypePath, "${tmpdir}/fullconfig.ini", "The merged configuration with the private files (mode 0600).", "lib/stage (plan), lib/eib.sh"},
	{"build", "baselib", TypePath, "${srcdir}/lib/eib.sh", "The hooks' shell library, sourced as . \"${EIB_BASELIB}\".", "lib/eib.sh"},
	{"build", "helpersdir", TypePath, "${srcdir}/helpers", "The eib tree's helper programs (eib-chroot).", "lib/eib.sh"},
	{"build", "datadir", TypePath, "${srcdir}/data", "The eib tree's data (data/keys/*.asc: the trusted OSTree keys).", "lib/stage (ostree: datadir/keys), lib/eib.py (get_ostree_trusted_keys)"},
	{"build", "ssh_options", TypeList, "-i ${sysconfdir}/ssh-key.pem -o StrictHostKeyChecking=no", "Options for users' hooks that run ssh themselves (EIB's value: host keys NOT checked).", "users' hooks, as EIB_SSH_OPTIONS (EIB's value; eib's own hooks do not use it)"},

	{"ostree", "repodir", TypePath, "${build:cachedir}/ostree/${os}", "The bare cache repo the commit is pulled into (kept between builds).", "lib/stage (ostree)"},
	{"ostree", "remote", TypeString, "${os}", "Name of the remote, in the cache repo and in the deployed system.", "lib/stage (ostree)"},
	{"ostree", "platform", TypeString, "${build:platform}", "The platform part of the refs (a board running a generic OSTree names that platform).", "config/defaults.ini (ref, ref_deploy)"},
	{"ostree", "ref", TypeString, "os/${os}/${platform}/${build:branch}", "The ref (branch) pulled.", "lib/stage (ostree)"},
	{"ostree", "ref_deploy", TypeString, "os/${os}/${platform}/${build:series}", "The ref the deployed system follows (an alias of the pulled commit when it differs).", "lib/stage (ostree)"},
	{"ostree", "os", TypeString, "${build:product}", "The OS name of the deployment (ostree/deploy/<os>/ in the sysroot).", "lib/stage (ostree)"},
	{"ostree", "checkout", TypePath, "${build:builddir}/sysroot", "The sysroot the commit is deployed into (recreated at every build).", "lib/stage (plan, ostree)"},
	{"ostree", "kargs", TypeList, "root=LABEL=ostree rw quiet splash", "Kernel arguments of the deployment's boot entry (ostree adds ostree=).", "lib/stage (ostree)"},
	{"ostree", "pull_url", TypeURL, "", "The OSTree repository the build pulls from; empty: prod_pull_url or dev_pull_url.", "lib/stage (ostree)"},
	{"ostree", "dev_pull_url", TypeURL, "", "The repository pulled from without --use-production-ostree (when pull_url is empty).", "lib/stage (ostree)"},
	{"ostree", "prod_pull_url", TypeURL, "", "The repository pulled from with --use-production-ostree (when pull_url is empty).", "lib/stage (ostree)"},
	{"ostree", "deploy_url", TypeURL, "", "The URL the deployed system's remote points at; empty: the URL pulled from.", "lib/stage (ostree)"},
	{"ostree", "gpg_verify", TypeBool, "true", "Verify the commit's GPG signature against the trusted keys (data/keys/*.asc).", "lib/stage (ostree)"},
	{"ostree", "enable_p2p_updates", TypeBool, NotInDefaults, "Give the deployed remote the repo's collection ID and ostree-metadata (EIB's key; unset: off).", "lib/stage (ostree, image)"},

	{"image", "hooks", TypeList, "10-systemd-sysusers.chroot 10-systemd-tmpfiles.chroot 50-hostname 50-language 50-timezone 50-update-done-stamp 80-ldconfig-aux-cache.chroot", "Hooks run on the deployed OS before the disk image is made.", "lib/hooks"},
	{"image", "partition_table", OneOf("gpt", "dos"), "gpt", "Partition table of the disk image.", "lib/stage (image)"},
	{"image", "sdboot", TypeBool, "false", "true: an ESP with systemd-boot and no BIOS boot (amd64 only); false: GRUB for BIOS and UEFI.", "lib/stage (image)"},
	{"image", "rootfs_resize", TypeBool, "true", "Mark the root partition to be grown on first boot.", "lib/stage (image)"},
	{"image", "reproducible", TypeBool, "false", "true: two builds of the same commit and config make byte-identical raw images.", "lib/stage (image)"},
	{"image", "max_size", TypeInt, "", "Largest raw disk image allowed, in bytes; empty: no limit.", "lib/stage (image)"},
	{"image", "bootloader_timeout", TypeSeconds, "1", "Seconds the boot menu waits before booting the newest deployment.", "lib/stage (image)"},
	{"image", "compression", OneOf("gz", "xz", "zst"), "gz", "Compression of the published image <outversion>.img.<compression>.", "lib/stage (image), lib/eib.sh"},
	{"image", "qcow2", TypeBool, "false", "true: also write <outversion>.qcow2 for virtual machines.", "lib/stage (image)"},
	{"image", "signing_key", TypePath, "${build:sysconfdir}/signing-key.asc", "Exported OpenPGP secret key that signs the images (absent: nothing is signed).", "lib/sign, lib/eib.sh"},
	{"image", "signing_passphrase_file", TypePath, "", "File whose first line is signing_key's passphrase; empty: none.", "lib/sign"},
	{"image", "signing_keyid", TypeString, "", "Id of the signing key in gpg_homedir (or of signing_key's subkey); empty: none.", "lib/sign, lib/eib.sh"},
	{"image", "gpg_homedir", TypePath, "${build:sysconfdir}/gnupg", "The gpg keyring signing_keyid is looked up in.", "lib/sign, lib/eib.sh"},
	{"image", "product_name", TypeString, NotInDefaults, "The product's name in the manifest (unset: none).", "lib/stage (manifest)"},
	{"image", "hostname", TypeString, "", "Hostname of the OS (hook 50-hostname); empty: keep the OS's own.", "hooks/image/50-hostname"},
	{"image", "language", TypeString, "", "Default language, a locale such as es_GT.UTF-8 (hook 50-language); empty: keep the OS's own.", "hooks/image/50-language"},
	{"image", "timezone", TypeString, "", "Default timezone such as America/Guatemala (hook 50-timezone); empty: keep the OS's own.", "hooks/image/50-timezone"},

	{"content", "hooks", TypeList, "", "Hooks run after the OS is deployed, before the image hooks.", "lib/hooks"},

	{"check", "hooks", TypeList, "", "Hooks run after the boot check.", "lib/hooks"},
	{"check", "boot", TypeBool, "true", "Boot each disk image in QEMU before anything is published.", "lib/stage (check)"},
	{"check", "firmware", OneOf("bios", "uefi", "both"), "both", "Firmware to boot with.", "lib/stage (check)"},
	{"check", "boot_timeout", TypeSeconds, "300", "Seconds from starting QEMU until the marker must have appeared.", "lib/stage (check)"},
	{"check", "boot_marker", TypeRegex, "EIB-DEMO-BOOT-OK|login: |Reached target .*(Multi-User System|Graphical Interface)", "Regular expression the booted OS must print on its serial console.", "lib/stage (check)"},
	{"check", "qemu_memory", TypeInt, "1024", "Guest memory in MiB.", "lib/stage (check)"},
	{"check", "accel", OneOf("auto", "kvm", "tcg"), "auto", "QEMU accelerator (auto: KVM only where a probe proved it works); EIB_CHECK_ACCEL overrides it.", "lib/stage (check)"},
	{"check", "kvm_stall_timeout", TypeSeconds, "60", "Seconds a KVM boot chosen by auto may show no console output before it is retried under TCG.", "lib/stage (check)"},
	{"check", "serial_console", OneOf("auto", "off"), "auto", "auto: the check boots a throw-away copy whose kernel command lines get console=ttyS0,115200 where they have no console=ttyS0; off: boots the image as shipped.", "lib/stage (check)"},
	{"check", "guest_commands", TypeString, "", "Shell commands, one a line, run in order in the booted guest on its serial console after the boot check; one that exits non-zero fails the check; empty: none.", "lib/stage (check)"},
	{"check", "guest_user", TypeString, "root", "The user guest_commands log in as at the console's getty.", "lib/stage (check)"},
	{"check", "guest_password_file", TypePath, "", "File whose first line is guest_user's password; empty: the user has none.", "lib/stage (check)"},
	{"check", "guest_command_timeout", TypeSeconds, "120", "Seconds each of guest_commands may run before it fails the check.", "lib/stage (check)"},

	{"manifest", "hooks", TypeList, "", "Hooks run after eib wrote its manifest fragments, before they are merged.", "lib/hooks"},

	{"publish", "hooks", TypeList, "", "Hooks run by the publish stage after eib's own destinations (skipped by --dry-run).", "lib/hooks"},
	{"publish", "dir", TypePath, "", "A local directory to publish to; empty: not used.", "lib/stage (publish, error), lib/publish"},
	{"publish", "rsync_dest", TypeString, "", "[user@]host:/path reached by rsync over ssh; empty: not used.", "lib/stage (publish, error), lib/publish"},
	{"publish", "rsync_options", TypeList, "", "Extra rsync options, split on white space.", "lib/stage (publish, error), lib/publish"},
	{"publish", "ssh_key", TypePath, "${build:sysconfdir}/ssh_key", "The private key that logs in to rsync_dest.", "lib/stage (publish, error), lib/publish"},
	{"publish", "ssh_known_hosts", TypePath, "${build:sysconfdir}/ssh_known_hosts", "The known-hosts file that holds rsync_dest's host key.", "lib/stage (publish, error), lib/publish"},
	{"publish", "ssh_port", TypeInt, "22", "The ssh port of rsync_dest.", "lib/stage (publish, error), lib/publish"},
	{"publish", "s3_bucket", TypeString, "", "Bucket to publish to with the AWS SDK for Go; empty: not used.", "lib/stage (publish, error), lib/publish"},
	{"publish", "s3_endpoint", TypeURL, "", "Endpoint URL of an S3-compatible server; empty: AWS.", "lib/stage (publish, error), lib/publish"},
	{"publish", "s3_prefix", TypeString, "", "Key prefix inside the bucket; empty: the bucket's top level.", "lib/stage (publish, error), lib/publish"},
	{"publish", "s3_region", TypeString, "", "The S3 region; empty: the client's default.", "lib/stage (publish, error), lib/publish"},
	{"publish", "aws_credentials", TypePath, "${build:sysconfdir}/aws-credentials", "Shared AWS credentials file read when it exists (else the AWS_* variables).", "lib/stage (publish, error), lib/publish"},

	{"error", "hooks", TypeList, "", "Hooks run when the build fails, after the error stage published the failed build's log.", "lib/hooks"},

	{"flatpak", "enable", TypeBool, "true", "Preinstall the Flatpak apps and runtimes of the [flatpak-remote-*] sections (needs the flatpak command when a remote is enabled).", "lib/stage (flatpak)"},
	{"flatpak", "arch", TypeString, "", "Flatpak arch of the refs (x86_64, aarch64, i386); empty: the one of [build] arch.", "lib/stage (flatpak)"},
	{"flatpak", "locales", TypeList, "", "Locales whose subsets of the locale extensions are installed (merged list).", "lib/stage (flatpak)"},
	{"flatpak", "set_extra_languages", TypeBool, "false", "Also write locales as the image's core.xa.extra-languages, for later installs.", "lib/stage (flatpak)"},

	{"flatpak-remote-*", "enable", TypeBool, NotInDefaults, "Use this remote (unset: true).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "url", TypeURL, NotInDefaults, "The remote's URL the build pulls from (unset: repo_file's Url).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "deploy_url", TypeURL, NotInDefaults, "The URL the image's remote points at (unset: url).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "repo_file", TypeString, NotInDefaults, "A .flatpakrepo file (path or URL): its Url, Title, DefaultBranch fill unset keys, its GPGKey is the remote's trusted key.", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "apps", TypeList, NotInDefaults, "Apps to install, NAME[/ARCH[/BRANCH]] (merged list).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "runtimes", TypeList, NotInDefaults, "Runtimes to install, NAME[/ARCH[/BRANCH]] (merged list).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "exclude", TypeList, NotInDefaults, "IDs of apps, runtimes or extensions never installed (merged list).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "allow_extra_data", TypeList, NotInDefaults, "IDs whose extra data may be installed (merged list).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "title", TypeString, NotInDefaults, "The remote's title in the image (unset: repo_file's, else the remote's own).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "default_branch", TypeString, NotInDefaults, "Branch of refs that name none, at build and in the image (unset: the last branch in sort order).", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "prio", TypeInt, NotInDefaults, "The remote's priority (xa.prio); unset: flatpak's.", "lib/stage (flatpak)"},
	{"flatpak-remote-*", "noenumerate", TypeBool, NotInDefaults, "Leave the remote out of searches in the image (xa.noenumerate); unset: flatpak's.", "lib/stage (flatpak)"},
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
	{"[flatpak] enable_p2p_updates", "flatpak", "enable_p2p_updates", "collection IDs on the image's flatpak remotes (P2P and USB app updates)"},
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
