#!/usr/bin/env bash
# Disk-image reader checks with the real tools (about 10 s):
#  1. rebuild the disk fixtures from scratch with disk/testdata/mkfixtures.sh (mkntfs, ntfscp,
#     sfdisk, qemu-img -c, zlib and zstd, a backing chain);
#  2. pull every recorded file out of the fresh images with `crashkey pull --path` and check it is
#     byte-identical to what ntfscat read from the raw volumes; pull the default dump (MEMORY.DMP,
#     or the dump cut from PAGEFILE.SYS) too;
#  3. check that the images were not modified;
#  4. hold an image open in a real (paused) qemu-system-x86_64 and check that pull refuses it,
#     and reads it with --force-share;
#  5. build the large-cluster and 4Kn images (disk/testdata/mkgeometry.sh) and pull every
#     recorded file with the binary, byte-identical to ntfscat.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
qpid=""
cleanup() {
  if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bash disk/testdata/mkfixtures.sh "$work/fx" >/dev/null
go build -o "$work/crashkey" ./cmd/crashkey
ck="$work/crashkey"
(cd "$work/fx" && sha256sum gpt.qcow2 mbr.qcow2 base.qcow2 overlay.qcow2 >"$work/images.sha256")

n=0
while IFS=$'\t' read -r image part path size sum; do
  out="$work/out/$n"; mkdir -p "$out"
  case "$path" in
    *'#dump') "$ck" pull "$work/fx/$image" --partition "$part" --dedicated-dump-file "${path%#dump}" --out "$out" --json >"$out/result.json" ;;
    *)        "$ck" pull "$work/fx/$image" --partition "$part" --path "$path" --out "$out" --json >"$out/result.json" ;;
  esac
  got=$(sha256sum "$out"/* | grep -v result.json | cut -d' ' -f1)
  if [ "$got" != "$sum" ]; then
    echo "20-disk: $image partition $part $path: crashkey pulled sha256 $got, ntfscat read $sum" >&2
    exit 1
  fi
  grep -q "\"sha256\": \"$sum\"" "$out/result.json" || { echo "20-disk: $image $path: --json sha256 differs" >&2; exit 1; }
  n=$((n + 1))
done <"$work/fx/manifest.tsv"
[ "$n" -ge 10 ] || { echo "20-disk: only $n manifest entries" >&2; exit 1; }

# The default pull of each image picks the newest valid dump.
for image in gpt.qcow2 mbr.qcow2 overlay.qcow2 base.qcow2; do
  out="$work/default/$image"; mkdir -p "$out"
  "$ck" pull "$work/fx/$image" --out "$out" >/dev/null
  [ -s "$out/MEMORY.DMP" ] || { echo "20-disk: $image: no MEMORY.DMP pulled" >&2; exit 1; }
done
want=$(awk -F'\t' '$1=="mbr.qcow2" && $3=="PAGEFILE.SYS#dump" {print $5}' "$work/fx/manifest.tsv")
got=$(sha256sum "$work/default/mbr.qcow2/MEMORY.DMP" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "20-disk: dump cut from PAGEFILE.SYS differs" >&2; exit 1; }

(cd "$work/fx" && sha256sum -c --quiet "$work/images.sha256") || { echo "20-disk: an image was modified" >&2; exit 1; }
echo "20-disk: $n files and 4 default dumps pulled byte-identical to ntfscat; images unchanged"

# A running QEMU holds the image: pull must refuse it, and read it with --force-share.
qemu-system-x86_64 -S -machine q35,accel=tcg -m 64 -nodefaults -display none -monitor none -serial none \
  -drive file="$work/fx/gpt.qcow2",format=qcow2,if=virtio >"$work/qemu.log" 2>&1 &
qpid=$!
ino=$(stat -c %i "$work/fx/gpt.qcow2")
for _ in $(seq 1 300); do
  grep -q ":$ino " /proc/locks && break
  kill -0 "$qpid" 2>/dev/null || { cat "$work/qemu.log" >&2; echo "20-disk: qemu exited" >&2; exit 1; }
  sleep 0.1
done
set +e
"$ck" pull "$work/fx/gpt.qcow2" --out "$work" >"$work/locked.out" 2>"$work/locked.err"
code=$?
set -e
if [ "$code" != 3 ] || ! grep -q 'locked by a running QEMU' "$work/locked.err"; then
  echo "20-disk: pull of a QEMU-held image: exit $code, stderr: $(cat "$work/locked.err")" >&2
  exit 1
fi
mkdir -p "$work/shared"
"$ck" pull "$work/fx/gpt.qcow2" --force-share --out "$work/shared" >/dev/null 2>"$work/shared.err"
grep -q 'inconsistent' "$work/shared.err" || { echo "20-disk: --force-share did not warn" >&2; exit 1; }
[ -s "$work/shared/MEMORY.DMP" ] || { echo "20-disk: --force-share pulled nothing" >&2; exit 1; }
kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
echo "20-disk: a QEMU-held image is refused (exit 3) and read with --force-share"

# Large clusters (128 KiB, 2 MiB) and 4Kn disks, through the whole stack.
bash disk/testdata/mkgeometry.sh "$work/gx" >/dev/null
g=0
while IFS=$'\t' read -r image part path size sum cs ss; do
  out="$work/gout/$g"; mkdir -p "$out"
  "$ck" pull "$work/gx/$image" --partition "$part" --path "$path" --out "$out" >/dev/null
  got=$(sha256sum "$out/$path" | cut -d' ' -f1)
  [ "$got" = "$sum" ] || { echo "20-disk: $image ($cs-byte clusters, $ss-byte sectors) $path: sha256 $got, ntfscat $sum" >&2; exit 1; }
  g=$((g + 1))
done <"$work/gx/manifest.tsv"
echo "20-disk: $g files from 2 MiB, 128 KiB-cluster and 4Kn images pulled byte-identical to ntfscat"
