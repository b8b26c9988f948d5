#!/bin/bash
# eib's shell library for hooks. A non-executable hook is run by
# "bash -ex" with this file sourced first; an executable one may source it
# itself: . "${EIB_SRCDIR}/lib/eib.sh".
#
# Variables: the whole configuration as EIB_* (the [build] keys as
# EIB_<KEY>, e.g. EIB_OUTDIR, others as EIB_<SECTION>_<KEY>), EIB_HOOK_GROUP,
# EIB_PROGRAM (the eib executable), and from the image stage on
# OSTREE_DEPLOYMENT, OSTREE_VAR, OSTREE_CURRENT_DEPLOYMENT.

shopt -s nullglob
shopt -s extglob

# ERR traps follow through to shell functions.
set -E

# xtrace lines name the script ("+ 50-hostname: cmd"); the build log adds
# the time.
export PS4='+ ${BASH_SOURCE[0]##*/}: '

# eib_outfile SUFFIX: path of an output file, $EIB_OUTDIR/$EIB_OUTVERSION.SUFFIX
eib_outfile() {
  local suffix=${1:?No suffix supplied to ${FUNCNAME[0]}}
  echo "${EIB_OUTDIR:?EIB_OUTDIR is not set}/${EIB_OUTVERSION:?EIB_OUTVERSION is not set}.${suffix}"
}

# eib_retry CMD [ARG...]: run CMD until it succeeds, at most
# EIB_RETRY_ATTEMPTS times (default 10), EIB_RETRY_INTERVAL seconds apart
# (default 1).
eib_retry() {
  local -i i=0
  local max=${EIB_RETRY_ATTEMPTS:-10}
  local interval=${EIB_RETRY_INTERVAL:-1}

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
# FILE.asc), made by eib's own signer ("eib sign"), which does nothing (and
# says so) when no signing key is configured.
sign_file() {
  local file=${1:?No file supplied to ${FUNCNAME[0]}}
  local out=${2:-${file}.asc}

  if [ -z "${EIB_PROGRAM}" ]; then
    echo "error: EIB_PROGRAM is not set: sign_file needs the eib executable" >&2
    return 1
  fi
  "${EIB_PROGRAM}" sign "${file}" "${out}"
}

# eib_write_version_xattr DIR: record the image version ($EIB_OUTVERSION) in
# the user.eos-image-version xattr of DIR (the root of a partition).
eib_write_version_xattr() {
  local dir=${1:?No directory supplied to ${FUNCNAME[0]}}
  setfattr -n user.eos-image-version -v "${EIB_OUTVERSION:?EIB_OUTVERSION is not set}" "${dir}"
}

# _eib_ostree_id FILE NAME: the third field of NAME's line in the
# deployment's passwd/group (ostree keeps system accounts in /usr/lib).
_eib_ostree_id() {
  local file=$1 name=$2 f
  for f in "${OSTREE_DEPLOYMENT:?OSTREE_DEPLOYMENT is not set}/usr/lib/${file}" \
           "${OSTREE_DEPLOYMENT}/lib/${file}" "${OSTREE_DEPLOYMENT}/etc/${file}"; do
    [ -f "${f}" ] || continue
    if awk -F: -v n="${name}" '$1 == n { print $3; found = 1; exit } END { exit !found }' "${f}"; then
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
  echo "${l/_/-}"
}

# recreate_dir DIR: delete DIR and make it again, empty.
recreate_dir() {
  local dir=${1:?No directory supplied to ${FUNCNAME[0]}}
  rm -rf "${dir}"
  mkdir -p "${dir}"
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

# eib_umount TARGET: unmount a tracked mount point and forget it.
eib_umount() {
  local target=${1:?No mount target supplied to ${FUNCNAME[0]}}
  local -a kept=()
  local mp found=false
  local -i n

  # The latest mount of TARGET goes first (it may be stacked).
  for ((n = ${#EIB_MOUNTS[@]} - 1; n >= 0; n--)); do
    mp=${EIB_MOUNTS[n]}
    if ! ${found} && [ "${mp}" = "${target}" ]; then
      umount "${target}"
      found=true
    else
      kept=("${mp}" "${kept[@]}")
    fi
  done
  if ! ${found}; then
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

true
