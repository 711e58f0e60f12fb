#!/usr/bin/env bash
# The "remote" libvirt host of the e2e tests (scripts/guest/remote.sh) on its own: it comes up
# on 127.0.0.1 only, each transport answers with the real clients (virsh over tcp and tls, ssh
# with the generated key and known_hosts, forwarding to the daemon's socket), and stop leaves
# no process and no file behind. A few seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${TMPDIR:-/tmp}/ck-remote-check.$$"
trap 'bash scripts/guest/remote.sh stop "$dir" >/dev/null 2>&1 || true' EXIT
bash scripts/guest/remote.sh start "$dir" >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
ns=$(readlink "/proc/$(cat "$dir/libvirtd.pid")/ns/mnt")
[ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || { echo "remote host: libvirtd is not in a namespace of its own" >&2; exit 1; }
virsh -q -c "$TCP_URI" version >/dev/null
virsh -q -c "$TLS_URI" version >/dev/null
ssh -q -o BatchMode=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -i "$SSH_KEY" -p "$SSH_PORT" root@127.0.0.1 \
  "test -S '$UNIX_SOCKET' && test -L /run/libvirt/libvirt-sock"
# Nothing of it listens beyond loopback.
for p in "$TCP_PORT" "$TLS_PORT" "$SSH_PORT"; do
  # /proc/net/tcp*: local address HEXIP:HEXPORT, state 0A = LISTEN; 0100007F is 127.0.0.1.
  if awk -v port="$(printf '%04X' "$p")" '$4 == "0A" && $2 ~ ":"port"$" && $2 !~ /^0100007F:/ {bad=1} END {exit !bad}' /proc/net/tcp /proc/net/tcp6; then
    echo "remote host: port $p listens beyond 127.0.0.1" >&2; exit 1
  fi
done
pids="$(cat "$dir/libvirtd.pid") $(cat "$dir/sshd.pid")"
bash scripts/guest/remote.sh stop "$dir" 2>/dev/null
for p in $pids; do
  if kill -0 "$p" 2>/dev/null; then echo "remote host: pid $p survived stop" >&2; exit 1; fi
done
[ ! -e "$dir" ] || { echo "remote host: $dir survived stop" >&2; exit 1; }
echo "remote host: tcp, tls and ssh answered on 127.0.0.1; stop left nothing"
