#!/usr/bin/env bash
# The main job on a stand-in Windows guest, with nothing to set up: crashkey run against a small
# Linux guest that behaves like Windows at every point crashkey depends on (e2e/guest, mode
# "windows"). It
#   1. installs the Debian packages it needs (scripts/deps.sh) and fetches the guest kernel
#      (scripts/guest/kernel.sh, cached in ${CRASHKEY_CACHE:-$HOME/.cache/crashkey});
#   2. builds crashkey and the guest launcher (e2e/cmd/demo);
#   3. builds the guest's disk (scripts/guest/standin-disk.sh: qcow2, GPT, NTFS, the SYSTEM hive
#      armed for Right Ctrl + Scroll Lock, pagefile.sys) and shows `crashkey preflight` of it;
#   4. boots the guest under QEMU (TCG, a PS/2 keyboard, pvpanic);
#   5. runs `crashkey run --qmp … --disk … --out …`: the default hotkey is sent, the guest
#      bug-checks (0xE2), writes its dump into pagefile.sys, reboots and moves it to
#      Windows\MEMORY.DMP; crashkey sees the crash, pulls the dump from the image and checks it;
#   6. prints `crashkey check` of the dump and what the guest says it did;
# then stops QEMU and removes its files, also on Ctrl-C or an error.
#
#   scripts/demo.sh [--usb] [--nmi] [--keep DIR]
#
#   --usb       a USB keyboard (Windows driver kbdhid) instead of PS/2 (i8042prt)
#   --nmi       trigger with an NMI (bug check 0x80) instead of the hotkey
#   --keep DIR  keep the pulled dump in DIR (default: removed with everything else)
#
# Exit status: crashkey run's (0: the guest crashed and its dump is valid); 1 when something
# the demo needs is missing or fails. About 20 s once the kernel is cached (TCG, 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

keyboard=ps2; trigger=keys; keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --usb) keyboard=usb ;;
    --nmi) trigger=nmi ;;
    --keep) [ $# -ge 2 ] || { echo "demo: --keep needs a directory" >&2; exit 2; }; keep="$2"; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
command -v go >/dev/null || die "Go is not installed: install Go 1.26 or newer (https://go.dev/dl/) and rerun"

work="$(mktemp -d "${TMPDIR:-/tmp}/crashkey-demo.XXXXXX")"
launcher=""
cleanup() {
  if [ -n "$launcher" ] && kill -0 "$launcher" 2>/dev/null; then
    kill -TERM "$launcher" 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM

step "1/6 Debian packages (scripts/deps.sh) and the guest kernel (scripts/guest/kernel.sh)"
CRASHKEY_WITH_LIBVIRT=0 bash scripts/deps.sh || die "installing the Debian packages failed (scripts/deps.sh needs root or sudo and Debian's apt)"
export PATH="$PATH:/usr/sbin:/sbin"
for t in qemu-system-x86_64 qemu-img mkntfs ntfscp hivexregedit sfdisk gcc; do
  command -v "$t" >/dev/null || die "$t is missing after scripts/deps.sh: install it (Debian) and rerun"
done
kdir="$(bash scripts/guest/kernel.sh)" || die "fetching the guest kernel failed (scripts/guest/kernel.sh downloads linux-image-*-amd64 with apt-get download)"
echo "kernel: $kdir" >&2

step "2/6 build crashkey and the guest launcher"
go build -o "$work/crashkey" ./cmd/crashkey
go build -o "$work/launcher" ./e2e/cmd/demo
ck="$work/crashkey"

step "3/6 the stand-in Windows disk (scripts/guest/standin-disk.sh)"
CRASHKEY="$ck" bash scripts/guest/standin-disk.sh "$work/win.qcow2" >&2
echo "\$ crashkey preflight win.qcow2" >&2
"$ck" preflight "$work/win.qcow2" || die "the stand-in disk is not armed (see above)"

step "4/6 boot the stand-in guest (QEMU, TCG, $keyboard keyboard, pvpanic)"
"$work/launcher" -disk "$work/win.qcow2" -keyboard "$keyboard" -ready "$work/ready" -dir "$work/vm" \
  -max-time 20m >"$work/launcher.out" 2>"$work/guest.log" &
launcher=$!
for _ in $(seq 1 600); do
  [ -s "$work/ready" ] && break
  kill -0 "$launcher" 2>/dev/null || { cat "$work/guest.log" >&2; die "the guest did not boot (see above)"; }
  sleep 0.5
done
[ -s "$work/ready" ] || { cat "$work/guest.log" >&2; die "the guest was not ready within 5 minutes"; }
qmp="$(cat "$work/ready")"
grep -E '^guest: (windows (driver=i8042prt|driver=kbdhid|crash |pagefile=)|ready)' "$work/guest.log" >&2 || true

step "5/6 crashkey run: trigger the crash, watch it, pull and check the dump"
out="${keep:-$work/out}"
mkdir -p "$out"
args=(run --qmp "$qmp" --disk "$work/win.qcow2" --out "$out" --overwrite --poll 1s --timeout 5m)
[ "$trigger" = keys ] || args+=(--trigger "$trigger")
echo "\$ crashkey ${args[*]}" >&2
set +e
"$ck" "${args[@]}"
code=$?
set -e
[ "$code" != 130 ] || { echo "demo: interrupted" >&2; exit 130; }

step "6/6 the dump, and what the guest did"
dumpfile="$(ls "$out"/*.DMP "$out"/*.dmp 2>/dev/null | head -n1 || true)"
if [ -n "$dumpfile" ]; then
  echo "\$ crashkey check $(basename "$dumpfile")" >&2
  "$ck" check "$dumpfile" || true
else
  echo "no dump was pulled" >&2
fi
echo "the stand-in guest's own log:" >&2
grep -E '^guest: (boot|windows (fired|nmi|bugcheck|panic|dump|nodump|reboot|halt|move))|^guest: error' "$work/guest.log" >&2 || true
[ -z "$keep" ] || echo "dump kept in $keep" >&2
if [ "$code" = 0 ]; then
  echo "demo: crashkey run succeeded: the guest crashed with the expected bug check and its dump is valid" >&2
else
  echo "demo: crashkey run exited $code (see its report above)" >&2
fi
exit "$code"
