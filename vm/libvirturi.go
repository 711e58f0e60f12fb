package vm

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// LibvirtURI is a parsed libvirt connection URI: how to reach the daemon (transport, host,
// user, port, the URI parameters that matter for it) and which driver URI to open there.
type LibvirtURI struct {
	// Transport is "unix", "tcp", "tls" or "ssh" (qemu+libssh:// and qemu+libssh2:// are
	// served by crashkey's own SSH client too).
	Transport string
	// Host and Port (empty: the transport's default: 16509 tcp, 16514 tls, 22 ssh).
	Host, Port string
	// User is the SSH user (empty: the current user).
	User string
	// Name is the URI opened on the daemon: "qemu:///system", "qemu:///session" or name=.
	Name string
	// Socket is socket= (the daemon's unix socket; for ssh, on the remote host).
	Socket string
	// KeyFile is keyfile= (SSH private key).
	KeyFile string
	// KnownHosts is known_hosts= (SSH known_hosts file).
	KnownHosts string
	// NoVerify is no_verify=1 (skip TLS certificate or SSH host key checks) or
	// known_hosts_verify=ignore.
	NoVerify bool
	// PKIPath is pkipath= (cacert.pem, clientcert.pem, clientkey.pem for TLS).
	PKIPath string

	raw *url.URL
}

// String is the URI with any password removed: safe for messages and logs.
func (u LibvirtURI) String() string {
	if u.raw == nil {
		return ""
	}
	return u.raw.Redacted()
}

// URIError is a libvirt URI crashkey cannot use; it is bad input.
type URIError struct {
	URI    string
	Reason string
}

func (e *URIError) Error() string { return fmt.Sprintf("libvirt uri %s: %s", e.URI, e.Reason) }

// ParseLibvirtURI parses and checks a libvirt URI: "qemu:///system", "qemu:///session",
// "qemu+unix:///system?socket=PATH", "qemu+tcp://HOST[:PORT]/system",
// "qemu+tls://HOST[:PORT]/system?pkipath=DIR&no_verify=1",
// "qemu+ssh://[USER@]HOST[:PORT]/system?keyfile=F&known_hosts=F&no_verify=1&socket=PATH".
func ParseLibvirtURI(s string) (LibvirtURI, error) {
	raw, err := url.Parse(s)
	if err != nil || raw.Scheme == "" {
		return LibvirtURI{}, &URIError{URI: RedactURI(s), Reason: "not a URI: want e.g. qemu:///system or qemu+ssh://user@host/system"}
	}
	u := LibvirtURI{raw: raw, Host: raw.Hostname(), Port: raw.Port()}
	bad := func(format string, a ...any) (LibvirtURI, error) {
		return LibvirtURI{}, &URIError{URI: RedactURI(raw.String()), Reason: fmt.Sprintf(format, a...)}
	}
	driver, transport, _ := strings.Cut(raw.Scheme, "+")
	if driver != "qemu" {
		return bad("driver %q: crashkey drives QEMU guests: use qemu:// or qemu+TRANSPORT://", driver)
	}
	switch transport {
	case "":
		transport = "unix"
		if u.Host != "" {
			transport = "tls" // libvirt's default when a host is given
		}
	case "unix", "tcp", "tls", "ssh":
	case "libssh", "libssh2":
		transport = "ssh"
	case "ext":
		return bad("the ext transport runs an external command: use qemu+ssh:// instead")
	default:
		return bad("unknown transport %q: want unix, tcp, tls or ssh", transport)
	}
	u.Transport = transport
	if raw.User != nil {
		if _, has := raw.User.Password(); has {
			return bad("a password in the URI is not supported (and would end up in shell histories): use keyfile= or an ssh-agent")
		}
		u.User = raw.User.Username()
	}
	switch transport {
	case "unix":
		if u.Host != "" {
			return bad("qemu+unix:// takes no host")
		}
	default:
		if u.Host == "" {
			return bad("qemu+%s:// needs a host (qemu+%s://HOST/system)", transport, transport)
		}
	}
	if u.User != "" && transport != "ssh" {
		return bad("a user name (%s@) is only used by qemu+ssh://", u.User)
	}
	u.Name = "qemu://" + raw.Path
	if raw.Path != "/system" && raw.Path != "/session" {
		return bad("path %q: want /system or /session", raw.Path)
	}
	for k, vs := range raw.Query() {
		v := vs[len(vs)-1]
		only := func(ts ...string) error {
			for _, t := range ts {
				if t == transport {
					return nil
				}
			}
			return &URIError{URI: RedactURI(raw.String()), Reason: fmt.Sprintf("%s= is for qemu+%s:// URIs, not %s", k, strings.Join(ts, "/"), transport)}
		}
		var err error
		switch k {
		case "name":
			u.Name = v
		case "socket":
			u.Socket = v
			err = only("unix", "ssh")
		case "keyfile":
			u.KeyFile = v
			err = only("ssh")
		case "known_hosts":
			u.KnownHosts = v
			err = only("ssh")
		case "known_hosts_verify":
			err = only("ssh")
			switch v {
			case "normal", "":
			case "ignore":
				u.NoVerify = true
			case "auto":
				return bad("known_hosts_verify=auto would accept an unknown host key without asking: crashkey never does; add the host's key to known_hosts (ssh-keyscan), or say no_verify=1 knowingly")
			default:
				return bad("known_hosts_verify=%q: want normal or ignore", v)
			}
		case "no_verify":
			switch v {
			case "0", "":
			case "1":
				u.NoVerify = true
			default:
				return bad("no_verify=%q: want 0 or 1", v)
			}
			err = only("tls", "ssh")
		case "pkipath":
			u.PKIPath = v
			err = only("tls")
		case "no_tty", "sshauth":
			// Accepted for compatibility with virsh URIs: crashkey never prompts and tries the
			// key file, the agent and the default keys.
		case "mode":
			if v != "auto" && v != "legacy" && v != "direct" {
				return bad("mode=%q: want auto, legacy or direct", v)
			}
		case "command", "netcat", "proxy":
			return bad("%s= runs a remote helper; crashkey's SSH client forwards the daemon's socket itself: use socket=PATH for a non-default socket", k)
		default:
			return bad("unknown parameter %s= (known: socket, keyfile, known_hosts, known_hosts_verify, no_verify, pkipath, name)", k)
		}
		if err != nil {
			return LibvirtURI{}, err
		}
	}
	return u, nil
}

// localSocket is the unix socket of a local daemon: socket=, or libvirt's default for
// qemu:///system and, for qemu:///session, under $XDG_RUNTIME_DIR (or ~/.cache).
func (u LibvirtURI) localSocket() string {
	if u.Socket != "" {
		return u.Socket
	}
	if u.raw.Path == "/session" {
		dir := os.Getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			if home, err := os.UserHomeDir(); err == nil {
				dir = filepath.Join(home, ".cache")
			}
		}
		return filepath.Join(dir, "libvirt", "libvirt-sock")
	}
	return "/var/run/libvirt/libvirt-sock"
}

// pkiFiles are the TLS files: pkipath=DIR, else libvirt's defaults (root: /etc/pki, others:
// ~/.pki/libvirt).
func (u LibvirtURI) pkiFiles() (ca, cert, key string) {
	if u.PKIPath != "" {
		return filepath.Join(u.PKIPath, "cacert.pem"), filepath.Join(u.PKIPath, "clientcert.pem"), filepath.Join(u.PKIPath, "clientkey.pem")
	}
	if os.Geteuid() != 0 {
		if home, err := os.UserHomeDir(); err == nil {
			d := filepath.Join(home, ".pki", "libvirt")
			return filepath.Join(d, "cacert.pem"), filepath.Join(d, "clientcert.pem"), filepath.Join(d, "clientkey.pem")
		}
	}
	return "/etc/pki/CA/cacert.pem", "/etc/pki/libvirt/clientcert.pem", "/etc/pki/libvirt/private/clientkey.pem"
}

// IsRemote is true when the daemon is reached over the network (its files are not ours).
func (u LibvirtURI) IsRemote() bool { return u.Transport != "unix" }
