#!/bin/sh
# make-repo.sh OUTDIR: builds eib's test Flatpak repository with Debian's
# flatpak: a runtime org.eib.test.Platform//1 (and its Locale extension),
# apps org.eib.test.Hello//stable (with a Locale extension: en, es, fr),
# org.eib.test.Clock//stable (with an autodownload extension
# org.eib.test.Clock.Codecs, as the codecs extensions EIB's defaults
# exclude), org.eib.test.Unwanted//stable and org.eib.test.Proprietary//stable
# (with extra data, downloaded from a URL at install time), signed
# with a fresh key. OUTDIR gets repo/ (an archive repo with a signed
# summary), key.gpg (the public key, binary) and key.asc.
set -eu
out=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME="$work/home"
mkdir -p "$HOME" "$work/gpg"
chmod 700 "$work/gpg"
gpg --batch --homedir "$work/gpg" --passphrase '' --quick-gen-key 'eib flatpak test <test@eib.invalid>' rsa2048 sign never 2>/dev/null
key=$(gpg --homedir "$work/gpg" --list-keys --with-colons 2>/dev/null | awk -F: '/^fpr/{print $10; exit}')
sign="--gpg-sign=$key --gpg-homedir=$work/gpg"
repo="$work/repo"
arch=$(flatpak --default-arch)

# blob FILE KIB: incompressible content, so that sizes are real.
blob() { mkdir -p "$(dirname "$1")"; head -c "$(($2 * 1024))" /dev/urandom > "$1"; }

# The runtime, built by hand (build-init needs an installed SDK).
rt="$work/rt"
# (build-export --runtime takes the files of a runtime from usr/, those
# of an extension, with [ExtensionOf], from files/)
mkdir -p "$rt/usr/bin" "$rt/files"
blob "$rt/usr/lib/libplatform.so" 300
printf '#!/bin/sh\necho platform\n' > "$rt/usr/bin/platform"
chmod +x "$rt/usr/bin/platform"
printf '[Runtime]\nname=org.eib.test.Platform\nruntime=org.eib.test.Platform/%s/1\nsdk=org.eib.test.Platform/%s/1\n' "$arch" "$arch" > "$rt/metadata"
flatpak build-export $sign --runtime --no-update-summary "$repo" "$rt" 1 >/dev/null

# Apps need their runtime installed to build-init: a user installation in
# the scratch HOME.
flatpak build-update-repo $sign "$repo" >/dev/null
gpg --homedir "$work/gpg" --export "$key" > "$work/key.gpg"
flatpak --user remote-add --gpg-import="$work/key.gpg" src "file://$repo"
flatpak --user install -y --noninteractive src org.eib.test.Platform >/dev/null

# app ID KIB [locale]
app() {
	d="$work/$1"
	flatpak build-init "$d" "$1" org.eib.test.Platform org.eib.test.Platform 1 >/dev/null
	mkdir -p "$d/files/bin"
	printf '#!/bin/sh\necho %s\n' "$1" > "$d/files/bin/$1"
	chmod +x "$d/files/bin/$1"
	blob "$d/files/share/$1/data" "$2"
	if [ "${3:-}" = extra ]; then
		flatpak build-finish --command="$1" \
			--extra-data="blob.bin:$(printf x | sha256sum | cut -d' ' -f1):1:1:http://127.0.0.1:9/blob.bin" "$d" >/dev/null
	elif [ "${3:-}" = codecs ]; then
		flatpak build-finish --command="$1" \
			--extension="$1.Codecs=directory=lib/codecs" \
			--extension="$1.Codecs=autodownload=true" "$d" >/dev/null
		c="$work/$1.Codecs"
		mkdir -p "$c/files"
		blob "$c/files/libcodec.so" 30
		printf '[Runtime]\nname=%s.Codecs\n\n[ExtensionOf]\nref=app/%s/%s/stable\n' "$1" "$1" "$arch" > "$c/metadata"
		flatpak build-export $sign --runtime --no-update-summary "$repo" "$c" stable >/dev/null
	elif [ "${3:-}" = locale ]; then
		flatpak build-finish --command="$1" \
			--extension="$1.Locale=directory=share/runtime/locale" \
			--extension="$1.Locale=autodelete=true" \
			--extension="$1.Locale=locale-subset=true" "$d" >/dev/null
		l="$work/$1.Locale"
		mkdir -p "$l/files"
		for lang in en es fr; do
			blob "$l/files/$lang/share/locale/$lang/LC_MESSAGES/$1.mo" 40
		done
		printf '[Runtime]\nname=%s.Locale\n\n[ExtensionOf]\nref=app/%s/%s/stable\n' "$1" "$1" "$arch" > "$l/metadata"
		flatpak build-export $sign --runtime --no-update-summary "$repo" "$l" stable >/dev/null
	else
		flatpak build-finish --command="$1" "$d" >/dev/null
	fi
	flatpak build-export $sign --no-update-summary "$repo" "$d" stable >/dev/null
}
app org.eib.test.Hello 120 locale
app org.eib.test.Clock 80 codecs
app org.eib.test.Unwanted 60
app org.eib.test.Proprietary 10 extra
flatpak build-update-repo $sign --generate-static-deltas "$repo" >/dev/null

rm -rf "$out.tmp"
mkdir -p "$out.tmp"
cp -a "$repo" "$out.tmp/repo"
cp "$work/key.gpg" "$out.tmp/key.gpg"
gpg --homedir "$work/gpg" --armor --export "$key" > "$out.tmp/key.asc"
rm -rf "$out"
mv "$out.tmp" "$out"
