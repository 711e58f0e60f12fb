#!/usr/bin/env bash
# dump / crashkey check: the built binary on real files written by the dump writer, cut
# with coreutils' truncate as an interrupted copy would leave them. A few seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/crashkey" ./cmd/crashkey
go build -o "$tmp/mkdump" ./dump/internal/mkdump

expect() { # expect CODE command...
  local want=$1; shift
  set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?; set -e
  if [ "$got" != "$want" ]; then
    echo "30-dump: '$*' exited $got, want $want" >&2; cat "$tmp/out" "$tmp/err" >&2; exit 1
  fi
}

for t in full bitmap-kernel bitmap-full summary triage header; do
  "$tmp/mkdump" -type "$t" -size 16MiB -o "$tmp/$t.dmp"
  expect 0 "$tmp/crashkey" check --deep --expect-bugcheck MANUALLY_INITIATED_CRASH "$tmp/$t.dmp"
  grep -q '^Verdict: VALID$' "$tmp/out" || { echo "30-dump: $t: not VALID" >&2; cat "$tmp/out" >&2; exit 1; }
  "$tmp/mkdump" -32 -type "$t" -size 4MiB -bugcheck NMI_HARDWARE_FAILURE -o "$tmp/$t-32.dmp"
  expect 1 "$tmp/crashkey" check --expect-bugcheck 0xE2 "$tmp/$t-32.dmp"
  grep -q 'expected 0x000000E2' "$tmp/err"
done

# An interrupted copy: cut the bitmap dump 1 MiB into its pages.
cp "$tmp/bitmap-kernel.dmp" "$tmp/cut.dmp"
truncate -s 1M "$tmp/cut.dmp"
expect 1 "$tmp/crashkey" check --json "$tmp/cut.dmp"
grep -q '"code": "truncated"' "$tmp/out"
# pagefile.sys: a dump followed by unrelated data is valid, with a warning.
{ cat "$tmp/full.dmp"; head -c 1048576 /dev/zero; } >"$tmp/pagefile.sys"
expect 0 "$tmp/crashkey" check "$tmp/pagefile.sys"
grep -q 'trailing-data' "$tmp/out"
expect 2 "$tmp/crashkey" check "$tmp/missing.dmp"
expect 2 "$tmp/crashkey" check --expect-bugcheck NO_SUCH_NAME "$tmp/full.dmp"
echo "30-dump: ok"
