package vm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Target shorthands: where the hypervisors admins run keep a VM's QMP socket.
//
//   - Proxmox VE: /var/run/qemu-server/VMID.qmp (qemu-server starts every VM with
//     -chardev socket,id=qmp,path=/var/run/qemu-server/VMID.qmp,server=on,wait=off
//     -mon chardev=qmp,mode=control), and the guest agent at /var/run/qemu-server/VMID.qga.
//     qemu-server connects per operation, so the socket is usually free.
//   - Incus: the instance's log directory, $INCUS_DIR/logs or /var/log/incus, then NAME (or
//     PROJECT_NAME outside the default project), holds qemu.monitor, QEMU's QMP socket. incusd
//     keeps that connection open and QEMU serves one client per socket, so crashkey looks
//     first for crashkey.qmp in the same directory: a second QMP socket the admin adds with
//     incus config set NAME raw.qemu -- "-qmp unix:/var/log/incus/NAME/crashkey.qmp,server=on,wait=off"
//     (the log directory is one QEMU's AppArmor profile lets it write).
//   - LXD: the same layout under $LXD_DIR/logs, /var/snap/lxd/common/lxd/logs (snap) or
//     /var/log/lxd.
//   - Plain QEMU started by hand: the QMP socket is read from its command line
//     (/proc/PID/cmdline): -qmp unix:PATH[,server=on,wait=off], or
//     -chardev socket,id=ID,path=PATH,server=on,wait=off with -mon chardev=ID,mode=control.

// Locator resolves shorthands. Root prefixes every path it looks at ("" is the real
// file system; tests point it at a fake layout); Env, when set, replaces os.Getenv.
type Locator struct {
	Root string
	Env  func(string) string
}

// Resolved is where a shorthand points.
type Resolved struct {
	// QMP is the QMP address ("unix:/var/run/qemu-server/101.qmp").
	QMP string
	// Agent is the guest agent socket when the hypervisor has a known one ("" otherwise).
	Agent string
	// Tried lists every path looked at, in order.
	Tried []string
	// Warning says what may still stop crashkey using the socket ("" when nothing).
	Warning string
}

func (l Locator) path(p string) string { return filepath.Join(l.Root, p) }

func (l Locator) getenv(k string) string {
	if l.Env != nil {
		return l.Env(k)
	}
	return os.Getenv(k)
}

func isSocket(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// ErrNoSocket is wrapped by the errors of shorthands that find nothing.
var ErrNoSocket = errors.New("no QMP socket")

// ProxmoxDir is where Proxmox VE's qemu-server keeps a running VM's sockets.
const ProxmoxDir = "/var/run/qemu-server"

var vmidRE = regexp.MustCompile(`^[1-9][0-9]{2,8}$`)

// Proxmox resolves a Proxmox VE VMID (100 to 999999999).
func (l Locator) Proxmox(vmid string) (Resolved, error) {
	if !vmidRE.MatchString(vmid) {
		return Resolved{}, fmt.Errorf("proxmox: VMID %q: want a number from 100 to 999999999 (see qm list)", vmid)
	}
	p := filepath.Join(ProxmoxDir, vmid+".qmp")
	r := Resolved{Tried: []string{p}}
	if !isSocket(l.path(p)) {
		return r, fmt.Errorf("proxmox: %w for VM %s: tried %s (is the VM running on this node? qm status %s)", ErrNoSocket, vmid, p, vmid)
	}
	r.QMP = "unix:" + l.path(p)
	if qga := filepath.Join(ProxmoxDir, vmid+".qga"); isSocket(l.path(qga)) {
		r.Agent = "unix:" + l.path(qga)
	}
	return r, nil
}

var instanceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

// containerLogDirs are the log directories of Incus or LXD, in the order they are tried.
func (l Locator) containerLogDirs(kind string) []string {
	switch kind {
	case "incus":
		var dirs []string
		if d := l.getenv("INCUS_DIR"); d != "" {
			dirs = append(dirs, filepath.Join(d, "logs"))
		}
		return append(dirs, "/var/log/incus")
	default:
		var dirs []string
		if d := l.getenv("LXD_DIR"); d != "" {
			dirs = append(dirs, filepath.Join(d, "logs"))
		}
		return append(dirs, "/var/snap/lxd/common/lxd/logs", "/var/log/lxd")
	}
}

// Incus resolves an Incus VM: NAME, or PROJECT/NAME outside the default project.
func (l Locator) Incus(name string) (Resolved, error) { return l.container("incus", name) }

// LXD resolves an LXD VM: NAME, or PROJECT/NAME outside the default project.
func (l Locator) LXD(name string) (Resolved, error) { return l.container("lxd", name) }

func (l Locator) container(kind, name string) (Resolved, error) {
	project, inst, found := strings.Cut(name, "/")
	if !found {
		project, inst = "default", name
	}
	if !instanceRE.MatchString(inst) || (found && !instanceRE.MatchString(project)) {
		return Resolved{}, fmt.Errorf("%s: instance name %q: want NAME or PROJECT/NAME (see %s list)", kind, name, kind)
	}
	dirName := inst
	if project != "default" {
		dirName = project + "_" + inst // as Incus and LXD name an instance's directories
	}
	var r Resolved
	for _, d := range l.containerLogDirs(kind) {
		own := filepath.Join(d, dirName, "crashkey.qmp")
		mon := filepath.Join(d, dirName, "qemu.monitor")
		r.Tried = append(r.Tried, own, mon)
		if isSocket(l.path(own)) {
			r.QMP = "unix:" + l.path(own)
			return r, nil
		}
		if isSocket(l.path(mon)) {
			r.QMP = "unix:" + l.path(mon)
			r.Warning = fmt.Sprintf("%s: %s is the socket %sd itself keeps open, and QEMU serves one client at a time: if crashkey gets no greeting, give the VM its own QMP socket: %s config set %s raw.qemu -- \"-qmp unix:%s,server=on,wait=off\" and restart it",
				kind, mon, kind, kind, inst, own)
			return r, nil
		}
	}
	return r, fmt.Errorf("%s: %w for VM %q: tried %s (is it a running virtual machine? %s list)", kind, ErrNoSocket, name, strings.Join(r.Tried, ", "), kind)
}

// QEMUProcess resolves a QEMU process started by hand from its command line
// (/proc/PID/cmdline).
func (l Locator) QEMUProcess(pid int) (Resolved, error) {
	p := filepath.Join("/proc", strconv.Itoa(pid), "cmdline")
	r := Resolved{Tried: []string{p}}
	b, err := os.ReadFile(l.path(p))
	if err != nil {
		return r, fmt.Errorf("qemu: process %d: %w", pid, err)
	}
	args := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
	addr, err := QMPFromCommandLine(args)
	if err != nil {
		return r, fmt.Errorf("qemu: process %d: %w", pid, err)
	}
	r.QMP = addr
	if strings.HasPrefix(addr, "unix:") && !filepath.IsAbs(strings.TrimPrefix(addr, "unix:")) {
		// A relative path is relative to QEMU's working directory.
		cwd, err := os.Readlink(l.path(filepath.Join("/proc", strconv.Itoa(pid), "cwd")))
		if err == nil {
			r.QMP = "unix:" + filepath.Join(cwd, strings.TrimPrefix(addr, "unix:"))
		}
	}
	return r, nil
}

// QMPFromCommandLine finds the QMP socket in a QEMU command line: -qmp unix:PATH or
// tcp:HOST:PORT (options after a comma ignored; -qmp-pretty too), or a -chardev socket (path=
// or host=/port=) that a -mon chardev=ID,mode=control uses. A -mon without mode=control is a
// human monitor (HMP) and is skipped; so is a -qmp that is not a server.
func QMPFromCommandLine(args []string) (string, error) {
	type chardev struct{ addr string }
	chardevs := map[string]chardev{}
	var mons []string
	var qmp []string
	opt := func(i int) (string, string, bool) {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return "", "", false
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			return k, v, true
		}
		if i+1 < len(args) {
			return name, args[i+1], true
		}
		return name, "", true
	}
	for i := 0; i < len(args); i++ {
		name, val, ok := opt(i)
		if !ok {
			continue
		}
		switch name {
		case "qmp", "qmp-pretty":
			qmp = append(qmp, val)
		case "chardev":
			kind, rest, _ := strings.Cut(val, ",")
			if kind != "socket" {
				continue
			}
			kv := parseOpts(rest)
			var addr string
			switch {
			case kv["path"] != "":
				addr = "unix:" + kv["path"]
			case kv["port"] != "":
				addr = "tcp:" + kv["host"] + ":" + kv["port"]
			}
			if kv["id"] != "" && addr != "" && isServer(kv) {
				chardevs[kv["id"]] = chardev{addr}
			}
		case "mon":
			kv := parseOpts(val)
			if kv["mode"] == "control" && kv["chardev"] != "" {
				mons = append(mons, kv["chardev"])
			}
		}
	}
	for _, q := range qmp {
		addr, rest, _ := strings.Cut(q, ",")
		kv := parseOpts(rest)
		if (strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "tcp:")) && isServer(kv) {
			return addr, nil
		}
	}
	for _, id := range mons {
		if c, ok := chardevs[id]; ok {
			return c.addr, nil
		}
	}
	return "", fmt.Errorf("%w in its command line: start QEMU with -qmp unix:PATH,server=on,wait=off, or -chardev socket,id=mon0,path=PATH,server=on,wait=off -mon chardev=mon0,mode=control", ErrNoSocket)
}

// parseOpts splits QEMU's "k=v,k2=v2,flag" options; a bare word is "on" ("server", "nowait"
// gives wait=off).
func parseOpts(s string) map[string]string {
	m := map[string]string{}
	if s == "" {
		return m
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			if strings.HasPrefix(k, "no") && k != "nodelay" {
				k, v = k[2:], "off"
			} else {
				v = "on"
			}
		}
		m[k] = v
	}
	return m
}

func isServer(kv map[string]string) bool {
	s := kv["server"]
	return s == "on" || s == "yes" || s == "true"
}

// QMPSockets lists QMP sockets in common places, for shell completion: Proxmox VE's
// /var/run/qemu-server/*.qmp, Incus' and LXD's crashkey.qmp and qemu.monitor, and *.qmp in
// dir (the current directory when ""). It returns "unix:PATH" addresses, sorted.
func (l Locator) QMPSockets(dir string) []string {
	if dir == "" {
		dir = "."
	}
	patterns := []string{l.path(filepath.Join(ProxmoxDir, "*.qmp"))}
	for _, kind := range []string{"incus", "lxd"} {
		for _, d := range l.containerLogDirs(kind) {
			patterns = append(patterns, l.path(filepath.Join(d, "*", "crashkey.qmp")), l.path(filepath.Join(d, "*", "qemu.monitor")))
		}
	}
	patterns = append(patterns, filepath.Join(dir, "*.qmp"))
	var out []string
	seen := map[string]bool{}
	for _, p := range patterns {
		matches, _ := filepath.Glob(p)
		for _, m := range matches {
			if isSocket(m) && !seen[m] {
				seen[m] = true
				out = append(out, "unix:"+m)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ProxmoxVMIDs lists the VMIDs that have a QMP socket (running VMs on this node).
func (l Locator) ProxmoxVMIDs() []string {
	matches, _ := filepath.Glob(l.path(filepath.Join(ProxmoxDir, "*.qmp")))
	var ids []string
	for _, m := range matches {
		id := strings.TrimSuffix(filepath.Base(m), ".qmp")
		if vmidRE.MatchString(id) && isSocket(m) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Instances lists the Incus or LXD ("incus", "lxd") VMs that have a QMP socket, as NAME or
// PROJECT/NAME.
func (l Locator) Instances(kind string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range l.containerLogDirs(kind) {
		for _, f := range []string{"crashkey.qmp", "qemu.monitor"} {
			matches, _ := filepath.Glob(l.path(filepath.Join(d, "*", f)))
			for _, m := range matches {
				name := filepath.Base(filepath.Dir(m))
				if p, n, ok := strings.Cut(name, "_"); ok {
					name = p + "/" + n
				}
				if isSocket(m) && !seen[name] {
					seen[name] = true
					out = append(out, name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
