#!/usr/bin/env bash
# Builds crashkey's disk-image fixtures with real tools: mkntfs/ntfscp/ntfscat (ntfs-3g),
# sfdisk (fdisk), qemu-img (qemu-utils), a small libntfs-3g helper for mkdir/rm/pwrite
# (ntfshelper.c) and the dump writer (internal/tools/mkfixture).
#
#   disk/testdata/mkfixtures.sh [OUTDIR]     (default: this directory)
#
# Writes into OUTDIR:
#   gpt.qcow2      GPT disk, zlib-compressed clusters (qemu-img convert -c):
#                    1 Microsoft reserved (no file system)
#                    2 NTFS "Data" (no \Windows)
#                    3 NTFS "Windows": Windows\MEMORY.DMP (fragmented, 5 runs),
#                      Windows\Minidump\*.dmp (two triage dumps), pagefile.sys without a dump,
#                      Windows\System32\config\SYSTEM, a sparse and an NTFS-compressed file,
#                      dumps\dedicated.sys (a DedicatedDumpFile holding a newer dump, 0x80)
#   mbr.qcow2      MBR disk, zstd-compressed clusters: 1 NTFS "Data", 2 extended,
#                    5 logical NTFS "Win" in odd case: WINDOWS\system32\CONFIG\SYSTEM,
#                    PAGEFILE.SYS with a dump header at offset 0 (guest stopped before it
#                    rebooted), WINDOWS\MINIDUMP\Mini112026-01.DMP, no MEMORY.DMP
#   base.qcow2     bare NTFS file system (no partition table) with an old MEMORY.DMP
#   overlay.qcow2  backing file base.qcow2 (relative): the same volume after a newer crash
#   tiny*.qcow2    1 MiB GPT disks with 512-byte clusters (plain, zlib, zstd): fuzz seeds
#   manifest.tsv   image, partition, path, size, sha256 of every interesting file, taken
#                  with ntfscat from the raw volumes (the independent oracle)
# mkntfs picks random serials and ntfscp stamps "now": rebuilt images differ byte for byte,
# file contents do not. Takes a few seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$here}" && cd "${1:-$here}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

. "$root/disk/testdata/fixturelib.sh"
need mkfixtures mkntfs ntfscp ntfscat sfdisk qemu-img gcc
build_ntfshelper "$work"
build_tool "$work" mkfixture
H="$work/ntfshelper"
M="$work/mkfixture"
# An armed SYSTEM hive (hivex's LGPL-2.1 "minimal" hive with crashcontrol.reg merged in; see
# registry/testdata/README.md), so that the images look like a Windows volume to preflight too.
system_hive="$root/registry/testdata/SYSTEM-crashcontrol"
[ -f "$system_hive" ] || system_hive="$root/../shared/fixtures/SYSTEM-crashcontrol"
[ -f "$system_hive" ] || { echo "mkfixtures: registry/testdata/SYSTEM-crashcontrol is missing" >&2; exit 1; }
manifest="$work/manifest.tsv"
: >"$manifest"

# newvol FILE MIB LABEL START_SECTOR
newvol() {
  rm -f "$1"; truncate -s "$2M" "$1"
  mkntfs -F -Q -q -c 4096 -s 512 -p "$4" -H 255 -S 63 -L "$3" "$1" >/dev/null 2>&1
}
# record IMAGE PARTITION VOLFILE PATH: remember the file's content as ntfscat reads it
record() {
  local sum size
  sum=$(ntfscat "$3" "$4" | sha256sum | cut -d' ' -f1)
  size=$(ntfscat "$3" "$4" | wc -c)
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$4" "$size" "$sum" >>"$manifest"
}
# check SRC VOLFILE PATH: the copy inside the volume must equal the source file
check() {
  cmp -s "$1" <(ntfscat "$2" "$3") || { echo "mkfixtures: $3 differs from $1 after ntfscp" >&2; exit 1; }
}
# fragmented VOLFILE PATH SRC: write SRC in 64 KiB pieces interleaved with a spacer file
fragmented() {
  local off=0 k=0 c
  rm -f "$work"/chunk.*
  split -b 65536 -d -a 3 "$3" "$work/chunk."
  head -c 65536 /dev/zero >"$work/z64"
  for c in "$work"/chunk.*; do
    "$H" pwrite "$1" "$2" "$c" "$off"
    off=$((off + $(stat -c %s "$c")))
    "$H" pwrite "$1" Windows/Temp/spacer.tmp "$work/z64" $((k * 65536))
    k=$((k + 1))
  done
}

T1=2026-11-20T09:15:00Z
T2=2026-11-20T10:30:00Z
T3=2026-11-20T11:45:00Z

# ---- gpt.qcow2 ------------------------------------------------------------------------
"$M" -o "$work/memory.dmp" -type full -bugcheck 0xE2 -pages 60 -seed 11 -time "$T2"
"$M" -o "$work/mini1.dmp" -type triage -bugcheck 0x1E -triage-size 0x6000 -secondary 2048 -seed 12 -time "$T1"
"$M" -o "$work/mini2.dmp" -type triage -bugcheck 0xE2 -triage-size 0x5000 -seed 13 -time "$T2"
"$M" -o "$work/pagefile.sys" -junk 196608 -seed 14
"$M" -o "$work/sparse-part" -junk 8192 -seed 15
"$M" -o "$work/dedicated.sys" -type full -bugcheck 0x80 -pages 30 -seed 16 -time "$T3" -tail 65536
seq 1 40000 >"$work/notes.txt"
printf 'user data, not Windows\r\n' >"$work/readme.txt"

data="$work/gpt-data.ntfs"; win="$work/gpt-win.ntfs"
newvol "$data" 8 Data 4096
ntfscp "$data" "$work/readme.txt" readme.txt
newvol "$win" 24 Windows 20480
for d in Windows Windows/System32 Windows/System32/config Windows/Minidump Windows/Temp dumps; do "$H" mkdir "$win" "$d"; done
"$H" mkdir "$win" Windows/Compressed compressed
ntfscp "$win" "$system_hive" Windows/System32/config/SYSTEM
fragmented "$win" Windows/MEMORY.DMP "$work/memory.dmp"
check "$work/memory.dmp" "$win" Windows/MEMORY.DMP
ntfscp "$win" "$work/mini1.dmp" Windows/Minidump/112026-9015-01.dmp
ntfscp "$win" "$work/mini2.dmp" Windows/Minidump/112026-10300-02.dmp
ntfscp "$win" "$work/pagefile.sys" pagefile.sys
ntfscp "$win" "$work/dedicated.sys" dumps/dedicated.sys
ntfscp "$win" "$work/notes.txt" Windows/Compressed/notes.txt
"$H" pwrite "$win" Windows/Temp/sparse.bin "$work/sparse-part" 0
"$H" pwrite "$win" Windows/Temp/sparse.bin "$work/sparse-part" 1048576
check "$work/notes.txt" "$win" Windows/Compressed/notes.txt
for p in Windows/MEMORY.DMP Windows/Minidump/112026-9015-01.dmp Windows/Minidump/112026-10300-02.dmp \
         pagefile.sys Windows/System32/config/SYSTEM Windows/Compressed/notes.txt Windows/Temp/sparse.bin \
         dumps/dedicated.sys; do
  record gpt.qcow2 3 "$win" "$p"
done
printf 'gpt.qcow2\t3\tdumps/dedicated.sys#dump\t%s\t%s\n' $((0x2000 + 30 * 4096)) \
  "$(head -c $((0x2000 + 30 * 4096)) "$work/dedicated.sys" | sha256sum | cut -d' ' -f1)" >>"$manifest"
record gpt.qcow2 2 "$data" readme.txt

disk="$work/gpt.raw"
rm -f "$disk"; truncate -s 36M "$disk"
sfdisk -q "$disk" <<'SF'
label: gpt
label-id: 5C0F1E2D-3A4B-4C5D-8E9F-A0B1C2D3E4F5
unit: sectors
first-lba: 2048
start=2048, size=2048, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE, uuid=11111111-2222-3333-4444-555555555501, name="Microsoft reserved partition"
start=4096, size=16384, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=11111111-2222-3333-4444-555555555502, name="Data"
start=20480, size=49152, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=11111111-2222-3333-4444-555555555503, name="Basic data partition"
SF
dd if="$data" of="$disk" bs=512 seek=4096 conv=notrunc,sparse status=none
dd if="$win" of="$disk" bs=512 seek=20480 conv=notrunc,sparse status=none
qemu-img convert -q -c -f raw -O qcow2 "$disk" "$work/gpt.qcow2"

# ---- mbr.qcow2 ------------------------------------------------------------------------
"$M" -o "$work/pf-dump.sys" -type full -bugcheck 0xE2 -pages 40 -seed 21 -time "$T2" -tail 131072
"$M" -o "$work/mini3.dmp" -type triage -bugcheck 0x80 -triage-size 0x4000 -seed 22 -time "$T1"
data="$work/mbr-data.ntfs"; win="$work/mbr-win.ntfs"
newvol "$data" 8 Data 2048
ntfscp "$data" "$work/readme.txt" readme.txt
newvol "$win" 24 Win 20480
for d in WINDOWS WINDOWS/system32 WINDOWS/system32/CONFIG WINDOWS/MINIDUMP; do "$H" mkdir "$win" "$d"; done
ntfscp "$win" "$system_hive" WINDOWS/system32/CONFIG/system
ntfscp "$win" "$work/pf-dump.sys" PAGEFILE.SYS
ntfscp "$win" "$work/mini3.dmp" WINDOWS/MINIDUMP/Mini112026-01.DMP
for p in PAGEFILE.SYS WINDOWS/MINIDUMP/Mini112026-01.DMP WINDOWS/system32/CONFIG/system; do
  record mbr.qcow2 5 "$win" "$p"
done
head -c $((0x2000 + 40 * 4096)) "$work/pf-dump.sys" | sha256sum | cut -d' ' -f1 >"$work/pf-dump.cut.sha256"
printf 'mbr.qcow2\t5\tPAGEFILE.SYS#dump\t%s\t%s\n' $((0x2000 + 40 * 4096)) "$(cat "$work/pf-dump.cut.sha256")" >>"$manifest"
record mbr.qcow2 1 "$data" readme.txt

disk="$work/mbr.raw"
rm -f "$disk"; truncate -s 36M "$disk"
sfdisk -q "$disk" <<'SF'
label: dos
label-id: 0x1c2d3e4f
unit: sectors
start=2048, size=16384, type=7
start=18432, size=53248, type=5
start=20480, size=49152, type=7
SF
dd if="$data" of="$disk" bs=512 seek=2048 conv=notrunc,sparse status=none
dd if="$win" of="$disk" bs=512 seek=20480 conv=notrunc,sparse status=none
qemu-img convert -q -c -f raw -O qcow2 -o compression_type=zstd "$disk" "$work/mbr.qcow2"

# ---- base.qcow2 + overlay.qcow2 (a backing chain over a bare file system) ---------------
"$M" -o "$work/old.dmp" -type full -bugcheck 0x1E -pages 24 -seed 31 -time "$T1"
"$M" -o "$work/new.dmp" -type bitmap -bugcheck 0xE2 -pages 28 -seed 32 -time "$T2"
vol="$work/bare.ntfs"
newvol "$vol" 12 Bare 0
"$H" mkdir "$vol" Windows
ntfscp "$vol" "$work/old.dmp" Windows/MEMORY.DMP
qemu-img convert -q -c -f raw -O qcow2 "$vol" "$work/base.qcow2"
record base.qcow2 1 "$vol" Windows/MEMORY.DMP
cp "$vol" "$work/bare-old.ntfs"
"$H" rm "$vol" Windows/MEMORY.DMP
ntfscp "$vol" "$work/new.dmp" Windows/MEMORY.DMP
check "$work/new.dmp" "$vol" Windows/MEMORY.DMP
record overlay.qcow2 1 "$vol" Windows/MEMORY.DMP
# The overlay holds only the 64 KiB clusters that changed (written compressed), so reads of
# everything else fall through to base.qcow2.
(cd "$work" && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2 12M)
cmds=()
for c in $(cmp -l "$work/bare-old.ntfs" "$vol" | awk '{print int(($1-1)/65536)}' | uniq); do
  dd if="$vol" of="$work/cl.$c" bs=65536 skip="$c" count=1 status=none
  cmds+=(-c "write -q -c -s $work/cl.$c $((c * 65536)) 65536")
done
qemu-io -f qcow2 "${cmds[@]}" "$work/overlay.qcow2"
qemu-img compare -q -f qcow2 -F raw "$work/overlay.qcow2" "$vol"

# ---- tiny*.qcow2: fuzz seeds (512-byte clusters: plain, zlib and zstd) ------------------
rm -f "$work/tiny.raw"; truncate -s 1M "$work/tiny.raw"
sfdisk -q "$work/tiny.raw" <<'SF'
label: gpt
label-id: 0E0E0E0E-1111-2222-3333-444444444444
unit: sectors
first-lba: 34
start=40, size=200, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=0E0E0E0E-1111-2222-3333-444444444401, name="a"
start=300, size=100, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE, uuid=0E0E0E0E-1111-2222-3333-444444444402
SF
printf 'hello world' | dd of="$work/tiny.raw" bs=512 seek=40 conv=notrunc status=none
qemu-img convert -q -f raw -O qcow2 -o cluster_size=512 "$work/tiny.raw" "$work/tiny.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=512 "$work/tiny.raw" "$work/tinyc.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=512,compression_type=zstd "$work/tiny.raw" "$work/tinyz.qcow2"

for f in gpt.qcow2 mbr.qcow2 base.qcow2 overlay.qcow2 tiny.qcow2 tinyc.qcow2 tinyz.qcow2 manifest.tsv; do
  cp "$work/$f" "$out/$f"
done
echo "mkfixtures: wrote $(cd "$out" && du -ch gpt.qcow2 mbr.qcow2 base.qcow2 overlay.qcow2 | tail -1 | cut -f1) of images to $out"
