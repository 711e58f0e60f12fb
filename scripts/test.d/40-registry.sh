#!/usr/bin/env bash
# registry fixtures: the copied hives and .reg file are byte-exact (registry/testdata/README.md),
# and SYSTEM-crashcontrol is reproducible from hivex-minimal + crashcontrol.reg with Debian's
# hivexregedit. Takes well under a second. (The .reg round trips and the hive reader run in
# `go test ./registry`.)
set -euo pipefail
cd "$(dirname "$0")/../../registry/testdata"

sha256sum --quiet -c - <<'SUMS'
4d97a594c11e5b56a0e0370ee181b9c7c9493ac16b7e7fc2b4e1b0199b6085e1  hivex-minimal
cc558c3628f8bf0a69e2c61eb5151492026b6d5041372cc90e20cbb880537271  hivex-special
81773c97b59d39ceb47158b9a0b11c8f536cf5d39ef41b44e3cb79ef200f68d5  crashcontrol.reg
62f82ead06135256d310967e4b9eafa5f92c3a9c02aa55a31d9dcfc7f3bcdc2c  SYSTEM-crashcontrol
SUMS

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp hivex-minimal "$work/SYSTEM"
hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' "$work/SYSTEM" crashcontrol.reg
cmp "$work/SYSTEM" SYSTEM-crashcontrol || { echo "40-registry: SYSTEM-crashcontrol no longer rebuilds byte for byte" >&2; exit 1; }
echo "registry fixtures OK"
