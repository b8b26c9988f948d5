package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func lines(errs []*Error, src string) []string {
	var out []string
	for _, e := range errs {
		out = append(out, strings.ReplaceAll(e.Error(), src, "SRC"))
	}
	return out
}

func TestUnread(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[DEFAULT]\nshared = x\n[build]\noutdir = ${base}/out\nbase = /srv\n" +
			"[image]\ntypo_compresion = zst\nhostname = ${unused_but_referenced}\nunused_but_referenced = h\n" +
			"mine = 1\nhooks_add = 10-a\niso = true\n" +
			"[flatpak]\nenable_p2p_updates = true\n[mystuff]\nleft = ${orphan}\norphan = o\n",
		"local/hooks/image/60-mine": "echo \"$EIB_IMAGE_MINE\"\n",
	})
	o := opts(src)
	o.LocalDir = filepath.Join(src, "local")
	l := mustLoad(t, o)
	got := lines(l.Unread(), src)
	want := []string{
		// [build] base is read through outdir; [image] mine by the
		// localdir's hook; hostname by eib; [image] hooks by the hook
		// runner; icon_grid, settings ... are empty lists nobody wrote.
		"SRC/config/defaults.ini:2: [DEFAULT] shared: not read by eib or by any hook",
		"SRC/config/defaults.ini:7: [image] typo_compresion: not read by eib or by any hook",
		"SRC/config/defaults.ini:12: [image] iso: not read by eib: part of EIB's [image] iso (ISO images), which eib does not implement",
		"SRC/config/defaults.ini:14: [flatpak] enable_p2p_updates: not read by eib: part of EIB's [flatpak] enable_p2p_updates (collection IDs on the image's flatpak remotes (P2P and USB app updates)), which eib does not implement",
		"SRC/config/defaults.ini:16: [mystuff] left: not read by eib or by any hook",
		"SRC/config/defaults.ini:17: [mystuff] orphan: not read by eib or by any hook",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Unread:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnreadMergedListAtItsFirstKey(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini":    "[image]\nx = 1\n",
		"config/product/eos.ini": "[image]\nsettings_add = a\nsettings_del = b\n",
	})
	got := lines(mustLoad(t, opts(src)).Unread(), src)
	want := []string{"SRC/config/defaults.ini:2: [image] x: not read by eib or by any hook",
		"SRC/config/product/eos.ini:2: [image] settings: not read by eib: part of EIB's [image] settings (dconf settings), which eib does not implement"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Unread:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLint(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[image]\nhostname = ${nope}\nhooks_add = 10-a\n[build]\ntmpdir = ${Build:cachedir}\n",
		// An unknown _type of an unset key is no error for EIB, nor for a
		// build.
		"config/schema.ini": "[DEFAULT]\nnote = shared\n[image]\ntimezone_type = file\ncompression_require = true\n" +
			"language_required = yes\ntimezone_required = False\n[build]\n",
	})
	l := mustLoad(t, opts(src))
	findings, err := l.Lint()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SRC/config/defaults.ini:2: [image] hostname: cannot be resolved: bad reference ${nope}: no key \"nope\" in [image]",
		"SRC/config/defaults.ini:5: [build] tmpdir: cannot be resolved: bad reference ${Build:cachedir}: no section [Build]",
		"SRC/config/schema.ini:2: [DEFAULT] note: not a schema rule: a schema key ends in _required, _values or _type (EIB ignores this one)",
		"SRC/config/schema.ini:4: [image] timezone_type: unknown schema type \"file\" (path or paths)",
		"SRC/config/schema.ini:5: [image] compression_require: not a schema rule: a schema key ends in _required, _values or _type (EIB ignores this one)",
		"SRC/config/schema.ini:6: [image] language_required: \"yes\" is not true or false: only true (in any case) makes language required, anything else is no rule",
	}
	if got := lines(findings, src); !reflect.DeepEqual(got, want) {
		t.Errorf("Lint:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
