#!/usr/bin/env bash
# registry fixtures: the copied hives and .reg file are byte-exact (registry/testdata/SOURCES.md),
# SYSTEM-crashcontrol is reproducible from hivex-minimal + crashcontrol.reg with Debian's
# hivexregedit, and the SOFTWARE-* hives from hivex-minimal + software/*.reg with
# software/build.sh. Takes a few seconds. (The .reg round trips, the hive reader and the
# log replay run in `go test ./registry`.)
set -euo pipefail
cd "$(dirname "$0")/../../registry/testdata"

sha256sum --quiet -c - <<'SUMS'
4d97a594c11e5b56a0e0370ee181b9c7c9493ac16b7e7fc2b4e1b0199b6085e1  hivex-minimal
cc558c3628f8bf0a69e2c61eb5151492026b6d5041372cc90e20cbb880537271  hivex-special
81773c97b59d39ceb47158b9a0b11c8f536cf5d39ef41b44e3cb79ef200f68d5  crashcontrol.reg
62f82ead06135256d310967e4b9eafa5f92c3a9c02aa55a31d9dcfc7f3bcdc2c  SYSTEM-crashcontrol
98530ea82b319afbab6cff1049c3b9e383a6c4fc6e9a98e06aebfc4cf86d4fe3  SOFTWARE-win7
6de100012c008feb3085ac796681503870152757c26a0b1a00eb3c1f584139dc  SOFTWARE-win81
0dc661e2685dc6fff0571e5bf94dbb84a30af158dfe7504e8eb16ccfe92c47db  SOFTWARE-win10
3cce0585a69394ac46459dcf86d9c8f30eb02f60dc01c6f1d3140a1387388c0b  SOFTWARE-win11
bd346d856ef30f1c118a5c6dc4c4701f266bdff52982025bdf6cd88d0709ac96  SOFTWARE-server2019
SUMS

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp hivex-minimal "$work/SYSTEM"
hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' "$work/SYSTEM" crashcontrol.reg
cmp "$work/SYSTEM" SYSTEM-crashcontrol || { echo "40-registry: SYSTEM-crashcontrol no longer rebuilds byte for byte" >&2; exit 1; }
software/build.sh "$work"
for f in "$work"/SOFTWARE-*; do
  cmp "$f" "$(basename "$f")" || { echo "40-registry: $(basename "$f") no longer rebuilds byte for byte (software/build.sh)" >&2; exit 1; }
done
echo "registry fixtures OK"
