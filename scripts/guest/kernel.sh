#!/usr/bin/env bash
# Fetches the e2e guest's kernel: Debian's linux-image-<ver>-amd64 package, downloaded (never
# installed) and unpacked into a cache outside the repository. Keeps only vmlinuz, the config and
# the modules the guest loads. Idempotent and quick when cached.
#
#   scripts/guest/kernel.sh            # prints the kernel directory on stdout
#   CRASHKEY_KERNEL_VERSION=6.1.0-56-amd64 scripts/guest/kernel.sh
#
# Output layout (${CRASHKEY_CACHE:-$HOME/.cache/crashkey}/guest/kernel-<ver>/):
#   (directory kernel-<ver>-<hash of the module list>/)
#   vmlinuz  config  modules/<name>.ko  modules.order (load order, one file name per line)  version
set -euo pipefail

cache="${CRASHKEY_CACHE:-$HOME/.cache/crashkey}/guest"

# Load order that works (qemu-observed.md), plus virtio_blk for the guest's disks and virtio_console
# for the guest agent's virtio-serial port (org.qemu.guest_agent.0, as Windows guests have it).
modules=(
  usb-common usbcore xhci-hcd xhci-pci uhci-hcd ehci-hcd ehci-pci hid usbhid hid-generic serio_raw evdev
  virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_input virtio_blk virtio_console
  pvpanic pvpanic-mmio pvpanic-pci
)

die() { echo "kernel.sh: $*" >&2; exit 1; }
for t in apt-get apt-cache dpkg-deb tar; do
  command -v "$t" >/dev/null || die "$t not found: run scripts/deps.sh on a Debian host"
done

resolve() {
  # "Depends: linux-image-6.1.0-56-amd64"
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n1
}

ver="${CRASHKEY_KERNEL_VERSION:-}"
if [ -z "$ver" ]; then
  ver="$(resolve)"
  if [ -z "$ver" ]; then
    apt-get update -qq >&2 || true
    ver="$(resolve)"
  fi
  [ -n "$ver" ] || die "cannot find the kernel version: apt-cache depends linux-image-amd64 names no linux-image-<ver>-amd64"
fi

want="$(printf '%s\n' "${modules[@]}")"
# The cache directory is named after the kernel and the module list: a changed list gets a new
# directory, and trees with different lists (branches) do not replace each other's kernel.
mods="$(printf '%s' "$want" | sha256sum | cut -c1-8)"
cached() { [ -f "$cache/kernel-$1-$mods/complete" ] && [ "$(cat "$cache/kernel-$1-$mods/complete")" = "$want" ]; }
if cached "$ver"; then
  echo "$cache/kernel-$ver-$mods"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.kernel-XXXXXX")"
chmod 755 "$work"  # apt-get download runs as _apt when it can
trap 'rm -rf "$work"' EXIT

pkg="linux-image-$ver"
echo "kernel.sh: downloading $pkg (not installing it)" >&2
if ! (cd "$work" && apt-get download "$pkg" >&2); then
  echo "kernel.sh: download failed, running apt-get update and retrying" >&2
  apt-get update -qq >&2 || true
  if [ -z "${CRASHKEY_KERNEL_VERSION:-}" ]; then
    # The index was stale: the current kernel may have a new version (and may be cached).
    ver="$(resolve)"
    [ -n "$ver" ] || die "cannot find the kernel version after apt-get update"
    if cached "$ver"; then
      echo "$cache/kernel-$ver-$mods"
      exit 0
    fi
    pkg="linux-image-$ver"
  fi
  (cd "$work" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed (check the apt sources and network)"
fi
deb="$(ls "$work"/*.deb | head -n1)"

mkdir -p "$work/x" "$work/out/modules"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/x" --wildcards \
  "./boot/vmlinuz-$ver" "./boot/config-$ver" "./lib/modules/$ver/kernel/*.ko*"
cp "$work/x/boot/vmlinuz-$ver" "$work/out/vmlinuz"
cp "$work/x/boot/config-$ver" "$work/out/config"

: >"$work/out/modules.order"
for m in "${modules[@]}"; do
  # Module file names use either - or _; try both spellings.
  alt="${m//-/_}"; alt2="${m//_/-}"
  f="$(find "$work/x/lib/modules/$ver/kernel" \( -name "$m.ko*" -o -name "$alt.ko*" -o -name "$alt2.ko*" \) | head -n1)"
  if [ -z "$f" ]; then
    # Built into this kernel: nothing to load.
    echo "kernel.sh: module $m not found as a file (built in?)" >&2
    continue
  fi
  base="$(basename "$f")"
  case "$base" in
    *.ko) cp "$f" "$work/out/modules/$base" ;;
    *.ko.xz) xz -dc "$f" >"$work/out/modules/${base%.xz}"; base="${base%.xz}" ;;
    *.ko.zst) zstd -qdc "$f" >"$work/out/modules/${base%.zst}"; base="${base%.zst}" ;;
    *) die "unexpected module file $base" ;;
  esac
  echo "$base" >>"$work/out/modules.order"
done
echo "$ver" >"$work/out/version"
printf '%s\n' "$want" >"$work/out/complete"

dir="$cache/kernel-$ver-$mods"
rm -rf "$dir"
mv -T "$work/out" "$dir" 2>/dev/null || [ -f "$dir/complete" ]  # a parallel run may have won
echo "$dir"
