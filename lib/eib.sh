#!/bin/bash
# eib's shell library for hooks. A non-executable hook is run by
# "bash -ex" with this file sourced first; an executable one may source it
# itself: . "${EIB_SRCDIR}/lib/eib.sh".
#
# Variables: the whole configuration as EIB_* (the [build] keys as
# EIB_<KEY>, e.g. EIB_OUTDIR, EIB_BASELIB (this file), EIB_HELPERSDIR,
# EIB_TMPFULLCONFIG; others as EIB_<SECTION>_<KEY>), EIB_HOOK_GROUP,
# EIB_PROGRAM (the eib executable), EIB_DEBUG=1 with --debug, and from the
# image stage on OSTREE_DEPLOYMENT, OSTREE_VAR, OSTREE_CURRENT_DEPLOYMENT,
# EIB_CACHEDIR_CHROOT and EIB_SRCDIR_CHROOT (where .chroot hooks and the
# chroot function see the cachedir and the eib tree).

shopt -s nullglob
shopt -s extglob

# ERR traps follow through to shell functions.
set -E

# xtrace lines name the script ("+ 50-hostname: cmd"); the build log adds
# the time.
export PS4='+ ${BASH_SOURCE[0]##*/}: '

# Values are data: they are quoted, never evaluated, and a setting that
# must be a number is checked first, with an error naming its variable.

# eib_is_uint VALUE: VALUE is a decimal integer (digits only).
eib_is_uint() {
  [[ $1 =~ ^[0-9]+$ ]]
}

# eib_check_file_name NAME VALUE: fail, naming NAME, unless VALUE can be a
# file name (not empty, no "/", no newline, not "." or "..").
eib_check_file_name() {
  local name=$1 value=$2
  if [ -z "${value}" ] || [[ ${value} == */* || ${value} == *$'\n'* || ${value} == . || ${value} == .. ]]; then
    printf 'error: %s: not a file name (empty, ".", "..", or with "/" or a newline): %.200q\n' "${name}" "${value}" >&2
    return 1
  fi
}

# eib_outfile SUFFIX: path of an output file, $EIB_OUTDIR/$EIB_OUTVERSION.SUFFIX
# (EIB_OUTVERSION and SUFFIX must be file names).
eib_outfile() {
  local suffix=${1:?No suffix supplied to ${FUNCNAME[0]}}
  eib_check_file_name EIB_OUTVERSION "${EIB_OUTVERSION:?EIB_OUTVERSION is not set}" || return 1
  eib_check_file_name "${FUNCNAME[0]} SUFFIX" "${suffix}" || return 1
  printf '%s\n' "${EIB_OUTDIR:?EIB_OUTDIR is not set}/${EIB_OUTVERSION}.${suffix}"
}

# eib_retry CMD [ARG...]: run CMD until it succeeds, at most
# EIB_RETRY_ATTEMPTS times (default 10), EIB_RETRY_INTERVAL seconds apart
# (default 1). Both must be numbers (attempts a whole number from 1, the
# interval whole or decimal seconds); anything else is an error naming the
# variable, before CMD runs.
eib_retry() {
  local -i i=0 max
  local attempts=${EIB_RETRY_ATTEMPTS:-10}
  local interval=${EIB_RETRY_INTERVAL:-1}

  # Checked as text before any arithmetic: bash arithmetic would run a
  # $(...) or a[$(...)] inside the value.
  if ! eib_is_uint "${attempts}" || [ "${#attempts}" -gt 9 ] || [ "$((10#${attempts}))" -lt 1 ]; then
    printf 'error: EIB_RETRY_ATTEMPTS: not a number from 1 to 999999999: %.200q\n' "${attempts}" >&2
    return 1
  fi
  max=$((10#${attempts}))
  if ! [[ ${interval} =~ ^[0-9]{1,9}(\.[0-9]{1,9})?$ ]]; then
    printf 'error: EIB_RETRY_INTERVAL: not a number of seconds: %.200q\n' "${interval}" >&2
    return 1
  fi
  if [ $# -eq 0 ]; then
    echo "error: No command supplied to ${FUNCNAME[0]}" >&2
    return 1
  fi
  while ! "$@"; do
    i+=1
    if (( i >= max )); then
      echo "$* failed ${max} times; giving up" >&2
      return 1
    fi
    echo "$* failed; retrying..." >&2
    sleep "${interval}"
  done
}

# checksum_file FILE [OUT [TARGET]]: write "<sha256>  <basename>" to OUT
# (default FILE.sha256); the name is TARGET's base name (default FILE's),
# for a checksum computed before FILE is renamed to TARGET.
checksum_file() {
  local file=${1:?No file supplied to ${FUNCNAME[0]}}
  local out=${2:-${file}.sha256}
  local target=${3:-${file}}
  local sum

  sum=$(sha256sum < "${file}")
  sum=${sum%% *}
  printf '%s  %s\n' "${sum}" "${target##*/}" > "${out}"
}

# sign_file FILE [OUT]: detached armored signature of FILE in OUT (default
# FILE.asc). In a build, eib's own signer ("$EIB_PROGRAM sign") makes it
# with the [image] signing key, or does nothing (and says so) when none is
# configured. Without eib (EIB_PROGRAM unset, as for EIB's own scripts) it
# is EIB's way: gpg with the key EIB_IMAGE_SIGNING_KEYID of the keyring
# EIB_IMAGE_GPG_HOMEDIR (default ${EIB_SYSCONFDIR}/gnupg), and nothing when
# that id is empty.
sign_file() {
  local file=${1:?No file supplied to ${FUNCNAME[0]}}
  local out=${2:-${file}.asc}

  if [ -n "${EIB_PROGRAM:-}" ]; then
    "${EIB_PROGRAM}" sign "${file}" "${out}"
    return
  fi
  if [ -z "${EIB_IMAGE_SIGNING_KEYID:-}" ]; then
    if [ -n "${EIB_IMAGE_SIGNING_KEY:-}" ] && [ -f "${EIB_IMAGE_SIGNING_KEY}" ]; then
      echo "error: ${FUNCNAME[0]} ${file}: [image] signing_key ${EIB_IMAGE_SIGNING_KEY} needs eib's signer, but EIB_PROGRAM is not set" >&2
      return 1
    fi
    echo "${FUNCNAME[0]}: no [image] signing_keyid: ${file} not signed" >&2
    return 0
  fi
  local homedir=${EIB_IMAGE_GPG_HOMEDIR:-${EIB_SYSCONFDIR:?EIB_SYSCONFDIR is not set}/gnupg}
  gpg --batch --yes --homedir "${homedir}" --armor \
      --local-user "${EIB_IMAGE_SIGNING_KEYID}" \
      --detach-sign --output "${out}" -- "${file}"
}

# eib_write_version_xattr DIR: record the image version ($EIB_OUTVERSION) in
# the user.eos-image-version xattr of DIR (the root of a partition), byte
# for byte (given to setfattr hex-encoded, so that its own "0x", "0s" and
# quote syntax never applies to the value).
eib_write_version_xattr() {
  local dir=${1:?No directory supplied to ${FUNCNAME[0]}}
  local version=${EIB_OUTVERSION:?EIB_OUTVERSION is not set} hex
  hex=$(printf '%s' "${version}" | od -An -v -tx1 | tr -d ' \n')
  if ! setfattr -n user.eos-image-version -v "0x${hex}" -- "${dir}"; then
    printf 'error: %s: could not write EIB_OUTVERSION (%d bytes) to the user.eos-image-version xattr of %s\n' \
      "${FUNCNAME[0]}" "${#version}" "${dir}" >&2
    return 1
  fi
}

# _eib_ostree_id FILE NAME: the third field of NAME's line in the
# deployment's passwd/group (ostree keeps system accounts in /usr/lib).
_eib_ostree_id() {
  local file=$1 name=$2 f
  for f in "${OSTREE_DEPLOYMENT:?OSTREE_DEPLOYMENT is not set}/usr/lib/${file}" \
           "${OSTREE_DEPLOYMENT}/lib/${file}" "${OSTREE_DEPLOYMENT}/etc/${file}"; do
    [ -f "${f}" ] || continue
    # The name through the environment: awk -v would expand backslashes.
    if EIB_ID_NAME=${name} awk -F: '$1 == ENVIRON["EIB_ID_NAME"] { print $3; found = 1; exit } END { exit !found }' "${f}"; then
      return 0
    fi
  done
  echo "error: ${name} not found in the ${file} files of ${OSTREE_DEPLOYMENT}" >&2
  return 1
}

# ostree_uid NAME: the UID of user NAME in the deployment being built.
ostree_uid() {
  _eib_ostree_id passwd "${1:?No user supplied to ${FUNCNAME[0]}}"
}

# ostree_gid NAME: the GID of group NAME in the deployment being built.
ostree_gid() {
  _eib_ostree_id group "${1:?No group supplied to ${FUNCNAME[0]}}"
}

# locale_to_iso_639_1 LOCALE: drop the modifier and codeset and use a dash,
# so that br_FR.iso885915@euro becomes br-FR.
locale_to_iso_639_1() {
  local l=${1%%@*}
  l=${l%%.*}
  printf '%s\n' "${l/_/-}"
}

# recreate_dir DIR: delete DIR and make it again, empty.
recreate_dir() {
  local dir=${1:?No directory supplied to ${FUNCNAME[0]}}
  rm -rf -- "${dir}"
  mkdir -p -- "${dir}"
}

# Mount points mounted by eib_mount, in mount order; not reset when this
# file is sourced again.
declare -a EIB_MOUNTS

# eib_mount [MOUNT-OPTION...] SOURCE TARGET: mount(8) and track TARGET.
eib_mount() {
  if [ $# -lt 2 ]; then
    echo "error: At least 2 arguments needed to ${FUNCNAME[0]}" >&2
    return 1
  fi
  local target=${!#}
  mkdir -p "${target}"
  mount "$@"
  EIB_MOUNTS+=("${target}")
}

# eib_umount TARGET: unmount every tracked mount of TARGET (a mount point
# mounted twice is unmounted twice, the latest first) and forget them.
eib_umount() {
  local target=${1:?No mount target supplied to ${FUNCNAME[0]}}
  local -a kept=()
  local -i n found=0

  for ((n = ${#EIB_MOUNTS[@]} - 1; n >= 0; n--)); do
    if [ "${EIB_MOUNTS[n]}" = "${target}" ]; then
      umount "${target}"
      found+=1
    else
      kept=("${EIB_MOUNTS[n]}" "${kept[@]}")
    fi
  done
  if (( found == 0 )); then
    echo "error: Mount point ${target} not tracked in: ${EIB_MOUNTS[*]}" >&2
    return 1
  fi
  EIB_MOUNTS=("${kept[@]}")
}

# eib_umount_all: unmount every tracked mount point, latest first.
eib_umount_all() {
  local -i n
  for ((n = ${#EIB_MOUNTS[@]} - 1; n >= 0; n--)); do
    umount "${EIB_MOUNTS[n]}"
    unset 'EIB_MOUNTS[n]'
  done
  EIB_MOUNTS=()
}

# chroot ROOT COMMAND [ARG...]: run COMMAND with ROOT as / (bubblewrap,
# through ${EIB_HELPERSDIR}/eib-chroot) in a clean environment: PATH, LANG,
# the EIB_* variables with paths under the cachedir and the eib tree
# rewritten to EIB_CACHEDIR_CHROOT and EIB_SRCDIR_CHROOT, any EIB_X_CHROOT
# as EIB_X, and PYTHONPATH for the eib module. This replaces chroot(8) in
# hooks. ROOT's own mounts (proc, sys, dev in the image stage) are kept.
chroot() {
  "${EIB_HELPERSDIR:?EIB_HELPERSDIR is not set}/eib-chroot" "$@"
}

# run_hooks GROUP [ROOT]: run the hooks listed in EIB_<GROUP>_HOOKS, sorted
# by name, each found first in ${EIB_LOCALDIR}/hooks/GROUP, then in
# ${EIB_HOOKSDIR:-${EIB_SRCDIR}/hooks}/GROUP. An executable hook is
# executed; any other is sourced in a subshell (it sees these functions
# and the caller's shell options). A *.chroot hook is copied into
# ROOT/tmp and run there by chroot (under "bash -ex" unless executable);
# without ROOT it is skipped. A missing or failing hook stops the group.
run_hooks() {
  local group=${1:?No hook group supplied to ${FUNCNAME[0]}}
  local root=${2:-}
  local var name dir path errexit
  local -i rc
  local -a words=() names=() dirs=()

  echo "Running ${group} hooks"
  export EIB_HOOK_GROUP=${group}

  var=EIB_${group^^}_HOOKS
  var=${var//[^A-Z0-9_]/_}
  IFS=$' \t\n' read -r -d '' -a words <<< "${!var:-}" || true
  if [ ${#words[@]} -gt 0 ]; then
    mapfile -t names < <(printf '%s\n' "${words[@]}" | LC_ALL=C sort)
  fi

  if [ -n "${EIB_LOCALDIR:-}" ]; then
    dirs+=("${EIB_LOCALDIR}/hooks")
  fi
  dirs+=("${EIB_HOOKSDIR:-${EIB_SRCDIR:?EIB_SRCDIR is not set}/hooks}")

  # A hook name is a file name of the group's directory: never a path
  # (nor "." or ".."), so a listed name cannot run a file elsewhere.
  for name in "${names[@]}"; do
    if [[ ${name} == */* || ${name} == . || ${name} == .. ]]; then
      printf 'error: %s: hook name %.200q is not a file name (no "/", ".", "..")\n' "${var}" "${name}" >&2
      return 1
    fi
  done

  for name in "${names[@]}"; do
    path=
    for dir in "${dirs[@]}"; do
      if [ -f "${dir}/${group}/${name}" ]; then
        path=${dir}/${group}/${name}
        break
      fi
    done
    if [ -z "${path}" ]; then
      echo "error: Missing hook ${group}/${name}: not a file in any of ${dirs[*]/%//${group}}" >&2
      return 1
    fi

    rc=0
    if [[ ${name} == *.chroot ]]; then
      if [ -z "${root}" ]; then
        echo "Skipping hook, no chroot available: ${group}/${name}"
        continue
      fi
      echo "Run hook in chroot ${root}: ${path}"
      mkdir -p "${root}/tmp"
      cp "${path}" "${root}/tmp/${name}"
      if [ -x "${path}" ]; then
        chroot "${root}" "/tmp/${name}" || rc=$?
      else
        chroot "${root}" bash -ex "/tmp/${name}" || rc=$?
      fi
      rm -f "${root}/tmp/${name}"
    elif [ -x "${path}" ]; then
      echo "Run hook: ${path}"
      "${path}" || rc=$?
    else
      echo "Run hook: ${path}"
      # Sourced in a subshell that keeps the caller's errexit: run as a
      # plain command (not in a condition, which would turn errexit off
      # inside it), with errexit off here to collect the status.
      errexit=false
      [[ $- == *e* ]] && errexit=true
      set +e
      (
        if ${errexit}; then set -e; fi
        # shellcheck disable=SC1090
        . "${path}"
      )
      rc=$?
      if ${errexit}; then set -e; fi
    fi
    if (( rc != 0 )); then
      echo "error: hook ${group}/${name} (${path}) failed with exit status ${rc}" >&2
      return "${rc}"
    fi
  done
}

# eib_fix_boot_checksum DISK DEPLOYMENT: on Amlogic platforms, fix the
# checksum of the SPL boot loader written on DISK with the OS's own
# amlogic-fix-spl-checksum; nothing when the OS has no such tool.
eib_fix_boot_checksum() {
  local disk=${1:?No disk supplied to ${FUNCNAME[0]}}
  local deploy=${2:?No deployment supplied to ${FUNCNAME[0]}}
  local tool=${deploy}/usr/sbin/amlogic-fix-spl-checksum

  [ -x "${tool}" ] || return 0
  "${tool}" "${disk}"
}

# eib_udevadm_settle: wait until udev has handled the pending device events
# (partitions of a loop device). Without the udev control socket it only
# says so; a failing settle is retried, then ignored.
eib_udevadm_settle() {
  if [ ! -e /run/udev/control ]; then
    echo "${FUNCNAME[0]}: no /run/udev/control: not waiting for udev" >&2
    return 0
  fi
  SYSTEMD_IGNORE_CHROOT=1 eib_retry udevadm settle || return 0
}

# eib_partx_scan DEVICE: add DEVICE's partitions to the kernel (retried:
# udev may hold the device busy for a moment).
eib_partx_scan() {
  local dev=${1:?No device supplied to ${FUNCNAME[0]}}
  eib_udevadm_settle
  eib_retry partx -a -v "${dev}"
}

# eib_partx_delete DEVICE: remove DEVICE's partitions from the kernel
# (retried).
eib_partx_delete() {
  local dev=${1:?No device supplied to ${FUNCNAME[0]}}
  eib_udevadm_settle
  eib_retry partx -d -v "${dev}"
}

# eib_delete_loop DEVICE: detach the loop device DEVICE (retried).
eib_delete_loop() {
  local dev=${1:?No device supplied to ${FUNCNAME[0]}}
  eib_udevadm_settle
  eib_retry losetup -d "${dev}"
}

# ostree_write_refs REPO SRC DEST: point the local ref DEST of the OSTree
# repository REPO at the commit of ref SRC, whatever DEST pointed at.
ostree_write_refs() {
  local repo=${1:?No ostree repo supplied to ${FUNCNAME[0]}}
  local src=${2:?No ostree source ref supplied to ${FUNCNAME[0]}}
  local dest=${3:?No ostree dest ref supplied to ${FUNCNAME[0]}}
  local commit file=${repo}/refs/heads/${dest}

  # An OSTree ref name: components of [A-Za-z0-9_.-] (not starting with
  # "." or "-") joined by "/"; nothing that could leave refs/heads.
  if ! [[ ${dest} =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$ ]]; then
    printf 'error: %s: not an OSTree ref name (dest ref): %.200q\n' "${FUNCNAME[0]}" "${dest}" >&2
    return 1
  fi
  if [[ ${src} == -* || ${src} == *$'\n'* ]]; then
    printf 'error: %s: not an OSTree ref or commit (source ref): %.200q\n' "${FUNCNAME[0]}" "${src}" >&2
    return 1
  fi
  commit=$(ostree --repo="${repo}" rev-parse "${src}")
  mkdir -p "${file%/*}"
  printf '%s\n' "${commit}" > "${file}.tmp"
  mv -f "${file}.tmp" "${file}"
}

# eib_compress_image IN OUT: compress the file IN into OUT with
# EIB_IMAGE_COMPRESSION (gz, xz or zst), at the levels eib uses for its
# own images.
eib_compress_image() {
  local in=${1:?No input file supplied to ${FUNCNAME[0]}}
  local out=${2:?No output file supplied to ${FUNCNAME[0]}}

  case "${EIB_IMAGE_COMPRESSION:-}" in
    gz)
      if command -v pigz >/dev/null; then
        pigz -6 --no-name -c -- "${in}" > "${out}"
      else
        gzip -6 --no-name -c -- "${in}" > "${out}"
      fi
      ;;
    xz)
      xz -T0 -6 -c -- "${in}" > "${out}"
      ;;
    zst)
      zstd -T0 -3 -q -c -- "${in}" > "${out}"
      ;;
    *)
      printf "error: %s: unknown [image] compression '%.200s' (gz, xz or zst; EIB_IMAGE_COMPRESSION)\n" "${FUNCNAME[0]}" "${EIB_IMAGE_COMPRESSION:-}" >&2
      return 1
      ;;
  esac
}

true
