#!/usr/bin/env bash
# Benchmark of `crashkey pull` (not part of CI). Builds a MEMORY.DMP of SIZE_MIB (default
# 2100 MiB) inside a bare NTFS volume, converts the volume to qcow2, and compares, with the
# page cache warm, each best of RUNS (default 3):
#   cat      MEMORY.DMP > out            the physical limit of a copy
#   crashkey pull image.qcow2 --out dir  qcow2 → NTFS → file, with sha256 and a temp file + rename
#   ntfscat  volume.raw MEMORY.DMP > out ntfs-3g reading the raw volume
#   dd bs=4M                             a copy through user space, for reference
#   gosha256 MEMORY.DMP                  the hash alone (Go's crypto/sha256, one core)
# (GNU cat 9 copies with copy_file_range, inside the kernel; crashkey reads every byte through
# user space to hash it, SHA-256 on one core while other goroutines read and write.)
# and prints the time ratios and crashkey's peak RSS. The floor of a verified copy is
# max(cat, hash alone); goals: crashkey ≤ 1.10× that floor, ≤ 64 MiB RSS.
# Needs about 4 × SIZE_MIB of free disk space in BENCH_DIR (default: a new directory in /tmp).
#
#   scripts/bench/pull.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-2100}"
runs="${RUNS:-3}"
dir="$(mktemp -d "${BENCH_DIR:-/tmp}/crashkey-bench.XXXXXX")"
trap 'rm -rf "$dir"' EXIT

go build -o "$dir/crashkey" ./cmd/crashkey
go build -o "$dir/mkfixture" ./internal/tools/mkfixture
go build -o "$dir/benchrun" ./internal/tools/benchrun
go build -o "$dir/gosha256" ./internal/tools/gosha256

pages=$(( (size_mib << 20) / 4096 ))
echo "bench: writing a $(( (pages * 4096 + 8192) >> 20 )) MiB MEMORY.DMP" >&2
"$dir/mkfixture" -o "$dir/MEMORY.DMP" -type full -pages "$pages" -seed 7
dump_bytes=$(stat -c %s "$dir/MEMORY.DMP")
vol_mib=$(( (dump_bytes >> 20) + 128 ))
truncate -s "${vol_mib}M" "$dir/volume.raw"
mkntfs -F -Q -q -c 4096 -L Bench "$dir/volume.raw" >/dev/null 2>&1
# \Windows is needed for pull to find the volume; ntfscp cannot make directories, so the
# fixture helper does it (it needs ntfs-3g-dev and gcc, as disk/testdata/mkfixtures.sh does).
gcc -O2 -o "$dir/ntfshelper" disk/testdata/ntfshelper.c -lntfs-3g
"$dir/ntfshelper" mkdir "$dir/volume.raw" Windows
echo "bench: copying it into an NTFS volume and converting that to qcow2" >&2
ntfscp "$dir/volume.raw" "$dir/MEMORY.DMP" Windows/MEMORY.DMP
qemu-img convert -f raw -O qcow2 "$dir/volume.raw" "$dir/image.qcow2"

# Warm the page cache for every input.
cat "$dir/MEMORY.DMP" "$dir/volume.raw" "$dir/image.qcow2" >/dev/null

best() { # best wall time and its RSS over $runs runs of "$@" (benchrun output lines)
  local b="" r="" line t m
  for _ in $(seq 1 "$runs"); do
    rm -rf "$dir/out"; mkdir -p "$dir/out"
    line=$("$@")
    t=${line% *}; m=${line#* }
    if [ -z "$b" ] || awk -v a="$t" -v b="$b" 'BEGIN{exit !(a<b)}'; then b=$t; r=$m; fi
  done
  echo "$b $r"
}
read -r t_cat rss_cat < <(best "$dir/benchrun" -o "$dir/out/MEMORY.DMP" cat "$dir/MEMORY.DMP")
read -r t_ck rss_ck < <(best "$dir/benchrun" -o /dev/null "$dir/crashkey" pull "$dir/image.qcow2" --out "$dir/out")
cmp -s "$dir/MEMORY.DMP" "$dir/out/MEMORY.DMP" || { echo "bench: the pulled file differs" >&2; exit 1; }
read -r t_nc rss_nc < <(best "$dir/benchrun" -o "$dir/out/MEMORY.DMP" ntfscat "$dir/volume.raw" Windows/MEMORY.DMP)
read -r t_dd _ < <(best "$dir/benchrun" dd if="$dir/MEMORY.DMP" of="$dir/out/MEMORY.DMP" bs=4M status=none)
read -r t_sha _ < <(best "$dir/benchrun" -o /dev/null "$dir/gosha256" "$dir/MEMORY.DMP")

mib=$(( dump_bytes >> 20 ))
awk -v mib="$mib" -v c="$t_cat" -v k="$t_ck" -v n="$t_nc" -v rk="$rss_ck" -v rc="$rss_cat" -v rn="$rss_nc" -v runs="$runs" \
    -v d="$t_dd" -v sh="$t_sha" 'BEGIN{
  floor = (c > sh ? c : sh)
  printf "dump: %d MiB in qcow2; best of %d runs, page cache warm; %s\n", mib, runs, "'"$(nproc)"' CPUs"
  printf "%-28s %8.2f s %8.0f MiB/s   peak RSS %6.1f MiB\n", "cat (physical limit)", c, mib/c, rc/1024
  printf "%-28s %8.2f s %8.0f MiB/s   peak RSS %6.1f MiB   %.2fx cat\n", "crashkey pull (qcow2)", k, mib/k, rk/1024, k/c
  printf "%-28s %8.2f s %8.0f MiB/s   peak RSS %6.1f MiB   %.2fx cat\n", "ntfscat (raw volume)", n, mib/n, rn/1024, n/c
  printf "%-28s %8.2f s %8.0f MiB/s   (read+write through user space)   %.2fx cat\n", "dd bs=4M", d, mib/d, d/c
  printf "%-28s %8.2f s %8.0f MiB/s   (Go crypto/sha256 alone, one core)\n", "sha256 alone", sh, mib/sh
  printf "crashkey / max(cat, sha256 alone) = %.2f / %.2f = %.2fx\n", k, floor, k/floor
  printf "goals: crashkey <= 1.10x max(cat, sha256 alone): %s; peak RSS <= 64 MiB: %s\n", (k/floor <= 1.10 ? "met" : "NOT met"), (rk <= 65536 ? "met" : "NOT met")
}'
