#!/usr/bin/env bash
# Builds crashkey's Debian package(s): a static binary (CGO_ENABLED=0), the man pages, the bash,
# zsh and fish completions and the README, with dpkg-deb.
#
#   scripts/package.sh [--arch amd64|arm64|all] [--out DIR]     (default: all, dist/)
#
# Reproducible: the same commit gives the same .deb, byte for byte. SOURCE_DATE_EPOCH is the
# last commit's time (unless set), the build is -trimpath with VCS stamping on (so the
# installed `crashkey version` names the commit) and an empty build id, every file's mode and
# time is normalised, man pages are gzip -n, and dpkg-deb runs with --root-owner-group (it
# clamps times to SOURCE_DATE_EPOCH itself). The version is 0.0~gitYYYYMMDD.REV (REV+dirty
# for a modified tree). DEBFULLNAME/DEBEMAIL set the Maintainer field.
#
# /usr/share/doc/crashkey/copyright (machine-readable, DEP-5) gives crashkey's licence
# (Apache-2.0, LICENSE) and the licence text of every Go module linked into the binary and of
# the Go standard library, taken from the module cache at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

arch=all
out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$arch" in
  all) arches=(amd64 arm64) ;;
  amd64|arm64) arches=("$arch") ;;
  *) echo "package.sh: --arch $arch: use amd64, arm64 or all" >&2; exit 2 ;;
esac
for tool in dpkg-deb gzip git go; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (scripts/deps.sh installs it)" >&2; exit 2; }
done

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
export TZ=UTC LC_ALL=C
umask 022
rev="$(git rev-parse --short=12 HEAD)"
dirty=
[ -z "$(git status --porcelain --untracked-files=normal)" ] || dirty=+dirty
version="0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).${rev}${dirty}"
maintainer="${DEBFULLNAME:-crashkey developers} <${DEBEMAIL:-noreply@crashkey.invalid}>"

mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The toolchain stamps the commit itself (-buildvcs=true) in a normal clone; in a git
# worktree it cannot, so the same facts also go in through -X (internal/buildinfo).
bi=github.com/crashkey/crashkey/internal/buildinfo
ldflags="-s -w -buildid= -X $bi.stampedRevision=$(git rev-parse HEAD)"
ldflags+=" -X $bi.stampedTime=$(date -u -d "@$(git log -1 --format=%ct)" +%Y-%m-%dT%H:%M:%SZ)"
ldflags+=" -X $bi.stampedModified=$([ -n "$dirty" ] && echo true || echo false)"
gobuild() { # GOARCH OUTPUT
  CGO_ENABLED=0 GOOS=linux GOARCH="$1" \
    go build -trimpath -buildvcs=true -ldflags="$ldflags" -o "$2" ./cmd/crashkey
}

# Pages and completions come from a binary for this machine (the commands' own help).
gobuild "$(go env GOARCH)" "$work/crashkey-host"
gen="$work/gen"
mkdir -p "$gen/man" "$gen/completions"
"$work/crashkey-host" docs --man "$gen/man"
gzip -9n "$gen"/man/*.1
"$work/crashkey-host" completion bash >"$gen/completions/crashkey"
"$work/crashkey-host" completion zsh >"$gen/completions/_crashkey"
"$work/crashkey-host" completion fish >"$gen/completions/crashkey.fish"

# The copyright file: crashkey's licence, then each linked module's (the same for every
# architecture: the module graph does not depend on GOARCH here).
{
  printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
  printf 'Upstream-Name: crashkey\nSource: https://github.com/crashkey/crashkey\n\n'
  printf 'Files: *\nCopyright: crashkey developers\nLicense: Apache-2.0\n'
  printf ' On Debian systems the full text of the Apache License 2.0 is in\n /usr/share/common-licenses/Apache-2.0 (and in LICENSE in the source).\n'
  printf '\nFiles: Go standard library (%s), linked statically\nLicense: BSD-3-Clause\n' "$(go env GOVERSION)"
  sed -e 's/^$/./' -e 's/^/ /' "$(go env GOROOT)/LICENSE"
  CGO_ENABLED=0 go list -deps -f '{{if .Module}}{{.Module.Path}} {{.Module.Version}} {{.Module.Dir}}{{end}}' ./cmd/crashkey |
    sort -u | while read -r mpath mver mdir; do
      [ "$mpath" != github.com/crashkey/crashkey ] || continue
      found=
      for lf in "$mdir"/LICENSE* "$mdir"/LICENCE* "$mdir"/COPYING* "$mdir"/NOTICE*; do
        [ -f "$lf" ] || continue
        found=1
        printf '\nFiles: Go module %s %s (%s), linked statically\nLicense: see below\n' "$mpath" "$mver" "$(basename "$lf")"
        sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$lf"
      done
      [ -n "$found" ] || { echo "package.sh: Go module $mpath has no licence file in $mdir" >&2; exit 1; }
    done
} >"$gen/copyright"

for a in "${arches[@]}"; do
  root="$work/root-$a"
  install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/man/man1" "$root/usr/share/doc/crashkey" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" "$root/usr/share/fish/vendor_completions.d"
  gobuild "$a" "$root/usr/bin/crashkey"
  install -m 0644 "$gen"/man/*.1.gz "$root/usr/share/man/man1/"
  install -m 0644 "$gen/completions/crashkey" "$root/usr/share/bash-completion/completions/crashkey"
  install -m 0644 "$gen/completions/_crashkey" "$root/usr/share/zsh/vendor-completions/_crashkey"
  install -m 0644 "$gen/completions/crashkey.fish" "$root/usr/share/fish/vendor_completions.d/crashkey.fish"
  gzip -9n <README.md >"$root/usr/share/doc/crashkey/README.md.gz"
  install -m 0644 "$gen/copyright" "$root/usr/share/doc/crashkey/copyright"

  size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
  cat >"$root/DEBIAN/control" <<CONTROL
Package: crashkey
Version: $version
Architecture: $a
Maintainer: $maintainer
Installed-Size: $size
Section: admin
Priority: optional
Suggests: qemu-system-x86, libvirt-clients, man-db
Homepage: https://github.com/crashkey/crashkey
Description: force a crash dump out of a Windows guest in a VM and check it
 crashkey sends the Windows crash hotkey (or an NMI) into a QEMU or libvirt
 guest as exact key events, watches for the crash, pulls the dump out of the
 guest's disk image and checks it like dumpchk. Static binary, man pages and
 bash, zsh and fish completions.
CONTROL
  (cd "$root" && find usr -type f | sort | xargs md5sum >DEBIAN/md5sums)

  # Normalise modes and times.
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -type f -exec chmod 0644 {} +
  chmod 0755 "$root/usr/bin/crashkey"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

  deb="$out/crashkey_${version}_${a}.deb"
  dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
  echo "$deb"
done
