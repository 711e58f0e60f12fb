#!/usr/bin/env bash
# Benchmark: the two figures of issue #14. (1) `crashkey check --deep` on a >= 2 GiB bitmap
# kernel dump against a plain sequential read of the same file (the faster of cat and dd
# bs=1M): both times, their ratio and check's peak RSS. (2) What the module walk adds to
# `check`: `go test ./dump/analyze -bench` on a 2 GiB sparse bitmap dump that holds page
# tables and a module list (the analysis, open included, against the plain header check),
# with the bytes it reads. Goals (issue #14): (1) ratio <= 1.10 and peak RSS <= 64 MiB: check
# reads and verifies on every core (one worker per CPU, each reading 256 KiB chunks and
# checking them while they are in its cache). All runs read a warm page cache: the file is
# read once before timing, then each command runs RUNS times and the best time counts. The
# machine should be otherwise idle; the script prints the load average it ran under.
#   usage: scripts/bench/check-deep.sh [SIZE]   (default 2GiB; e.g. 4GiB; SIZE applies to (1) only)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE=${1:-2GiB}
RUNS=${RUNS:-5}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "check-deep: GNU time (/usr/bin/time, Debian package 'time') is required" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/crashkey" ./cmd/crashkey
echo "building a $SIZE bitmap kernel dump ..." >&2
go run ./dump/internal/mkdump -type bitmap-kernel -size "$SIZE" -o "$tmp/big.dmp"
bytes=$(stat -c %s "$tmp/big.dmp")
cat "$tmp/big.dmp" >/dev/null # warm the page cache
load0=$(cut -d' ' -f1-3 /proc/loadavg)

best() { # best wall time (s, to the ms: GNU time's %e has only 10 ms) and its peak RSS (KiB) of RUNS runs of "$@"
  local b="" rss="" t0 t1 e m
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    "$TIME" -f '%M' -o "$tmp/t" "$@" >/dev/null
    t1=$(date +%s%N)
    e=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    read -r m <"$tmp/t"
    if [ -z "$b" ] || awk -v a="$e" -v b="$b" 'BEGIN{exit !(a<b)}'; then b=$e; rss=$m; fi
  done
  echo "$b $rss"
}

read -r t_cat rss_cat < <(best cat "$tmp/big.dmp")
read -r t_dd rss_dd < <(best dd if="$tmp/big.dmp" of=/dev/null bs=1M status=none)
set +e
read -r t_chk rss_chk < <(best "$tmp/crashkey" check --deep "$tmp/big.dmp")
read -r t_hdr rss_hdr < <(best "$tmp/crashkey" check "$tmp/big.dmp") # the baseline of issue #14's module-walk figure
set -e
"$tmp/crashkey" check --deep "$tmp/big.dmp" | grep -E '^(Deep check|Verdict)'
plain=$(awk -v a="$t_cat" -v b="$t_dd" 'BEGIN{print (a<b)?a:b}')
awk -v bytes="$bytes" -v cat="$t_cat" -v dd="$t_dd" -v chk="$t_chk" -v hdr="$t_hdr" -v rsshdr="$rss_hdr" -v plain="$plain" -v rss="$rss_chk" -v rsscat="$rss_cat" 'BEGIN{
  mib = bytes/1048576
  printf "file:            %.0f bytes (%.0f MiB), best of '"$RUNS"' warm runs\n", bytes, mib
  printf "cat > /dev/null: %6.3f s (%5.0f MiB/s), peak RSS %d KiB\n", cat, mib/(cat>0?cat:0.001), rsscat
  printf "dd bs=1M:        %6.3f s (%5.0f MiB/s)\n", dd, mib/(dd>0?dd:0.001)
  printf "check --deep:    %6.3f s (%5.0f MiB/s), peak RSS %d KiB\n", chk, mib/(chk>0?chk:0.001), rss
  printf "check (no --deep): %6.3f s, peak RSS %d KiB\n", hdr, rsshdr
  ratio = (plain>0) ? chk/plain : 0
  printf "ratio check/plain read: %.2f (goal <= 1.10) %s\n", ratio, (ratio<=1.10)?"OK":"SLOWER THAN GOAL"
  printf "peak RSS of check: %.1f MiB (goal <= 64 MiB) %s\n", rss/1024, (rss<=65536)?"OK":"OVER GOAL"
}'
# (2) The module walk. The dump of (1) has no page tables, so its walk costs nothing; the
# analysis benchmark builds its own 2 GiB sparse bitmap dump with a four-module list.
go test ./dump/analyze -run '^$' -bench '^Benchmark(AnalyzeSparseBitmap|OpenCheck)$' -benchtime "${BENCHTIME:-50x}" >"$tmp/bench" ||
  { cat "$tmp/bench" >&2; exit 1; }
awk '
  $1 ~ /^BenchmarkAnalyzeSparseBitmap/ { for (i = 3; i < NF; i++) { if ($(i+1) == "ns/op") an = $i; if ($(i+1) == "bytes-read/op") rd = $i; if ($(i+1) == "B/op") al = $i } }
  $1 ~ /^BenchmarkOpenCheck/ { for (i = 3; i < NF; i++) if ($(i+1) == "ns/op") oc = $i }
  END {
    if (an == "" || oc == "") { print "module walk: benchmark output not understood" > "/dev/stderr"; exit 1 }
    printf "module walk (2 GiB sparse bitmap dump, 4 modules): analysis %.2f ms (open included), plain check %.2f ms\n", an/1e6, oc/1e6
    printf "module walk adds at most %.2f ms to check (goal <= 50 ms) %s; reads %.0f KiB of the 2 GiB, allocates %.0f KiB\n", an/1e6, (an/1e6 <= 50) ? "OK" : "OVER GOAL", rd/1024, al/1024
  }' "$tmp/bench"
echo "cores: $(nproc), load average before/after: $load0 / $(cut -d' ' -f1-3 /proc/loadavg)"
