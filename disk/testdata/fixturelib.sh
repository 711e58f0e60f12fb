# Steps the fixture scripts share (disk/testdata/mkfixtures.sh, disk/testdata/mkhostile.sh,
# pull/testdata/mkhostile.sh). Sourced, not run:
#   . "$root/disk/testdata/fixturelib.sh"
fixturelib_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# need SCRIPT TOOL...: exits with one line naming the first missing tool.
need() {
  local who=$1 t
  shift
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$who: $t is missing; run scripts/deps.sh" >&2; exit 1; }
  done
}

# build_ntfshelper DIR: compiles the libntfs-3g helper (ntfshelper.c: mkdir, rm, pwrite,
# files with any name, sparse writes) to DIR/ntfshelper.
build_ntfshelper() {
  gcc -O2 -Wall -o "$1/ntfshelper" "$fixturelib_dir/ntfshelper.c" -lntfs-3g
}

# build_tool DIR NAME: builds crashkey's internal/tools/NAME to DIR/NAME.
build_tool() {
  (cd "$fixturelib_dir/../.." && go build -o "$1/$2" "./internal/tools/$2")
}
