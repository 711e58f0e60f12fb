#!/usr/bin/env bash
# The Debian package: scripts/package.sh builds the same .deb twice (reproducible), dpkg -i
# installs it, the installed crashkey runs (version names this commit, man crashkey-run shows
# its page, the bash completion loads), and dpkg -r removes it again. Needs root; refuses to
# touch a crashkey package someone installed before.
set -euo pipefail
cd "$(dirname "$0")/../.."

arch="$(dpkg --print-architecture)"
case "$arch" in amd64|arm64) ;; *) echo "60-package: skipped on $arch (packages are built for amd64 and arm64)"; exit 0 ;; esac
if dpkg-query -W -f='${Status}' crashkey 2>/dev/null | grep -q 'install ok installed'; then
  echo "60-package: a crashkey package is already installed here; remove it (dpkg -r crashkey) to run this test" >&2
  exit 1
fi

work="$(mktemp -d)"
installed=
cleanup() {
  [ -z "$installed" ] || dpkg -r crashkey >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

deb1="$(bash scripts/package.sh --arch "$arch" --out "$work/1")"
deb2="$(bash scripts/package.sh --arch "$arch" --out "$work/2")"
h1="$(sha256sum <"$deb1")"; h2="$(sha256sum <"$deb2")"
[ "$h1" = "$h2" ] || { echo "60-package: two builds differ: $deb1 $h1 vs $deb2 $h2" >&2; exit 1; }
echo "60-package: reproducible: ${h1%% *}  $(basename "$deb1")"

# Container images often exclude /usr/share/man and /usr/share/doc through path-exclude in
# /etc/dpkg/dpkg.cfg.d/; options on the command line come after the config, so these
# path-include options win for this package's files.
installed=1
dpkg --path-include='/usr/share/man/man1/crashkey*' --path-include='/usr/share/doc/crashkey/*' -i "$deb1" >/dev/null

ver="$(crashkey version)"
echo "$ver" | grep -q "^revision    $(git rev-parse HEAD)\$" || { echo "60-package: installed crashkey version does not name HEAD:" >&2; echo "$ver" >&2; exit 1; }
[ "$(command -v crashkey)" = /usr/bin/crashkey ] || { echo "60-package: crashkey on PATH is $(command -v crashkey), not /usr/bin/crashkey" >&2; exit 1; }
page="$(MANWIDTH=100 MANPAGER=cat man crashkey-run 2>&1)" || { echo "60-package: man crashkey-run: $page" >&2; exit 1; }
echo "$page" | grep -Eq 'crashkey-run +- ' || { echo "60-package: man crashkey-run shows no crashkey-run page:" >&2; echo "$page" | head -20 >&2; exit 1; }
bash -c 'source /usr/share/bash-completion/completions/crashkey && complete -p crashkey' | grep -q __start_crashkey ||
  { echo "60-package: the bash completion does not register for crashkey" >&2; exit 1; }
[ -s /usr/share/doc/crashkey/README.md.gz ] || { echo "60-package: README not installed" >&2; exit 1; }
cr=/usr/share/doc/crashkey/copyright
grep -q '^License: Apache-2.0$' "$cr" || { echo "60-package: $cr does not give crashkey's licence" >&2; exit 1; }
for m in github.com/digitalocean/go-libvirt github.com/digitalocean/go-qemu github.com/lima-vm/go-qcow2reader www.velocidex.com/golang/go-ntfs; do
  grep -q "^Files: Go module $m " "$cr" || { echo "60-package: $cr lacks the licence of $m" >&2; exit 1; }
done

dpkg -r crashkey >/dev/null
installed=
[ ! -e /usr/bin/crashkey ] && [ ! -e /usr/share/man/man1/crashkey-run.1.gz ] || { echo "60-package: dpkg -r left files behind" >&2; exit 1; }
echo "60-package: installed, ran crashkey version and man crashkey-run, removed"
