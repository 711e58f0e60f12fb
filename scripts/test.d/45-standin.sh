#!/usr/bin/env bash
# The stand-in Windows guest's disk (scripts/guest/standin-disk.sh), a few seconds:
#  1. the qcow2 it builds is a sound image (qemu-img check) that crashkey preflight reads as an
#     armed Windows guest, for the default (Right Ctrl + Scroll Lock) and a custom hotkey;
#  2. its contents are deterministic: two builds give byte-identical volumes' files (the hive,
#     the paging file) as ntfs-3g's ntfscat reads them;
#  3. bad arguments are refused with exit status 2 and nothing is written.
# The crash cycle itself (dump into pagefile.sys, move to MEMORY.DMP) runs in
# `go test ./e2e/standin`.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "${CRASHKEY:-}" ]; then
  go build -o "$work/crashkey" ./cmd/crashkey
  export CRASHKEY="$work/crashkey"
fi
gcc -O2 -o "$work/ntfshelper" disk/testdata/ntfshelper.c -lntfs-3g
export NTFSHELPER="$work/ntfshelper"
sd=scripts/guest/standin-disk.sh

bash "$sd" "$work/win.qcow2" 2>/dev/null
qemu-img check -q "$work/win.qcow2"
"$CRASHKEY" preflight "$work/win.qcow2" --hotkey ctrl-scroll --memory 64 >"$work/pre.txt" ||
  { cat "$work/pre.txt" >&2; echo "45-standin: preflight of the default stand-in disk failed" >&2; exit 1; }
grep -q 'verdict: ready' "$work/pre.txt" || { cat "$work/pre.txt" >&2; exit 1; }

bash "$sd" "$work/custom.qcow2" --hotkey lshift+rshift+d --driver all --dump-type complete --client --no-autoreboot 2>/dev/null
"$CRASHKEY" preflight "$work/custom.qcow2" --hotkey lshift+rshift+d --json >"$work/custom.json" ||
  { cat "$work/custom.json" >&2; echo "45-standin: preflight of the custom stand-in disk failed" >&2; exit 1; }
for want in '"productType": "WinNT"' '"type": "complete"' '"autoReboot": false' '"registry": "0x11/0x21"'; do
  grep -q "$want" "$work/custom.json" || { echo "45-standin: preflight --json lacks $want" >&2; exit 1; }
done

for n in 1 2; do bash "$sd" "$work/v$n.ntfs" --pagefile-mib 4 --client 2>/dev/null; done
for f in Windows/System32/config/SYSTEM pagefile.sys; do
  cmp -s <(ntfscat "$work/v1.ntfs" "$f") <(ntfscat "$work/v2.ntfs" "$f") ||
    { echo "45-standin: $f differs between two builds with the same options" >&2; exit 1; }
done

for bad in "--dump-type nonsense" "--pagefile-mib 0" "--hotkey no+such+key" "--frobnicate"; do
  set +e
  # shellcheck disable=SC2086
  bash "$sd" "$work/bad.qcow2" $bad >/dev/null 2>"$work/bad.err"
  code=$?
  set -e
  if [ "$code" != 2 ] || [ -e "$work/bad.qcow2" ]; then
    echo "45-standin: standin-disk.sh $bad: exit $code (want 2), output left: $([ -e "$work/bad.qcow2" ] && echo yes || echo no)" >&2
    cat "$work/bad.err" >&2
    exit 1
  fi
done
echo "45-standin: stand-in disks are sound, armed as asked, deterministic; bad options refused"
