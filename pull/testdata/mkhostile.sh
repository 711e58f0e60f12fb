#!/usr/bin/env bash
# Builds pull's hostile-image fixtures with real tools: mkntfs (ntfs-3g), the libntfs-3g helper
# of disk/testdata (ntfshelper.c: files with any name, sparse writes), qemu-img and the dump
# writer (internal/tools/mkfixture).
#
#   pull/testdata/mkhostile.sh [OUTDIR]     (default: this directory)
#
# Writes into OUTDIR:
#   hostile.qcow2   a bare NTFS volume "Hostile" (volume 1) holding
#                     Windows\MEMORY.DMP         a 96 KiB full dump in a sparse 4 TiB file
#                     Windows\Temp\huge.bin      a sparse 2 TiB file without a dump header
#                     Windows\Temp\sparse.bin    64 MiB: 4 KiB of data at each end, a hole between
#                     Windows\Minidump\*.dmp     triage dumps with odd names: 100%.dmp, a:b.dmp,
#                                                q?.dmp, ..\..\evil.dmp (backslashes are part of
#                                                the name), an ESC/OSC name, a name with a newline,
#                                                Case.dmp and CASE.dmp, a 238-character name
#                                                (472 bytes of UTF-8), ok.dmp
#                     pagefile.sys               a triage dump (SizeOfDump 0x5000) followed by
#                                                DumpBlob secondary data (two blobs) and junk
#   minionly.qcow2  a bare NTFS volume with Windows\Minidump\only.dmp and no full dump
#   hostile.tsv     path (as in the image, hex of its UTF-8), bytes pull must take, sha256 of them
# mkntfs picks random serials: rebuilt images differ byte for byte, file contents do not.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$here}" && cd "${1:-$here}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. "$root/disk/testdata/fixturelib.sh"
need mkhostile mkntfs qemu-img gcc
build_ntfshelper "$work"
build_tool "$work" mkfixture
H="$work/ntfshelper"
M="$work/mkfixture"
tsv="$work/hostile.tsv"
: >"$tsv"
# record NAME FILE [BYTES]: what pull must produce for NAME: the first BYTES (default all) of FILE
record() {
  local n="${3:-$(stat -c %s "$2")}"
  printf '%s\t%s\t%s\n' "$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')" "$n" "$(head -c "$n" "$2" | sha256sum | cut -d' ' -f1)" >>"$tsv"
}
le32() { local v=$1; printf "\\x$(printf %02x $((v & 255)))\\x$(printf %02x $(((v >> 8) & 255)))\\x$(printf %02x $(((v >> 16) & 255)))\\x$(printf %02x $(((v >> 24) & 255)))"; }

vol="$work/hostile.ntfs"
truncate -s 32M "$vol"
mkntfs -F -Q -q -c 4096 -s 512 -p 0 -H 255 -S 63 -L Hostile "$vol" >/dev/null 2>&1
for d in Windows Windows/Temp Windows/Minidump; do "$H" mkdir "$vol" "$d"; done

# A sparse 4 TiB MEMORY.DMP whose header gives 96 KiB (16 pages + 0x2000 header) - the
# newest dump, so that a plain pull takes it.
"$M" -o "$work/memory.dmp" -type full -bugcheck 0xE2 -pages 16 -seed 41 -time 2026-11-20T12:00:00Z
"$H" pwrite "$vol" Windows/MEMORY.DMP "$work/memory.dmp" 0
head -c 4096 /dev/zero | tr '\0' 'Z' >"$work/z4k"
"$H" pwrite "$vol" Windows/MEMORY.DMP "$work/z4k" $(((4 << 40) - 4096))
record 'Windows\MEMORY.DMP' "$work/memory.dmp"
"$H" pwrite "$vol" Windows/Temp/huge.bin "$work/z4k" $(((2 << 40) - 4096))
"$H" pwrite "$vol" Windows/Temp/sparse.bin "$work/z4k" 0
"$H" pwrite "$vol" Windows/Temp/sparse.bin "$work/z4k" $(((64 << 20) - 4096))
{ cat "$work/z4k"; head -c $(((64 << 20) - 8192)) /dev/zero; cat "$work/z4k"; } >"$work/sparse.bin"
record 'Windows\Temp\sparse.bin' "$work/sparse.bin"

# Minidumps with names that are legal on NTFS but odd or hostile elsewhere.
long="$(printf 'ä%.0s' $(seq 1 234)).dmp"
names=('100%.dmp' 'a:b.dmp' 'q?.dmp' '..\..\evil.dmp' $'esc\e]0;owned\a\e[2J.dmp' $'new\nline.dmp' 'Case.dmp' 'CASE.dmp' "$long" 'ok.dmp')
i=0
for n in "${names[@]}"; do
  i=$((i + 1))
  "$M" -o "$work/mini$i.dmp" -type triage -bugcheck 0x1E -triage-size 0x4000 -seed $((50 + i)) \
    -time "2026-11-19T10:$(printf %02d "$i"):00Z"
  "$H" pwrite "$vol" "Windows/Minidump/$n" "$work/mini$i.dmp" 0
  record "Windows\\Minidump\\$n" "$work/mini$i.dmp"
done

# pagefile.sys: a triage dump still at its start, with secondary data: the DUMP_BLOB_FILE_HEADER
# ("DumpBlob", HeaderSize 16, BuildNumber), a blob of 100 bytes padded to 104, a blob of 64
# bytes; then 64 KiB of other pages. Pull must take 0x5000 + 16 + (32 + 104) + (32 + 64) bytes.
"$M" -o "$work/pf-triage.dmp" -type triage -bugcheck 0x80 -triage-size 0x5000 -seed 61 -time 2026-11-20T11:00:00Z
{
  cat "$work/pf-triage.dmp"
  printf 'DumpBlob'; le32 16; le32 19041
  le32 32; printf '0123456789abcdef'; le32 100; le32 0; le32 4; head -c 104 /dev/zero | tr '\0' 'A'
  le32 32; printf 'fedcba9876543210'; le32 64; le32 0; le32 0; head -c 64 /dev/zero | tr '\0' 'B'
} >"$work/pf-mini.dmp"
"$M" -o "$work/pf-junk" -junk 65536 -seed 62
cat "$work/pf-mini.dmp" "$work/pf-junk" >"$work/pagefile.sys"
"$H" pwrite "$vol" pagefile.sys "$work/pagefile.sys" 0
record 'pagefile.sys#minidump' "$work/pagefile.sys" $((0x5000 + 16 + 32 + 104 + 32 + 64))
qemu-img convert -q -c -f raw -O qcow2 "$vol" "$work/hostile.qcow2"

# minionly.qcow2: minidumps but no full dump anywhere.
vol="$work/minionly.ntfs"
truncate -s 8M "$vol"
mkntfs -F -Q -q -c 4096 -s 512 -p 0 -H 255 -S 63 -L MiniOnly "$vol" >/dev/null 2>&1
for d in Windows Windows/Minidump; do "$H" mkdir "$vol" "$d"; done
"$H" pwrite "$vol" Windows/Minidump/only.dmp "$work/mini1.dmp" 0
qemu-img convert -q -c -f raw -O qcow2 "$vol" "$work/minionly.qcow2"

cp "$work/hostile.qcow2" "$work/minionly.qcow2" "$tsv" "$out/"
ls -l "$out"/hostile.qcow2 "$out"/minionly.qcow2 >&2
