#!/usr/bin/env bash
# Installs every Debian package crashkey's tests, fixtures and e2e guest need.
# Idempotent: packages already present are skipped. Needs root (or sudo).
set -euo pipefail

pkgs=(
  qemu-system-x86   # e2e guest (TCG)
  qemu-utils        # qemu-img: qcow2 fixtures
  ntfs-3g           # mkntfs, ntfscp, ntfscat: NTFS fixtures and the stand-in guest's writer
  qemu-guest-agent  # qemu-ga: vm's agent client tested against the real agent (on a unix socket)
  fdisk             # sfdisk: GPT/MBR fixtures
  ntfs-3g-dev gcc libc6-dev # disk/testdata/ntfshelper.c: mkdir and compressed folders in NTFS fixtures (no FUSE)
  g++               # kdmp-parser (../shared/oracles) readers: 30-dump.sh cross-checks dumps, dump/analyze address translation
  libwin-hivex-perl # hivexregedit: .reg round trips into real hives
  libhivex-bin      # hivexget: independent hive reader
  cpio              # initramfs for the e2e guest
  zstd xz-utils     # kernel package extraction
  time              # GNU time -f %M: peak RSS in scripts/bench/check-deep.sh
  procps            # pgrep: the demo test checks that nothing is left running
  xkb-data x11proto-dev # scancodes/layout: xkb symbol files and keysymdef.h the layout table is generated from (and checked against)
  x11-xkb-utils     # xkbcomp: independent check of the generated layout table
  man-db            # man: scripts/test.d/60-package.sh reads the installed man page
  git               # scripts/package.sh: version and SOURCE_DATE_EPOCH from the last commit
  openssh-server    # scripts/guest/remote.sh: a private sshd on 127.0.0.1 for qemu+ssh:// tests
  openssh-client    # ssh-keygen: that sshd's host and client keys
  openssl           # scripts/guest/remote.sh: the CA and certificates of qemu+tls:// tests
  ca-certificates
)
if [ "${CRASHKEY_WITH_LIBVIRT:-1}" = 1 ]; then
  pkgs+=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: installing ${missing[*]} needs root: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# Installing a daemon (openssh-server) must not start it: without a policy-rc.d in place, one
# that forbids starting services is put there for the install and removed afterwards.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/crashkey-deps.log 2>&1 || { cat /tmp/crashkey-deps.log >&2; exit 1; }
