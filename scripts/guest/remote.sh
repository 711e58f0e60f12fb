#!/usr/bin/env bash
# Runs a "remote" libvirt host on loopback for crashkey's remote-transport tests: a second,
# private libvirtd that listens on 127.0.0.1 for qemu+tcp:// (auth none) and qemu+tls://
# (certificates made here with openssl), and a private sshd (key-only, its own host key and
# known_hosts) through which qemu+ssh:// reaches that libvirtd's unix socket.
#
#   scripts/guest/remote.sh start DIR   # start both; prints KEY=VALUE lines (also in DIR/env)
#   scripts/guest/remote.sh stop DIR    # destroy its domains, stop both daemons, remove DIR
#
# Both daemons run in a mount namespace of their own (unshare -m) with tmpfs over /run,
# /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt and a copy of
# /etc/passwd and /etc/group with the libvirt-qemu user the QEMU driver wants, so nothing of the
# host's libvirt (or of scripts/guest/libvirtd.sh's daemon) is seen or changed. Nothing listens
# beyond 127.0.0.1. The unix socket is DIR/sock/libvirt-sock (qemu:///system?socket=…), also
# linked at the default /run/libvirt/libvirt-sock inside the namespace, where sshd runs.
#
# Printed keys (shell-quoted, so the file can be sourced): UNIX_SOCKET TCP_PORT TLS_PORT SSH_PORT PKI (cacert.pem clientcert.pem
# clientkey.pem) SSH_KEY KNOWN_HOSTS and the URIs UNIX_URI TCP_URI TLS_URI SSH_URI.
# Needs root and libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients, openssh-server,
# openssl, util-linux (unshare) (scripts/deps.sh).
set -euo pipefail

die() { echo "remote.sh: $*" >&2; exit 1; }

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port on 127.0.0.1"
}

certs() {
  local d=$1 pki=$1/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=crashkey test CA" -keyout cakey.pem -out cacert.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
      -keyout serverkey.pem -out server.csr 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
    openssl x509 -req -in server.csr -CA cacert.pem -CAkey cakey.pem -CAcreateserial -days 2 \
      -extfile server.ext -out servercert.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=crashkey test client" \
      -keyout clientkey.pem -out client.csr 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA cacert.pem -CAkey cakey.pem -CAcreateserial -days 2 \
      -extfile client.ext -out clientcert.pem 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
    chmod 600 ./*key.pem
  )
}

start() {
  local d=$1
  [ "$(id -u)" -eq 0 ] || die "must run as root (a system libvirtd and sshd)"
  for t in libvirtd virsh /usr/sbin/sshd ssh-keygen openssl unshare; do
    command -v "$t" >/dev/null || die "$t not found: run scripts/deps.sh"
  done
  [ -e "$d/env" ] && die "$d is in use (stop it first)"
  mkdir -p "$d/sock" "$d/ssh" "$d/log"
  d=$(cd "$d" && pwd)
  : >"$d/undo"
  # Mount points the namespace covers with tmpfs; created on the host only when missing.
  for m in /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt; do
    [ -d "$m" ] || { mkdir -p "$m"; echo "$m" >>"$d/undo"; }
  done

  certs "$d"
  ssh-keygen -q -t ed25519 -N '' -C 'crashkey test host' -f "$d/ssh/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C 'crashkey test client' -f "$d/ssh/id_ed25519"
  cp "$d/ssh/id_ed25519.pub" "$d/ssh/authorized_keys"

  local tcp tls ssh
  tcp=$(free_port); tls=$(free_port); ssh=$(free_port)
  [ "$tcp" != "$tls" ] && [ "$tls" != "$ssh" ] && [ "$tcp" != "$ssh" ] || die "port clash, try again"
  echo "[127.0.0.1]:$ssh $(cut -d' ' -f1,2 "$d/ssh/host_ed25519.pub")" >"$d/ssh/known_hosts"

  cat >"$d/libvirtd.conf" <<CONF
listen_tls = 1
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "$tcp"
tls_port = "$tls"
auth_tcp = "none"
auth_tls = "none"
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_dir = "$d/sock"
unix_sock_rw_perms = "0700"
ca_file = "$d/pki/cacert.pem"
cert_file = "$d/pki/servercert.pem"
key_file = "$d/pki/serverkey.pem"
log_outputs = "3:file:$d/log/libvirtd.log"
CONF
  cp "$(dirname "$0")/qemu.conf" "$d/qemu.conf"
  cat >"$d/sshd_config" <<CONF
Port $ssh
ListenAddress 127.0.0.1
HostKey $d/ssh/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $d/ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
LogLevel VERBOSE
CONF
  cp /etc/passwd "$d/passwd"; cp /etc/group "$d/group"
  getent group libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:" >>"$d/group"
  getent passwd libvirt-qemu >/dev/null || echo "libvirt-qemu:x:64055:64055:libvirt-qemu:/var/lib/libvirt:/usr/sbin/nologin" >>"$d/passwd"

  # The namespace lives as long as a process in it; both daemons detach.
  unshare --mount --propagation private -- bash -euc '
    d=$1
    for m in /run /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt; do
      mount -t tmpfs -o mode=0755 crashkey-remote "$m"
    done
    mount --bind "$d/passwd" /etc/passwd
    mount --bind "$d/group" /etc/group
    cp "$d/qemu.conf" /etc/libvirt/qemu.conf
    mkdir -p /run/libvirt /run/sshd /var/log/libvirt/qemu
    ln -s "$d/sock/libvirt-sock" /run/libvirt/libvirt-sock
    libvirtd -d --listen -f "$d/libvirtd.conf" --pid-file "$d/libvirtd.pid"
    /usr/sbin/sshd -f "$d/sshd_config" -E "$d/log/sshd.log"
  ' remote-ns "$d" 9>&-

  local uri="qemu:///system?socket=$d/sock/libvirt-sock"
  for _ in $(seq 1 150); do
    if virsh -c "$uri" version >/dev/null 2>&1 && [ -s "$d/sshd.pid" ]; then
      cat >"$d/env" <<ENV
UNIX_SOCKET='$d/sock/libvirt-sock'
TCP_PORT=$tcp
TLS_PORT=$tls
SSH_PORT=$ssh
PKI='$d/pki'
SSH_KEY='$d/ssh/id_ed25519'
KNOWN_HOSTS='$d/ssh/known_hosts'
UNIX_URI='$uri'
TCP_URI='qemu+tcp://127.0.0.1:$tcp/system'
TLS_URI='qemu+tls://127.0.0.1:$tls/system?pkipath=$d/pki'
SSH_URI='qemu+ssh://root@127.0.0.1:$ssh/system?keyfile=$d/ssh/id_ed25519&known_hosts=$d/ssh/known_hosts&socket=$d/sock/libvirt-sock'
ENV
      cat "$d/env"
      echo "remote.sh: libvirtd (pid $(cat "$d/libvirtd.pid"), tcp $tcp, tls $tls) and sshd (pid $(cat "$d/sshd.pid"), port $ssh) on 127.0.0.1" >&2
      return 0
    fi
    sleep 0.2
  done
  tail -5 "$d/log/libvirtd.log" "$d/log/sshd.log" >&2 2>/dev/null || true
  stop "$d" || true
  die "libvirtd or sshd did not come up within 30 s"
}

# nsprocs PID prints the processes in PID's mount namespace (the daemons and the QEMUs libvirtd
# started), PID first.
nsprocs() {
  local ns p
  ns=$(readlink "/proc/$1/ns/mnt" 2>/dev/null) || return 0
  echo "$1"
  # A stale pid file naming a process of the host's namespace must not widen the kill.
  [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || return 0
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" != "$1" ] && [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$ns" ] && echo "$p"
  done
  return 0
}

stop() {
  local d=$1
  [ -d "$d" ] || return 0
  d=$(cd "$d" && pwd)
  local uri="qemu:///system?socket=$d/sock/libvirt-sock" pids=() pid
  if [ -f "$d/libvirtd.pid" ] && kill -0 "$(cat "$d/libvirtd.pid")" 2>/dev/null; then
    for dom in $(virsh -c "$uri" list --all --name 2>/dev/null || true); do
      virsh -c "$uri" destroy "$dom" >/dev/null 2>&1 || true
      virsh -c "$uri" undefine "$dom" >/dev/null 2>&1 || true
    done
    mapfile -t pids < <(nsprocs "$(cat "$d/libvirtd.pid")")
  elif [ -f "$d/sshd.pid" ] && kill -0 "$(cat "$d/sshd.pid")" 2>/dev/null; then
    mapfile -t pids < <(nsprocs "$(cat "$d/sshd.pid")")
  fi
  # Every process of the namespace, by pid: the daemons, sshd's sessions, leftover QEMUs.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ -f "$d/undo" ]; then
    tac "$d/undo" | while read -r m; do rmdir "$m" 2>/dev/null || true; done
  fi
  rm -rf "$d"
  echo "remote.sh: stopped" >&2
}

case "${1:-}" in
  start) [ -n "${2:-}" ] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [ -n "${2:-}" ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) echo "usage: $0 start DIR | stop DIR" >&2; exit 2 ;;
esac
