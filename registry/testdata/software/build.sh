#!/usr/bin/env bash
# Builds the SOFTWARE-like hive fixtures: hivex's minimal hive with one .reg file of this
# folder merged by Debian's hivexregedit (libwin-hivex-perl), as the guest's
# Windows\System32\config\SOFTWARE would hold Microsoft\Windows NT\CurrentVersion.
#
#   registry/testdata/software/build.sh [OUTDIR]   # default: registry/testdata
#
# Writes OUTDIR/SOFTWARE-<name> for every <name>.reg here (win7, win81, win10, win11,
# server2019). Deterministic: scripts/test.d/40-registry.sh rebuilds them into a temporary
# folder and compares them byte for byte with the committed ones.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/..}"
command -v hivexregedit >/dev/null || { echo "software/build.sh: hivexregedit is missing: run scripts/deps.sh" >&2; exit 2; }
for reg in "$here"/*.reg; do
  name="$(basename "$reg" .reg)"
  tmp="$(mktemp "$out/.SOFTWARE-$name.XXXXXX")"
  cp "$here/../hivex-minimal" "$tmp"
  hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SOFTWARE' "$tmp" "$reg"
  chmod 644 "$tmp"
  mv "$tmp" "$out/SOFTWARE-$name"
done
