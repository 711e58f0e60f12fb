#!/usr/bin/env bash
# Runs a private libvirtd for the e2e tests on a host without systemd (a container, CI).
#
#   scripts/guest/libvirtd.sh start         # start libvirtd -d with a minimal qemu.conf
#   scripts/guest/libvirtd.sh stop          # release one start; the last one removes leftover
#                                           # crashkey-e2e-* domains, stops the daemon and
#                                           # restores everything start changed
#   scripts/guest/libvirtd.sh stop --force  # stop now, whatever the count (cleanup after a crash)
#   scripts/guest/libvirtd.sh status        # exit 0 when our daemon runs
#
# start and stop are counted (under a lock), so tests and sessions that run at the same time can
# each call start … stop without pulling the daemon from under the others.
#
# Needs root and the packages libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
# (scripts/deps.sh). start refuses to touch a libvirtd it did not start. What start changes is
# recorded in the state directory (CRASHKEY_LIBVIRTD_STATE, default /run/crashkey-libvirtd) and
# undone by stop: the qemu.conf (backed up if one existed), the libvirt-qemu user and group (the
# QEMU driver refuses to load without them, even with user = "root"), and directories libvirtd
# creates (/var/log/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt/qemu).
set -euo pipefail

state="${CRASHKEY_LIBVIRTD_STATE:-/run/crashkey-libvirtd}"
mkdir -p "$(dirname "$state")"
pidfile="$state/libvirtd.pid"
users="$state/users"
conf=/etc/libvirt/qemu.conf
uri=qemu:///system
dirs=(/var/log/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt /etc/libvirt/qemu /etc/libvirt/storage /etc/libvirt/secrets /etc/libvirt/nwfilter)

die() { echo "libvirtd.sh: $*" >&2; exit 1; }

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (libvirtd and qemu:///system)"
  for t in libvirtd virsh; do
    command -v "$t" >/dev/null || die "$t not found: run scripts/deps.sh (CRASHKEY_WITH_LIBVIRT=1)"
  done
  if running; then
    echo $(( $(cat "$users" 2>/dev/null || echo 0) + 1 )) >"$users"
    echo "libvirtd.sh: already running (pid $(cat "$pidfile")), users $(cat "$users")" >&2
    return 0
  fi
  if pgrep -x libvirtd >/dev/null || [ -S /run/libvirt/libvirt-sock ] && virsh -c "$uri" version >/dev/null 2>&1; then
    die "a libvirtd not started by this script is running; stop it first or use it directly"
  fi
  mkdir -p "$state"
  : >"$state/undo"
  # Record what exists before we start, so stop removes only what we created.
  for d in "${dirs[@]}"; do
    [ -e "$d" ] || echo "rmdir $d" >>"$state/undo"
  done
  if ! getent group libvirt-qemu >/dev/null; then
    groupadd --system libvirt-qemu
    echo "groupdel libvirt-qemu" >>"$state/undo"
  fi
  if ! getent passwd libvirt-qemu >/dev/null; then
    useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin -g libvirt-qemu libvirt-qemu
    echo "userdel libvirt-qemu" >>"$state/undo"
  fi
  if [ -e "$conf" ]; then
    cp -p "$conf" "$state/qemu.conf.orig"
    echo "restore $conf" >>"$state/undo"
  else
    echo "rm $conf" >>"$state/undo"
  fi
  mkdir -p /etc/libvirt /var/log/libvirt/qemu
  { echo '# Written by crashkey'"'"'s scripts/guest/libvirtd.sh; restored by "libvirtd.sh stop".'
    cat "$(dirname "$0")/qemu.conf"; } >"$conf"
  libvirtd -d --pid-file "$pidfile" 9>&-  # the daemon must not inherit the lock
  echo 1 >"$users"
  for _ in $(seq 1 150); do
    if virsh -c "$uri" version >/dev/null 2>&1; then
      echo "libvirtd.sh: libvirtd running (pid $(cat "$pidfile"))" >&2
      return 0
    fi
    sleep 0.2
  done
  stop --force || true
  die "libvirtd did not answer on $uri within 30 s"
}

stop() {
  if [ "${1:-}" != --force ] && running; then
    n=$(( $(cat "$users" 2>/dev/null || echo 1) - 1 ))
    if [ "$n" -gt 0 ]; then
      echo "$n" >"$users"
      echo "libvirtd.sh: still used by $n, not stopping (stop --force stops anyway)" >&2
      return 0
    fi
  fi
  if running; then
    # Domains outlive the daemon: remove ours first.
    for d in $(virsh -c "$uri" list --all --name 2>/dev/null | grep '^crashkey-e2e-' || true); do
      virsh -c "$uri" destroy "$d" >/dev/null 2>&1 || true
      virsh -c "$uri" undefine "$d" >/dev/null 2>&1 || true
    done
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
    echo "libvirtd.sh: libvirtd stopped" >&2
  fi
  rm -f "$pidfile"
  if [ -f "$state/undo" ]; then
    # Undo in reverse order.
    tac "$state/undo" | while read -r op arg; do
      case "$op" in
        restore) cp -p "$state/qemu.conf.orig" "$arg" ;;
        rm) rm -f "$arg" ;;
        rmdir) rm -rf "$arg" ;;
        userdel) userdel "$arg" 2>/dev/null || true ;;
        groupdel) groupdel "$arg" 2>/dev/null || true ;;
      esac
    done
  fi
  rm -rf "$state"
}

# One start/stop at a time (tests and sessions may run in parallel). The lock is taken on the
# state directory's parent, which always exists, so that no lock file is left behind.
exec 9<"$(dirname "$state")"
flock 9

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  status) running ;;
  *) echo "usage: $0 start|stop [--force]|status" >&2; exit 2 ;;
esac
