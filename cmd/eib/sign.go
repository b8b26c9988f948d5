package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/eib-builder/eib/lib/config"
	"github.com/eib-builder/eib/lib/output"
	"github.com/eib-builder/eib/lib/sign"
)

func init() {
	subcommands = append(subcommands, &cli.Command{
		Name:      "sign",
		Usage:     "write an armored detached OpenPGP signature of a file, with the images' signing key",
		ArgsUsage: "FILE [OUT]",
		Description: "Signs FILE into OUT (default FILE.asc) with the key of [image] signing_key\n" +
			"(and signing_passphrase_file; signing_keyid with gpg_homedir when the key\n" +
			"file is absent), which is what lib/eib.sh's sign_file calls in hooks.\n" +
			"The key settings come from, in order: the --key/--keyid flags; the\n" +
			"EIB_IMAGE_SIGNING_* variables a hook sees; the configuration, read as a\n" +
			"build with the same --product/--arch/--platform/--personality/--localdir\n" +
			"would read it. With no key configured nothing is signed, a line says so,\n" +
			"and the exit status is 0. Exit status 1: usage, configuration or key error;\n" +
			"2: signing failed.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Usage: "exported OpenPGP secret key `FILE` (armored or binary)"},
			&cli.StringFlag{Name: "passphrase-file", Usage: "`FILE` whose first line is the key's passphrase"},
			&cli.StringFlag{Name: "keyid", Usage: "key `ID`: picks the key in --key's file, or gpg's --local-user without --key"},
			&cli.StringFlag{Name: "gpg-homedir", Usage: "gpg home `DIR` for --keyid without --key"},
			&cli.StringFlag{Name: "localdir", Aliases: []string{"d"}, Usage: "directory of local overrides, as for a build"},
			&cli.StringFlag{Name: "product", Aliases: []string{"p"}, Value: "eoscustom", Usage: "product, as for a build"},
			&cli.StringFlag{Name: "branch", Value: "master", Usage: "branch, as for a build"},
			&cli.StringFlag{Name: "arch", Aliases: []string{"a"}, Usage: "architecture, as for a build (default: the host's)"},
			&cli.StringFlag{Name: "platform", Usage: "platform, as for a build (default: the arch)"},
			&cli.StringFlag{Name: "personality", Aliases: []string{"P"}, Value: "base", Usage: "personality, as for a build"},
		},
		Action: signCommand,
	})
}

func signCommand(ctx context.Context, cmd *cli.Command) error {
	usage := func(format string, args ...any) error {
		return cli.Exit("eib sign: "+fmt.Sprintf(format, args...), exitUsage)
	}
	if cmd.NArg() < 1 || cmd.NArg() > 2 {
		return usage("give FILE and optionally OUT, got %d arguments", cmd.NArg())
	}
	file := cmd.Args().Get(0)
	out := cmd.Args().Get(1)
	if out == "" {
		out = file + ".asc"
	}
	if st, err := os.Stat(file); err != nil {
		return usage("%v", err)
	} else if !st.Mode().IsRegular() {
		return usage("%s is not a regular file", file)
	}
	opts, from, err := signOptions(cmd)
	if err != nil {
		return usage("%v", err)
	}
	var lines []string
	signer, err := sign.New(opts, func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf(format, args...))
	})
	if err != nil {
		return usage("%s: %v", from, err)
	}
	w := cmd.Root().ErrWriter
	if w == nil {
		w = os.Stderr
	}
	if signer == nil {
		fmt.Fprintf(w, "eib sign: %s (%s): %s not signed\n", strings.Join(lines, "; "), from, file)
		return nil
	}
	if err := output.SignFile(ctx, signer, file, out); err != nil {
		return cli.Exit("eib sign: "+err.Error(), exitBuildError)
	}
	fmt.Fprintf(w, "eib sign: %s -> %s (%s)\n", file, out, signer)
	return nil
}

// signOptions finds the key settings: flags, then the hook environment,
// then the configuration. from says where they came from.
func signOptions(cmd *cli.Command) (sign.Options, string, error) {
	if cmd.IsSet("key") || cmd.IsSet("keyid") {
		return sign.Options{
			KeyFile:        cmd.String("key"),
			PassphraseFile: cmd.String("passphrase-file"),
			KeyID:          cmd.String("keyid"),
			GnupgHome:      cmd.String("gpg-homedir"),
		}, "command line", nil
	}
	keys := []string{"signing_key", "signing_passphrase_file", "signing_keyid", "gpg_homedir"}
	if _, ok := os.LookupEnv(config.EnvName("image", "signing_key")); ok {
		return sign.ConfigOptions(envSettings{}), "environment " + config.EnvName("image", "signing_key") + " and related", nil
	}
	loaded, err := loadConfigLikeABuild(cmd)
	if err != nil {
		return sign.Options{}, "", err
	}
	r := loaded.Full.Read()
	o := sign.ConfigOptions(r)
	if err := r.Err(); err != nil {
		return o, "", err
	}
	return o, "configuration [image] " + strings.Join(keys, ", "), nil
}

// envSettings reads the settings from the hook environment
// (EIB_<SECTION>_<KEY>, config.EnvName), as they are, paths included.
type envSettings struct{}

func (envSettings) Path(section, key string) string {
	return os.Getenv(config.EnvName(section, key))
}

func (envSettings) String(section, key string) string {
	return os.Getenv(config.EnvName(section, key))
}

// loadConfigLikeABuild reads the configuration a build with these flags
// would read.
func loadConfigLikeABuild(cmd *cli.Command) (*config.Loaded, error) {
	arch := cmd.String("arch")
	if arch == "" {
		var err error
		if arch, err = hostArch(unameMachine()); err != nil {
			return nil, err
		}
	} else if !contains(SupportedArches, arch) {
		return nil, fmt.Errorf("--arch %s: not one of %s", arch, strings.Join(SupportedArches, ", "))
	}
	platform := cmd.String("platform")
	if platform == "" {
		platform = arch
	}
	src, err := srcDir()
	if err != nil {
		return nil, err
	}
	localDir := cmd.String("localdir")
	if localDir != "" {
		if localDir, err = filepath.Abs(localDir); err != nil {
			return nil, fmt.Errorf("--localdir: %v", err)
		}
	}
	return config.Load(config.Options{
		SrcDir:      src,
		LocalDir:    localDir,
		SysConfDir:  os.Getenv("EIB_SYSCONFDIR"),
		Product:     cmd.String("product"),
		Branch:      cmd.String("branch"),
		Arch:        arch,
		Platform:    platform,
		Personality: cmd.String("personality"),
		DryRun:      true,
	})
}
