package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateValuesAreWhatPrivateFilesSetOrChanged(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[DEFAULT]\nshared = public-default\n" +
			"[ostree]\npull_url = https://ostree.example.org/repo\nurl = https://${publish:user}@ostree.example.org\n" +
			"[publish]\nuser = deploy\nport = 22\nsame = unchanged-value\n" +
			"[image]\nhooks_add = 10-public\n",
		"config/private.ini": "[ostree]\npull_url = http://user:password@ostree.example.org/repo\n" +
			"[publish]\nuser = robot-user\nport = 2222\n# a shorter value is refused: TestLoadRefusesShortPrivateValues\nsame = unchanged-value\n" +
			"multi = first-line\n  second-line\n  third-line\n" +
			"[image]\nhooks_add = 20-private\n" +
			"[DEFAULT]\nshared = private-default\n",
	})
	l := mustLoad(t, opts(src))
	privs := PrivateValues(l.Full, l.Public)
	got := map[string]Private{}
	for _, p := range privs {
		got[p.Section+":"+p.Key+"="+p.Value] = p
	}
	private := filepath.Join(src, "config", "private.ini")
	for _, want := range []struct {
		ref, file string
		line      int
	}{
		{"ostree:pull_url=http://user:password@ostree.example.org/repo", private, 2},
		{"publish:user=robot-user", private, 4},
		{"publish:port=2222", private, 5},
		{"publish:multi=first-line", private, 8},
		{"publish:multi=second-line", private, 8},
		{"publish:multi=third-line", private, 8},
		// Refers to a private value: differs from the public one.
		{"ostree:url=https://robot-user@ostree.example.org", filepath.Join(src, "config", "defaults.ini"), 5},
		// A merged list with a private contribution is located there.
		{"image:hooks=20-private", private, 12},
		{"DEFAULT:shared=private-default", private, 14},
		{"ostree:shared=private-default", private, 14},
	} {
		p, ok := got[want.ref]
		if !ok {
			t.Errorf("%s is not private; private values: %v", want.ref, privs)
			continue
		}
		if p.Origin.File != want.file || p.Origin.Line != want.line {
			t.Errorf("%s: origin %s, want %s:%d", want.ref, p.Origin, want.file, want.line)
		}
	}
	for _, not := range []string{
		"publish:same=unchanged-value",                    // set again to the public value
		"image:hooks=10-public",                           // the public words of a merged list
		"ostree:pull_url=https://ostree.example.org/repo", // the public value
	} {
		if _, ok := got[not]; ok {
			t.Errorf("%s is private, want it not", not)
		}
	}
	// Values set in a private file come first, so a search names the
	// private file rather than a public key that refers to it.
	p, ok := FindPrivate("the remote is https://robot-user@ostree.example.org", privs)
	if !ok || p.Key != "user" || !p.Origin.Private {
		t.Errorf("FindPrivate = %+v, %v; want [publish] user from the private file", p, ok)
	}
	if _, ok := FindPrivate("nothing of it here: abc, 22, ab", privs); ok {
		t.Error("FindPrivate found a private value in public text")
	}
	// The log masks exactly these values.
	if strings.Join(l.Secrets, "\n") != strings.Join(PrivateStrings(privs), "\n") {
		t.Errorf("Secrets %q differ from PrivateStrings %q", l.Secrets, PrivateStrings(privs))
	}
}

func TestAtLocatesAnErrorWhereTheKeyWasSet(t *testing.T) {
	src := tree(t, map[string]string{
		"config/defaults.ini": "[check]\nboot_marker = login:\n",
		"config/local.ini":    "[check]\n\nboot_marker = (\n",
	})
	l := mustLoad(t, opts(src))
	err := l.Full.At("check", "Boot_Marker", errors.New("[check] boot_marker = (: not a regular expression"))
	want := filepath.Join(src, "config", "local.ini") + ":3: [check] boot_marker = (: not a regular expression"
	if err == nil || err.Error() != want {
		t.Errorf("At = %v, want %s", err, want)
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Section != "check" || ke.Key != "boot_marker" {
		t.Errorf("At = %#v, want a *KeyError of [check] boot_marker", err)
	}
	// A value from the command line is named so.
	if err := l.Full.At("build", "platform", errors.New("[build] platform = pinebookpro: unsupported")); err == nil ||
		err.Error() != "command line: [build] platform = pinebookpro: unsupported" {
		t.Errorf("At(build, platform) = %v", err)
	}
	// An error that names its file already is left alone.
	_, ierr := l.Full.Int("check", "boot_marker")
	if err := l.Full.At("check", "boot_marker", ierr); err != ierr {
		t.Errorf("At(Int error) = %v, want it unchanged: %v", err, ierr)
	}
	// A key set nowhere has no place to name.
	if err := l.Full.At("check", "nope", errors.New("x")); err == nil || err.Error() != "x" {
		t.Errorf("At(unset) = %v", err)
	}
}
