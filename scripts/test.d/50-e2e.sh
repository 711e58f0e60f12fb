#!/usr/bin/env bash
# The e2e suite: boots the Linux test guest under QEMU (TCG) in each keyboard configuration and
# through a private libvirtd, and asserts the exact streams the guest records. About 9 minutes on
# 2 cores; the kernel download (first run only) is cached in ${CRASHKEY_CACHE:-$HOME/.cache/crashkey}.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The kernel is the only network-dependent part: fetch it first so a failure is clearly named.
bash scripts/guest/kernel.sh >/dev/null

# Stop the private libvirtd even when the test binary is killed by its timeout (its own
# cleanup then never runs), unless it was already running before (someone else's session).
ck_own_libvirtd=
if ! bash scripts/guest/libvirtd.sh status 2>/dev/null; then
  ck_own_libvirtd=1
fi

# The remote host of TestRemote (scripts/guest/remote.sh) likewise.
export CRASHKEY_REMOTE_DIR="${TMPDIR:-/tmp}/ck-remote-e2e.$$"
trap 'bash scripts/guest/remote.sh stop "$CRASHKEY_REMOTE_DIR" >/dev/null 2>&1 || true; bash scripts/guest/libvirtd.sh status 2>/dev/null && [ -n "${ck_own_libvirtd:-}" ] && bash scripts/guest/libvirtd.sh stop --force >/dev/null 2>&1 || true' EXIT

go test -tags e2e -count=1 -timeout 16m ./e2e/...
