#!/usr/bin/env bash
# Benchmark of `crashkey dump` (not part of CI). Boots the stand-in Windows guest with
# MEM_MIB (default 512; TCG, so keep it small: the whole script then takes under a minute) MiB
# of RAM, QEMU's vmcoreinfo device and the Windows dump header published (e2e/cmd/demo
# -hostdump), and compares, RUNS (default 5) times each, alternating, into the same directory:
#   qmp by hand    dump-guest-memory win-dmp over a second QMP monitor (bash /dev/tcp), the
#                  call QEMU answers when its writer is done: QEMU's own time
#   crashkey dump  the same through crashkey: device and space checks, detach + query-dump,
#                  sha256 of the file while QEMU writes it, the header check, atomic rename
#   sha256 alone   Go's crypto/sha256 of the same file, warm (internal/tools/gosha256): the
#                  floor of any command that reports the dump's sha256
# and prints the medians and the ratios. Goal: ≤ 1.05× QEMU (crashkey adds only its checks);
# where QEMU writes faster than one core hashes, the floor is max(QEMU, sha256 alone).
# Needs about 3 × MEM_MIB of free space in BENCH_DIR (default: a new directory in /tmp).
#
#   scripts/bench/hostdump.sh [MEM_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
mem_mib="${1:-512}"
runs="${RUNS:-5}"
port="${QMP_PORT:-47111}"
dir="$(mktemp -d "${BENCH_DIR:-/tmp}/crashkey-hostdump.XXXXXX")"
launcher=""
cleanup() {
  if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
    kill -TERM "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$dir/crashkey" ./cmd/crashkey
go build -o "$dir/launcher" ./e2e/cmd/demo
go build -o "$dir/benchrun" ./internal/tools/benchrun
go build -o "$dir/gosha256" ./internal/tools/gosha256
CRASHKEY="$dir/crashkey" bash scripts/guest/standin-disk.sh "$dir/win.qcow2" >/dev/null 2>&1
"$dir/launcher" -disk "$dir/win.qcow2" -memory "$mem_mib" -hostdump -qmp-tcp "$port" -ready "$dir/ready" \
  -dir "$dir/vm" -max-time 30m >/dev/null 2>"$dir/guest.log" &
launcher=$!
for _ in $(seq 1 600); do
  [ -s "$dir/ready" ] && break
  kill -0 "$launcher" 2>/dev/null || { cat "$dir/guest.log" >&2; echo "bench: the guest did not boot" >&2; exit 1; }
  sleep 0.5
done
qmp="$(cat "$dir/ready")"
grep -q 'vmcoreinfo published' "$dir/vm/data.log" || { cat "$dir/vm/data.log" >&2; echo "bench: the guest published no header" >&2; exit 1; }

# QEMU's own dump-guest-memory, by hand: greeting, qmp_capabilities, then the synchronous call.
qmp_by_hand() { # FILE
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  read -r line <&3
  printf '{"execute":"qmp_capabilities"}\n' >&3
  read -r line <&3
  printf '{"execute":"dump-guest-memory","arguments":{"paging":false,"protocol":"file:%s","format":"win-dmp"}}\n' "$1" >&3
  while read -r line <&3; do
    case "$line" in
      *'"return"'*) break ;;
      *'"error"'*) echo "bench: $line" >&2; exec 3>&-; return 1 ;;
    esac
  done
  exec 3>&-
}
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
: >"$dir/hand.times"; : >"$dir/ck.times"; : >"$dir/sha.times"
for i in $(seq 1 "$runs"); do
  rm -rf "$dir/out"; mkdir -p "$dir/out"
  t0=$(now); qmp_by_hand "$dir/out/hand.dmp"; t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}' >>"$dir/hand.times"
  hand_size=$(stat -c %s "$dir/out/hand.dmp"); rm -f "$dir/out/hand.dmp"
  line=$("$dir/benchrun" -o "$dir/out/report.json" "$dir/crashkey" dump --qmp "$qmp" --out "$dir/out" --name ck.dmp --json)
  echo "${line% *}" >>"$dir/ck.times"
  ck_size=$(stat -c %s "$dir/out/ck.dmp")
  [ "$hand_size" = "$ck_size" ] || { echo "bench: sizes differ: $hand_size vs $ck_size" >&2; exit 1; }
  # crashkey's sha256 (computed while QEMU wrote) is the file's.
  want=$(sha256sum "$dir/out/ck.dmp" | cut -d' ' -f1)
  grep -q "\"sha256\": *\"$want\"" "$dir/out/report.json" || { echo "bench: crashkey's sha256 is not the file's ($want)" >&2; exit 1; }
  line=$("$dir/benchrun" -o /dev/null "$dir/gosha256" "$dir/out/ck.dmp")
  echo "${line% *}" >>"$dir/sha.times"
done
med_hand=$(median <"$dir/hand.times") med_ck=$(median <"$dir/ck.times") med_sha=$(median <"$dir/sha.times")
awk -v mib="$((ck_size >> 20))" -v h="$med_hand" -v k="$med_ck" -v sh="$med_sha" -v runs="$runs" -v mem="$mem_mib" \
  -v hs="$(tr '\n' ' ' <"$dir/hand.times")" -v ks="$(tr '\n' ' ' <"$dir/ck.times")" 'BEGIN{
  printf "guest: %d MiB RAM (TCG), win-dmp dump %d MiB; median of %d runs; %s\n", mem, mib, runs, "'"$(nproc)"' CPUs"
  printf "%-34s %7.2f s %7.0f MiB/s   runs: %s\n", "QEMU dump-guest-memory by hand", h, mib/h, hs
  printf "%-34s %7.2f s %7.0f MiB/s   runs: %s  %.2fx\n", "crashkey dump (sha256, check)", k, mib/k, ks, k/h
  printf "%-34s %7.2f s %7.0f MiB/s   (Go crypto/sha256 of the file alone, one core)\n", "sha256 alone", sh, mib/sh
  floor = (h > sh ? h : sh)
  printf "crashkey / max(QEMU, sha256 alone) = %.2f / %.2f = %.2fx\n", k, floor, k/floor
  printf "goal: crashkey dump <= 1.05x QEMU by hand: %s\n", (k/h <= 1.05 ? "met" : "NOT met")
}'
