#!/usr/bin/env bash
# Builds disk images with the NTFS geometries of real Windows disks that crashkey's
# committed fixtures lack (issue #10.1), with real tools: mkntfs, ntfscp, ntfscat (ntfs-3g),
# fdisk/sfdisk (util-linux), qemu-img.
#
#   disk/testdata/mkgeometry.sh OUTDIR
#
# Writes into OUTDIR:
#   clus2m.qcow2    GPT disk (512-byte LBAs), partition 1 NTFS with 2 MiB clusters
#                   (sectors-per-cluster byte 0xF4), as Windows 10 1709+ can format
#   clus128k.qcow2  GPT disk (512-byte LBAs), partition 1 NTFS with 128 KiB clusters (0xF8)
#   4kn.qcow2       4Kn disk: GPT with 4096-byte LBAs (fdisk -b 4096), partition 1 NTFS with
#                   4096-byte sectors and clusters (mkntfs -s 4096)
#   4kn64k.qcow2    4Kn disk, NTFS with 4096-byte sectors and 64 KiB clusters
#   manifest.tsv    image, partition, path, size, sha256, cluster size, sector size: every
#                   file as ntfscat reads it from the raw volume (the independent oracle)
# Each volume holds, in its root (ntfscp cannot make directories), MEMORY.DMP (3 MiB, written
# in growing steps between spacer files), pagefile.sys (6 MiB), SYSTEM.tmp and tiny.txt
# (small, resident files). Takes a few seconds.
set -euo pipefail
out="$(mkdir -p "$1" && cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/fixturelib.sh"
need mkgeometry mkntfs ntfscp ntfscat fdisk qemu-img
: >"$out/manifest.tsv"

# Deterministic contents (no randomness: rebuilt fixtures hold the same bytes).
gen() { # FILE BYTES TAG
  (yes "$3 line of deterministic test content 0123456789" || true) | head -c "$2" >"$1"
}
gen "$work/dump" $((3 << 20)) MEMORY.DMP
gen "$work/pagefile" $((6 << 20)) pagefile
printf 'regf and a little more\n' >"$work/system"
printf 'tiny\n' >"$work/tiny"

# build NAME SECTOR_SIZE CLUSTER_SIZE VOLUME_MIB
build() {
  local name=$1 ss=$2 cs=$3 mib=$4
  local start=$((1048576 / ss)) # partition at 1 MiB, in logical blocks
  local vol="$work/$name.vol" disk="$work/$name.raw"
  local sectors=$((mib * 1048576 / ss))
  rm -f "$vol" "$disk"
  truncate -s "${mib}M" "$vol"
  mkntfs -F -Q -q -s "$ss" -c "$cs" -p "$start" -H 255 -S 63 -L "$name" "$vol" >/dev/null 2>&1
  ntfscp -q "$vol" "$work/tiny" tiny.txt
  # MEMORY.DMP written in growing steps with a spacer file after each.
  local part=$(((3 << 20) / 4)) k
  ntfscp -q "$vol" "$work/system" SYSTEM.tmp
  for k in 0 1 2 3; do
    head -c $(((k + 1) * part)) "$work/dump" >"$work/dump.$k"
    ntfscp -q "$vol" "$work/dump.$k" MEMORY.DMP
    ntfscp -q "$vol" "$work/tiny" "spacer$k.tmp"
  done
  ntfscp -q "$vol" "$work/pagefile" pagefile.sys
  cmp -s "$work/dump" <(ntfscat "$vol" MEMORY.DMP) || { echo "mkgeometry: MEMORY.DMP differs after ntfscp" >&2; exit 1; }
  local f
  for f in MEMORY.DMP pagefile.sys tiny.txt SYSTEM.tmp; do
    printf '%s\t1\t%s\t%s\t%s\t%s\t%s\n' "$name.qcow2" "$f" "$(ntfscat "$vol" "$f" | wc -c)" \
      "$(ntfscat "$vol" "$f" | sha256sum | cut -d' ' -f1)" "$cs" "$ss" >>"$out/manifest.tsv"
  done
  truncate -s $(((mib + 2) * 1048576)) "$disk"
  printf 'g\nn\n1\n%d\n%d\nt\n11\nw\n' "$start" $((start + sectors - 1)) | fdisk -b "$ss" "$disk" >/dev/null 2>&1
  fdisk -b "$ss" -l "$disk" | grep -q 'Microsoft basic data' || { echo "mkgeometry: fdisk made no basic data partition" >&2; exit 1; }
  dd if="$vol" of="$disk" bs=1M seek=1 conv=notrunc status=none
  qemu-img convert -q -c -f raw -O qcow2 "$disk" "$out/$name.qcow2"
}
build clus2m 512 2097152 512
build clus128k 512 131072 96
build 4kn 4096 4096 64
build 4kn64k 4096 65536 64
