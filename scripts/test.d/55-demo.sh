#!/usr/bin/env bash
# The README's first command, scripts/demo.sh, end to end on the stand-in Windows guest (about
# 20 s per run once the kernel is cached): the default hotkey on PS/2 must give exit 0 and a
# valid MEMORY.DMP with bug check 0xE2, and the demo must leave no QEMU and no files behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
keep="$(mktemp -d)"
trap 'rm -rf "$keep"' EXIT
count() { find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'crashkey-demo.*' | wc -l; }
before="$(count)"
bash scripts/demo.sh --keep "$keep" >"$keep/demo.log" 2>&1 || { cat "$keep/demo.log" >&2; echo "55-demo: scripts/demo.sh failed" >&2; exit 1; }
[ -s "$keep/MEMORY.DMP" ] || { cat "$keep/demo.log" >&2; echo "55-demo: no MEMORY.DMP kept" >&2; exit 1; }
go run ./cmd/crashkey check --expect-bugcheck 0xE2 "$keep/MEMORY.DMP" >/dev/null ||
  { echo "55-demo: the demo's dump does not check as a valid 0xE2 dump" >&2; exit 1; }
grep -q 'guest: windows move .*moved=true' "$keep/demo.log" || { cat "$keep/demo.log" >&2; echo "55-demo: the guest did not move its dump" >&2; exit 1; }
after="$(count)"
[ "$after" = "$before" ] || { echo "55-demo: the demo left its work directory behind" >&2; exit 1; }
if pgrep -f 'crashkey-demo\.' >/dev/null; then
  echo "55-demo: a process of the demo is still running" >&2; exit 1
fi
echo "55-demo: scripts/demo.sh crashed the stand-in guest and pulled a valid dump; nothing left behind"
