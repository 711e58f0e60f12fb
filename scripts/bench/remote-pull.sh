#!/usr/bin/env bash
# Benchmark of `crashkey pull --libvirt` through libvirt's storage API (not part of CI).
# Builds a MEMORY.DMP of SIZE_MIB (default 1100 MiB) in the NTFS volume of a 4 GiB disk,
# converts it to qcow2, defines a (stopped) domain on it in the private "remote" libvirt host of
# scripts/guest/remote.sh, with a storage pool on the image's directory, and for qemu+ssh and
# qemu+tcp compares, the medians of RUNS (default 5) runs of each, crashkey and virsh in turns:
#   crashkey pull --libvirt URI --domain bench   the dump, read through virStorageVolDownload ranges
#   virsh -c URI vol-download --length DUMP       the same number of bytes over the same URI
# It prints the bytes that crossed the connection (RPC framing included) divided by the dump's
# size (goal <= 1.10: only what is needed travels), the time ratio (goal <= 1.2x virsh) and
# crashkey's peak RSS over the runs (goal <= 96 MiB). Needs root, ~3 x SIZE_MIB of space in BENCH_DIR.
#
#   scripts/bench/remote-pull.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-1100}"
runs="${RUNS:-5}"
dir="$(mktemp -d "${BENCH_DIR:-/tmp}/crashkey-rbench.XXXXXX")"
remote="$dir/remote"
cleanup() {
  bash scripts/guest/remote.sh stop "$remote" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

go build -o "$dir/crashkey" ./cmd/crashkey
go build -o "$dir/mkfixture" ./internal/tools/mkfixture
go build -o "$dir/benchrun" ./internal/tools/benchrun

mkdir -p "$dir/pool"
pages=$(( (size_mib << 20) / 4096 ))
echo "bench: writing a $(( (pages * 4096 + 8192) >> 20 )) MiB MEMORY.DMP into a 4 GiB disk" >&2
"$dir/mkfixture" -o "$dir/MEMORY.DMP" -type full -pages "$pages" -seed 7
dump_bytes=$(stat -c %s "$dir/MEMORY.DMP")
truncate -s 4096M "$dir/volume.raw"
mkntfs -F -Q -q -c 4096 -L Bench "$dir/volume.raw" >/dev/null 2>&1
gcc -O2 -o "$dir/ntfshelper" disk/testdata/ntfshelper.c -lntfs-3g
"$dir/ntfshelper" mkdir "$dir/volume.raw" Windows
ntfscp "$dir/volume.raw" "$dir/MEMORY.DMP" Windows/MEMORY.DMP
qemu-img convert -f raw -O qcow2 "$dir/volume.raw" "$dir/pool/bench.qcow2"
rm -f "$dir/volume.raw"
image_bytes=$(stat -c %s "$dir/pool/bench.qcow2")

bash scripts/guest/remote.sh start "$remote" >/dev/null
# shellcheck disable=SC1091
. "$remote/env"
virsh -q -c "$UNIX_URI" pool-create-as bench dir --target "$dir/pool" >/dev/null
cat >"$dir/bench.xml" <<XML
<domain type='qemu'><name>bench</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$dir/pool/bench.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>
XML
virsh -q -c "$UNIX_URI" define "$dir/bench.xml" >/dev/null
# (virsh's own qemu+ssh runs the ssh binary, which takes known_hosts only from the user's home;
# its libssh transport takes known_hosts=, so virsh goes over SSH through libssh, with
# virt-ssh-helper on the host (proxy=native) as libvirt's own qemu+ssh uses.)
virsh_ssh="qemu+libssh://root@127.0.0.1:$SSH_PORT/system?keyfile=$SSH_KEY&known_hosts=$KNOWN_HOSTS&socket=$UNIX_SOCKET&proxy=native"
cat "$dir/pool/bench.qcow2" >/dev/null # warm the page cache

run1() { # one run of "$@": sets t (seconds) and m (peak RSS, KiB)
  rm -rf "$dir/out"; mkdir -p "$dir/out"
  "$dir/benchrun" "$@" >"$dir/line" 2>"$dir/stderr" || { cat "$dir/stderr" >&2; exit 1; }
  read -r t m <"$dir/line"
}
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf 'dump %d bytes (%d MiB) in a %d-byte qcow2 image of a 4 GiB disk; median of %d interleaved runs each; %s CPUs, load %s\n' \
  "$dump_bytes" $((dump_bytes >> 20)) "$image_bytes" "$runs" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for tr in ssh tcp; do
  if [ "$tr" = ssh ]; then uri=$SSH_URI; vuri=$virsh_ssh; else uri=$TCP_URI; vuri=$TCP_URI; fi
  : >"$dir/ck.times"; : >"$dir/v.times"; rss=0; recv=0
  for _ in $(seq 1 "$runs"); do # crashkey and virsh in turns, so that both see the same load
    run1 -o /dev/null "$dir/crashkey" pull --libvirt "$uri" --domain bench --out "$dir/out"
    cmp -s "$dir/MEMORY.DMP" "$dir/out/MEMORY.DMP" || { echo "bench: the pulled file differs" >&2; exit 1; }
    r=$(sed -n 's/.*bytes downloaded, \([0-9]*\) bytes received.*/\1/p' "$dir/stderr")
    echo "$t" >>"$dir/ck.times"; rss=$(( m > rss ? m : rss )); recv=$(( r > recv ? r : recv ))
    run1 virsh -q -c "$vuri" vol-download --pool bench bench.qcow2 "$dir/out/vol" --offset 0 --length "$dump_bytes"
    echo "$t" >>"$dir/v.times"
  done
  t_ck=$(median <"$dir/ck.times"); t_v=$(median <"$dir/v.times")
  awk -v tr="$tr" -v ck="$t_ck" -v v="$t_v" -v rss="$rss" -v recv="$recv" -v dump="$dump_bytes" \
    -v cks="$(tr '\n' ' ' <"$dir/ck.times")" -v vs="$(tr '\n' ' ' <"$dir/v.times")" 'BEGIN{
    printf "qemu+%s: crashkey pull %.2f s (%.0f MiB/s), virsh vol-download of as many bytes %.2f s: %.2fx (runs: crashkey %s; virsh %s); crossed %d bytes = %.3f x the dump; peak RSS %.1f MiB\n",
      tr, ck, dump/1048576/ck, v, ck/v, cks, vs, recv, recv/dump, rss/1024
    printf "qemu+%s goals: bytes <= 1.10x dump: %s; time <= 1.2x virsh: %s; RSS <= 96 MiB: %s\n", tr,
      (recv/dump <= 1.10 ? "met" : "NOT met"), (ck/v <= 1.2 ? "met" : "NOT met"), (rss <= 98304 ? "met" : "NOT met")
  }'
done
