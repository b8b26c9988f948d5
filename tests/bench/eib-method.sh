#!/bin/bash
# eib-method.sh: EIB's way of making and publishing a disk image, step by
# step as stages/eib_image does it, for the benchmark in this directory:
# a loop device on the root partition, mkfs.ext4, mount, rsync -aHAX of the
# sysroot, umount, then pigz, sha256sum and gpg --detach-sign of the
# compressed and the raw image, one after the other.
#
# Usage: eib-method.sh SYSROOT IMG SIZE ROOT_OFFSET ROOT_BYTES SFDISK_SCRIPT OUTDIR GNUPGHOME KEYID
set -euo pipefail
[ $# -eq 9 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
sysroot=$1 img=$2 size=$3 offset=$4 rootbytes=$5 script=$6 outdir=$7 gnupghome=$8 keyid=$9

mnt=$(mktemp -d /tmp/eib-method-mnt.XXXXXX)
loop=
cleanup() {
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$loop" ] && losetup -d "$loop"
  rmdir "$mnt"
}
trap cleanup EXIT

rm -f "$img"
truncate -s "$size" "$img"
sfdisk --quiet --no-reread --no-tell-kernel "$img" < "$script"
loop=$(losetup -f --show --offset "$offset" --sizelimit "$rootbytes" "$img")
mke2fs -q -t ext4 -O dir_index,^huge_file -m1 -L ostree -T default "$loop"
mount "$loop" "$mnt"
rsync -aHAX "$sysroot/" "$mnt/"
umount "$mnt"
losetup -d "$loop"
loop=

base=$(basename "$img")
pigz -c "$img" > "$outdir/$base.gz"
(cd "$outdir" && sha256sum "$base.gz" > "$base.gz.sha256")
gpg --batch --quiet --homedir "$gnupghome" -u "$keyid" --armor --detach-sign -o "$outdir/$base.gz.asc" "$outdir/$base.gz"
sha256sum "$img" > "$outdir/$base.sha256"
gpg --batch --quiet --homedir "$gnupghome" -u "$keyid" --armor --detach-sign -o "$outdir/$base.asc" "$img"
