#!/usr/bin/env bash
# pull on hostile images rebuilt from scratch with pull/testdata/mkhostile.sh (about 10 s):
# the sparse 4 TiB MEMORY.DMP yields its 72 KiB dump, the 2 TiB file is refused with exit 2
# and nothing written, every odd-named minidump and the minidump in pagefile.sys are pulled
# byte-identical to what was put in, under safe names inside --out.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash pull/testdata/mkhostile.sh "$work/fx" 2>/dev/null
go build -o "$work/crashkey" ./cmd/crashkey
ck="$work/crashkey"
want() { # want HEXNAME: "size sha256" of that path in hostile.tsv
  awk -F'\t' -v n="$1" '$1 == n {print $2, $3}' "$work/fx/hostile.tsv"
}
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

"$ck" pull "$work/fx/hostile.qcow2" --out "$work/full" >/dev/null
read -r size sum < <(want "$(hex 'Windows\MEMORY.DMP')")
got="$(stat -c %s "$work/full/MEMORY.DMP") $(sha256sum <"$work/full/MEMORY.DMP" | cut -d' ' -f1)"
[ "$got" = "$size $sum" ] || { echo "25-pull-hostile: MEMORY.DMP: got $got, want $size $sum" >&2; exit 1; }

code=0
"$ck" pull "$work/fx/hostile.qcow2" --path 'Windows\Temp\huge.bin' --out "$work/huge" 2>/dev/null || code=$?
[ "$code" = 2 ] && [ -z "$(ls -A "$work/huge" 2>/dev/null)" ] || { echo "25-pull-hostile: huge.bin: exit $code or files written" >&2; exit 1; }

"$ck" pull "$work/fx/hostile.qcow2" --minidumps --json --out "$work/mini" >"$work/mini.json"
n=$(grep -c '"sha256"' "$work/mini.json" || true)
# 10 minidumps + the one in pagefile.sys; each "sha256" appears once per result
[ "$n" = 11 ] || { echo "25-pull-hostile: $n minidumps pulled, want 11" >&2; exit 1; }
[ "$(find "$work/mini" -mindepth 1 | wc -l)" = 11 ] || { echo "25-pull-hostile: --out does not hold 11 files" >&2; exit 1; }
while IFS=$'\t' read -r name size sum; do
  case "$name" in 57696e646f77735c4d696e6964756d705c*) ;; *) continue ;; esac # Windows\Minidump\
  grep -q "\"sha256\": \"$sum\"" "$work/mini.json" || { echo "25-pull-hostile: minidump $name not pulled intact" >&2; exit 1; }
done <"$work/fx/hostile.tsv"
read -r size sum < <(want "$(hex 'pagefile.sys#minidump')")
[ "$(sha256sum <"$work/mini/pagefile-minidump.dmp" | cut -d' ' -f1)" = "$sum" ] || { echo "25-pull-hostile: pagefile-minidump.dmp differs" >&2; exit 1; }
echo "25-pull-hostile: ok"
