#!/bin/bash
# eib-method.sh: EIB's way of making and publishing a disk image, as its
# stages/eib_image and lib/eib.sh do it today (read in the endlessm
# eos-image-builder mirror, HEAD f934a3b of January 2026), for the benchmark
# in this directory. Step by step:
#
#   1. truncate the disk file, write the table with sfdisk, set the MBR
#      resize marker byte (0xdd at byte 498) with dd;
#   2. loop devices on the ESP and the root partition (EIB uses one loop
#      device with partition scanning; here one per partition, by offset,
#      because a container has no udev for the pN nodes: same I/O);
#   3. mkfs.vfat -n EFI of the ESP; mke2fs -t ext4 -O dir_index -m1
#      -L ostree -T default of the root (no ^huge_file since EIB's commit
#      f934a3b, 2026-01-16);
#   4. mount the root (and the ESP at boot/efi: see below), rsync -aHAX
#      --no-inc-recursive of the sysroot, the user.eos-image-version xattr
#      on the root directory, df;
#   5. chattr +i of the deployment root, umount, e2fsck -f -p of the root;
#   6. checksum and sign the raw image in the background, write .size,
#      compress with pigz --no-name (EIB's gz), then checksum and sign the
#      compressed image in the background, and wait for all of them.
#
# The ESP is mounted only when the kernel has vfat (a container's often has
# not): the bench sysroot has nothing under /boot/efi, so nothing goes onto
# it either way.
#
# Not reproduced: GRUB's installation inside the deployment's chroot
# (grub-install, the ESP's EFI binaries, eib_fix_boot_checksum): the bench
# sysroot has no bootloader to install. This makes the script a little
# cheaper than EIB, never dearer.
#
# Usage: eib-method.sh SYSROOT DEPLOYMENT IMG SIZE ESP_OFFSET ESP_BYTES ROOT_OFFSET ROOT_BYTES SFDISK_SCRIPT OUTDIR GNUPGHOME KEYID
set -euo pipefail
[ $# -eq 12 ] || { sed -n '2,33p' "$0" >&2; exit 2; }
sysroot=$1 deploy=$2 img=$3 size=$4 espoff=$5 espbytes=$6 offset=$7 rootbytes=$8 script=$9
outdir=${10} gnupghome=${11} keyid=${12}

mnt=$(mktemp -d /tmp/eib-method-mnt.XXXXXX)
loop= esploop=
cleanup() {
  mountpoint -q "$mnt/boot/efi" 2>/dev/null && umount "$mnt/boot/efi"
  mountpoint -q "$mnt" && umount "$mnt"
  [ -n "$esploop" ] && losetup -d "$esploop"
  [ -n "$loop" ] && losetup -d "$loop"
  rmdir "$mnt"
}
trap cleanup EXIT

# lib/eib.sh's sign_file and checksum_file.
sign_file() {
  gpg --batch --quiet --homedir "$gnupghome" --armour --sign-with "$keyid" --detach-sign --output "${2:-$1.asc}" "$1"
}
checksum_file() {
  local sum
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  echo "$sum  ${3:-${1##*/}}" > "${2:-$1.sha256}"
}

# 1. The disk file and its table.
rm -f "$img"
truncate -s "$size" "$img"
sfdisk --quiet --force --no-reread --no-tell-kernel "$img" < "$script"
printf '\xdd' | dd of="$img" bs=1 count=1 seek=498 conv=notrunc status=none

# 2-3. Loop devices and file systems.
esploop=$(losetup -f --show --offset "$espoff" --sizelimit "$espbytes" "$img")
loop=$(losetup -f --show --offset "$offset" --sizelimit "$rootbytes" "$img")
mkfs.vfat -n EFI "$esploop" > /dev/null
mke2fs -q -t ext4 -O dir_index -m1 -L ostree -T default "$loop"

# 4. Copy the sysroot.
mount "$loop" "$mnt"
if grep -qw vfat /proc/filesystems || modprobe -q vfat 2>/dev/null; then
  mkdir -p "$mnt/boot/efi"
  mount "$esploop" "$mnt/boot/efi"
fi
rsync -aHAX --no-inc-recursive "$sysroot/" "$mnt/"
setfattr -n user.eos-image-version -v bench "$mnt"
df --block-size=1 "$mnt" > /dev/null

# 5. Immutable deployment root, unmount, check.
rel=${deploy#"$sysroot"}
chattr +i "$mnt$rel"
if mountpoint -q "$mnt/boot/efi"; then umount "$mnt/boot/efi"; fi
umount "$mnt"
e2fsck -f -p "$loop" > /dev/null
losetup -d "$esploop"; esploop=
losetup -d "$loop"; loop=

# 6. Outputs.
base=$(basename "$img")
out=$outdir/$base.gz
sign_file "$img" "$outdir/$base.asc" &
checksum_file "$img" "$outdir/$base.sha256" "$base" &
stat -c %s "$img" > "$out.size"
pigz --no-name -c "$img" > "$out"
sign_file "$out" &
checksum_file "$out" &
wait
