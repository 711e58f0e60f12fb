#!/usr/bin/env bash
# Builds crashkey's hostile disk images (issue #16) with real tools: mkntfs/ntfscp (ntfs-3g),
# qemu-img, the libntfs-3g helper (ntfshelper.c) and hand patches at computed offsets
# (internal/tools/ntfspatch, which prints every offset it changes).
#
#   disk/testdata/mkhostile.sh OUTDIR
#
# Writes into OUTDIR (bare NTFS volumes, no partition table, unless said otherwise):
#   bigindex.qcow2   1 GiB volume (zlib-compressed qcow2) whose root $I30 index has no $BITMAP
#                    and claims 256 MiB: 65,536 copies of a valid index block, the most
#                    crashkey reads; a lookup of \Windows (absent) walks a million entries for
#                    seconds, so a signal must end it
#   badblock.img     64 MiB volume whose root index claims 64 never-written blocks that its
#                    $BITMAP marks in use (a damaged index block)
#   overbudget.img   16 GiB sparse volume whose root index claims 4 GiB: refused at once
#   overindex.img    64 MiB volume whose root index claims 1 GiB, more than the volume
#   fixup.img        64 MiB volume with \Windows whose MFT record has a broken fixup
#   runpast.img      64 MiB volume with \Windows\MEMORY.DMP whose data run points past the
#                    end of the volume
#   truncated.qcow2  qcow2 of a volume with \Windows\MEMORY.DMP (1 MiB), cut in half
#   images/evil.qcow2  an overlay whose backing file is ../host/secret, a "host file" full
#                    of the marker HOST-SECRET-MARKER-0123456789ab (32 bytes, repeated)
#   images/link.qcow2  an overlay whose backing file is images/link.raw, a symbolic link to
#                    ../host/secret
#   payload.bin      the 1 MiB \Windows\MEMORY.DMP content of truncated.qcow2 and of the
#                    volumes (deterministic)
# Takes a few seconds; the 16 GiB volume is sparse (about 20 MiB on disk).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. "$root/disk/testdata/fixturelib.sh"
need mkhostile mkntfs ntfscp qemu-img gcc
build_ntfshelper "$work"
build_tool "$work" ntfspatch
H="$work/ntfshelper"
P="$work/ntfspatch"

newvol() { # FILE SIZE
  rm -f "$1"; truncate -s "$2" "$1"
  mkntfs -F -Q -q -c 4096 -s 512 "$1" >/dev/null 2>&1
}
# A deterministic 1 MiB payload (no host bytes in it).
for i in $(seq 0 8499); do printf 'crashkey hostile payload %0100d\n' "$i"; done >"$out/payload.bin"
truncate -s 1M "$out/payload.bin"

newvol "$work/big.img" 1G
"$P" fill "$work/big.img" $((256 << 20)) >&2
"$P" nobitmap "$work/big.img" >&2
qemu-img convert -q -c -f raw -O qcow2 "$work/big.img" "$out/bigindex.qcow2"
rm -f "$work/big.img"

newvol "$out/badblock.img" 64M
"$P" index "$out/badblock.img" $((64 * 4096)) >&2
"$P" bitmapall "$out/badblock.img" >&2

newvol "$out/overbudget.img" 16G
"$P" index "$out/overbudget.img" $((4 << 30)) >&2

newvol "$out/overindex.img" 64M
"$H" mkdir "$out/overindex.img" Windows
"$P" index "$out/overindex.img" $((1 << 30)) >&2

newvol "$out/fixup.img" 64M
"$H" mkdir "$out/fixup.img" Windows
ntfscp -q "$out/fixup.img" "$out/payload.bin" Windows/MEMORY.DMP
"$P" fixup "$out/fixup.img" Windows >&2

newvol "$out/runpast.img" 64M
"$H" mkdir "$out/runpast.img" Windows
ntfscp -q "$out/runpast.img" "$out/payload.bin" Windows/MEMORY.DMP
"$P" runpast "$out/runpast.img" MEMORY.DMP >&2

newvol "$work/t.img" 64M
"$H" mkdir "$work/t.img" Windows
ntfscp -q "$work/t.img" "$out/payload.bin" Windows/MEMORY.DMP
qemu-img convert -q -f raw -O qcow2 "$work/t.img" "$work/t.qcow2"
size=$(stat -c %s "$work/t.qcow2")
head -c $((size / 2)) "$work/t.qcow2" >"$out/truncated.qcow2"

mkdir -p "$out/images" "$out/host"
rm -f "$out/host/secret" "$out/images/"*
for _ in $(seq 1 32768); do printf 'HOST-SECRET-MARKER-0123456789ab\n'; done >"$out/host/secret"
qemu-img create -q -f qcow2 -u -b ../host/secret -F raw "$out/images/evil.qcow2" 1M
ln -s ../host/secret "$out/images/link.raw"
qemu-img create -q -f qcow2 -u -b link.raw -F raw "$out/images/link.qcow2" 1M
