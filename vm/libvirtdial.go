package vm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Step names the stage of reaching a libvirt domain that failed.
type Step string

// The steps of DialLibvirt, in order.
const (
	StepDNS         Step = "dns"          // resolving the host name
	StepTCP         Step = "tcp"          // the TCP connection (sshd, libvirtd's tcp or tls port)
	StepUnix        Step = "unix socket"  // a local daemon's socket
	StepSSHHostKey  Step = "ssh host key" // the server's host key against known_hosts
	StepSSHAuth     Step = "ssh auth"     // public-key authentication
	StepSSH         Step = "ssh"          // the rest of the SSH handshake
	StepSSHSocket   Step = "ssh socket"   // forwarding to the daemon's unix socket on the host
	StepTLSConfig   Step = "tls config"   // reading the CA, client certificate and key
	StepTLSVerify   Step = "tls verify"   // the TLS handshake and certificate checks
	StepLibvirtAuth Step = "libvirt auth" // the daemon's authentication and opening the driver
	StepDomain      Step = "domain"       // looking up the domain by name
)

// ConnectError says which step of connecting to libvirt failed, why, and how to fix it. It
// never holds a secret: the URI is shown without a password and keys only by fingerprint.
type ConnectError struct {
	URI  string
	Step Step
	Err  error
	Fix  string
}

func (e *ConnectError) Error() string {
	s := fmt.Sprintf("libvirt %s: %s: %v", e.URI, e.Step, e.Err)
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s
}

func (e *ConnectError) Unwrap() error { return e.Err }

// byteCounter counts the bytes a connection received.
type byteCounter struct{ n atomic.Int64 }

type countingConn struct {
	net.Conn
	c       *byteCounter
	onClose func()
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	err := c.Conn.Close()
	if c.onClose != nil {
		c.onClose()
	}
	return err
}

// dialLibvirt reaches the daemon u names and opens its driver; every failure is a
// *ConnectError naming the step.
func dialLibvirt(ctx context.Context, u LibvirtURI, rx *byteCounter) (*libvirt.Libvirt, error) {
	conn, err := dialTransport(ctx, u)
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: conn, c: rx}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	l := libvirt.NewWithDialer(dialers.NewAlreadyConnected(cc))
	if err := l.ConnectToURI(libvirt.ConnectURI(u.Name)); err != nil {
		conn.Close()
		return nil, openError(u, err)
	}
	_ = conn.SetDeadline(timeZero)
	return l, nil
}

func openError(u LibvirtURI, err error) error {
	e := &ConnectError{URI: u.String(), Step: StepLibvirtAuth, Err: err}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "remote error: tls:"):
		e.Step = StepTLSVerify
		e.Fix = "the daemon refused the client certificate: clientcert.pem must be signed by the CA in the daemon's ca_file and its name allowed by tls_allowed_dn_list"
	case strings.Contains(msg, "authentication") || strings.Contains(msg, "auth"):
		e.Fix = "the daemon asks for an authentication crashkey does not speak (SASL or polkit): allow this client with auth_" + u.Transport + ` = "none" (tcp only on trusted networks), or connect over qemu+ssh:// as a user allowed on the daemon's unix socket`
	case strings.Contains(msg, "no connection driver") || strings.Contains(msg, "no driver"):
		e.Fix = "the daemon has no QEMU driver: install libvirt-daemon-driver-qemu on the host"
	default:
		e.Fix = "check that the daemon runs and the URI names its driver (" + u.Name + ")"
	}
	return e
}

func dialTransport(ctx context.Context, u LibvirtURI) (net.Conn, error) {
	switch u.Transport {
	case "unix":
		return dialUnix(ctx, u)
	case "tcp":
		return dialTCP(ctx, u, "16509", `libvirtd must listen for TCP: listen_tcp = 1 in libvirtd.conf and libvirtd --listen (or virtproxyd-tcp.socket), and the port must match the URI`)
	case "tls":
		return dialTLS(ctx, u)
	case "ssh":
		return dialSSH(ctx, u)
	}
	return nil, &URIError{URI: u.String(), Reason: "unknown transport " + u.Transport}
}

func dialUnix(ctx context.Context, u LibvirtURI) (net.Conn, error) {
	path := u.localSocket()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		return conn, nil
	}
	e := &ConnectError{URI: u.String(), Step: StepUnix, Err: err}
	switch {
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		e.Fix = fmt.Sprintf("no libvirtd answers at %s: start libvirtd (for modular daemons give socket=/run/libvirt/virtqemud-sock)", path)
		if u.raw.Path == "/session" {
			e.Fix = fmt.Sprintf("no session daemon answers at %s: start one (libvirtd --daemon --timeout 120 as this user) or use qemu:///system", path)
		}
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		e.Fix = fmt.Sprintf("no permission on %s: run as root or as a user in the group allowed by unix_sock_group (usually libvirt)", path)
	}
	return nil, e
}

// dialTCP resolves the host and connects; the errors tell DNS from TCP failures.
func dialTCP(ctx context.Context, u LibvirtURI, defPort, tcpFix string) (net.Conn, error) {
	port := u.Port
	if port == "" {
		port = defPort
	}
	host := u.Host
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		var err error
		addrs, err = net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return nil, &ConnectError{URI: u.String(), Step: StepDNS, Err: err,
				Fix: fmt.Sprintf("check the host name %q in the URI (or use its IP address)", host)}
		}
	}
	var d net.Dialer
	var errs []error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a, port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &ConnectError{URI: u.String(), Step: StepTCP, Err: errors.Join(errs...), Fix: tcpFix}
}

func dialTLS(ctx context.Context, u LibvirtURI) (net.Conn, error) {
	caFile, certFile, keyFile := u.pkiFiles()
	cfgErr := func(err error) error {
		return &ConnectError{URI: u.String(), Step: StepTLSConfig, Err: err,
			Fix: "pkipath=DIR must hold cacert.pem (the CA that signed the daemon's certificate), clientcert.pem and clientkey.pem (default /etc/pki/CA and /etc/pki/libvirt for root, ~/.pki/libvirt otherwise)"}
	}
	cfg := &tls.Config{ServerName: u.Host, MinVersion: tls.VersionTLS12}
	if !u.NoVerify {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, cfgErr(err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, cfgErr(fmt.Errorf("%s: no PEM certificate", caFile))
		}
	} else {
		slog.Warn("libvirt: no_verify=1: the daemon's certificate is not checked", "uri", u.String())
		cfg.InsecureSkipVerify = true
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, cfgErr(fmt.Errorf("client certificate %s and key %s: %w", certFile, keyFile, err))
	}
	cfg.Certificates = []tls.Certificate{cert}
	raw, err := dialTCP(ctx, u, "16514", `libvirtd must listen for TLS: listen_tls = 1 in libvirtd.conf and libvirtd --listen (or virtproxyd-tls.socket), and the port must match the URI`)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		e := &ConnectError{URI: u.String(), Step: StepTLSVerify, Err: err}
		var unk x509.UnknownAuthorityError
		var host x509.HostnameError
		var inv x509.CertificateInvalidError
		switch {
		case errors.As(err, &unk):
			e.Fix = fmt.Sprintf("the daemon's certificate is not signed by the CA in %s: copy the CA that signed its servercert.pem there (or no_verify=1 to skip the check, which allows interception)", caFile)
		case errors.As(err, &host):
			e.Fix = fmt.Sprintf("the daemon's certificate is not valid for %q: connect by a name or address it holds (subjectAltName), or reissue it", u.Host)
		case errors.As(err, &inv):
			e.Fix = "the daemon's certificate is expired or not a server certificate: reissue it"
		case strings.Contains(err.Error(), "remote error"):
			e.Fix = "the daemon refused the client certificate: clientcert.pem must be signed by the CA in the daemon's ca_file and its name allowed by tls_allowed_dn_list"
		default:
			e.Fix = "is it a libvirtd TLS port?"
		}
		return nil, e
	}
	// After the handshake libvirtd writes one byte: 1 when its own check of the client's
	// certificate (CA, tls_allowed_dn_list) passed.
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(d)
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil || b[0] != 1 {
		conn.Close()
		if err == nil {
			err = fmt.Errorf("the daemon answered %#x after the handshake", b[0])
		}
		return nil, &ConnectError{URI: u.String(), Step: StepTLSVerify, Err: fmt.Errorf("the daemon refused the client certificate %s: %w", certFile, err),
			Fix: "clientcert.pem must be signed by the CA in the daemon's ca_file and its name allowed by tls_allowed_dn_list (see the daemon's log)"}
	}
	_ = conn.SetReadDeadline(timeZero)
	return conn, nil
}

// dialSSH opens an SSH session with golang.org/x/crypto/ssh and forwards a stream to the
// daemon's unix socket on the host (what libvirt's qemu+ssh does with nc or virt-ssh-helper).
// The host key is checked against known_hosts= (default ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts) and an unknown or changed key is refused with its fingerprint;
// only no_verify=1 skips the check.
func dialSSH(ctx context.Context, u LibvirtURI) (net.Conn, error) {
	username := u.User
	if username == "" {
		cu, err := user.Current()
		if err != nil {
			return nil, &URIError{URI: u.String(), Reason: "no user in the URI and the current user is unknown: write qemu+ssh://USER@HOST/system"}
		}
		username = cu.Username
	}
	socketPath := u.Socket
	if socketPath == "" {
		if u.raw.Path == "/session" {
			return nil, &URIError{URI: u.String(), Reason: "qemu+ssh://…/session needs socket=PATH of the remote user's session daemon (usually /run/user/UID/libvirt/libvirt-sock)"}
		}
		socketPath = "/var/run/libvirt/libvirt-sock"
	}
	auths, signerNames, closeAgent, err := sshAuth(u)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	port := u.Port
	if port == "" {
		port = "22"
	}
	hostport := net.JoinHostPort(u.Host, port)
	hkc, algos, err := hostKeyCheck(u, hostport)
	if err != nil {
		return nil, err
	}
	raw, err := dialTCP(ctx, u, "22", fmt.Sprintf("is sshd running on %s and listening on port %s? (the port goes in the URI: qemu+ssh://user@host:PORT/system)", u.Host, port))
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(d)
	}
	cfg := &ssh.ClientConfig{User: username, Auth: auths, HostKeyCallback: hkc.callback, HostKeyAlgorithms: algos}
	sc, chans, reqs, err := ssh.NewClientConn(raw, hostport, cfg)
	if err != nil {
		raw.Close()
		if hkc.err != nil {
			return nil, hkc.err
		}
		e := &ConnectError{URI: u.String(), Step: StepSSH, Err: err}
		if strings.Contains(err.Error(), "unable to authenticate") {
			e.Step = StepSSHAuth
			e.Fix = fmt.Sprintf("the server accepted none of the keys tried for user %s (%s): add the public key to ~%s/.ssh/authorized_keys on %s, or give the right one with keyfile=PATH", username, strings.Join(signerNames, ", "), username, u.Host)
			if len(signerNames) == 0 {
				e.Fix = "no SSH key to offer: give keyfile=PATH, start an ssh-agent with the key (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519"
			}
		} else {
			e.Fix = fmt.Sprintf("is %s an SSH server?", hostport)
		}
		return nil, e
	}
	_ = raw.SetDeadline(timeZero)
	client := ssh.NewClient(sc, chans, reqs)
	conn, err := client.Dial("unix", socketPath)
	if err != nil {
		client.Close()
		return nil, &ConnectError{URI: u.String(), Step: StepSSHSocket, Err: err,
			Fix: fmt.Sprintf("is libvirtd running on %s with its socket at %s (socket=PATH; modular daemons: /run/libvirt/virtqemud-sock), and does sshd allow forwarding to it (AllowStreamLocalForwarding yes, AllowTcpForwarding yes)?", u.Host, socketPath)}
	}
	return &countingConn{Conn: conn, c: &byteCounter{}, onClose: func() { client.Close() }}, nil
}

// sshAuth is the public-key authentication: keyfile= alone when given, else the ssh-agent
// and the default keys in ~/.ssh.
func sshAuth(u LibvirtURI) ([]ssh.AuthMethod, []string, func(), error) {
	var signers []ssh.Signer
	var names []string
	closeAgent := func() {}
	keyErr := func(path string, err error, fix string) error {
		return &ConnectError{URI: u.String(), Step: StepSSHAuth, Err: fmt.Errorf("key %s: %w", path, err), Fix: fix}
	}
	load := func(path string, required bool) error {
		b, err := os.ReadFile(path)
		if err != nil {
			if required {
				return keyErr(path, err, "keyfile= must name a readable private key")
			}
			return nil
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				if required {
					return keyErr(path, errors.New("the key is protected by a passphrase"), "load it into an ssh-agent (ssh-add "+path+") and leave keyfile= out")
				}
				return nil
			}
			if required {
				return keyErr(path, err, "keyfile= must name an OpenSSH or PEM private key")
			}
			return nil
		}
		signers = append(signers, s)
		names = append(names, path+" "+ssh.FingerprintSHA256(s.PublicKey()))
		return nil
	}
	if u.KeyFile != "" {
		if err := load(u.KeyFile, true); err != nil {
			return nil, nil, closeAgent, err
		}
	} else {
		if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
			if c, err := net.Dial("unix", sock); err == nil {
				closeAgent = func() { c.Close() }
				if as, err := sshagent.NewClient(c).Signers(); err == nil {
					for _, s := range as {
						signers = append(signers, s)
						names = append(names, "agent "+ssh.FingerprintSHA256(s.PublicKey()))
					}
				}
			}
		}
		if home, err := os.UserHomeDir(); err == nil {
			for _, k := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				_ = load(filepath.Join(home, ".ssh", k), false)
			}
		}
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, names, closeAgent, nil
}

// hostKeyChecker remembers why it refused a key, so the handshake's error can be replaced by
// one that says what to do.
type hostKeyChecker struct {
	callback ssh.HostKeyCallback
	err      *ConnectError
}

func hostKeyCheck(u LibvirtURI, hostport string) (*hostKeyChecker, []string, error) {
	h := &hostKeyChecker{}
	if u.NoVerify {
		slog.Warn("libvirt: no_verify=1: the SSH host key is not checked", "uri", u.String())
		h.callback = ssh.InsecureIgnoreHostKey()
		return h, nil, nil
	}
	var files []string
	if u.KnownHosts != "" {
		if _, err := os.Stat(u.KnownHosts); err != nil {
			return nil, nil, &ConnectError{URI: u.String(), Step: StepSSHHostKey, Err: err, Fix: "known_hosts= must name a readable known_hosts file"}
		}
		files = []string{u.KnownHosts}
	} else {
		if home, err := os.UserHomeDir(); err == nil {
			files = append(files, filepath.Join(home, ".ssh", "known_hosts"))
		}
		files = append(files, "/etc/ssh/ssh_known_hosts")
	}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	port := u.Port
	if port == "" {
		port = "22"
	}
	scan := fmt.Sprintf("ssh-keyscan -p %s %s", port, u.Host)
	knownFile := files[0]
	var check ssh.HostKeyCallback
	if len(existing) > 0 {
		var err error
		check, err = knownhosts.New(existing...)
		if err != nil {
			return nil, nil, &ConnectError{URI: u.String(), Step: StepSSHHostKey, Err: err, Fix: "fix or remove the malformed line of the known_hosts file"}
		}
	}
	h.callback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		fp := ssh.FingerprintSHA256(key)
		if check == nil {
			h.err = &ConnectError{URI: u.String(), Step: StepSSHHostKey,
				Err: fmt.Errorf("no known_hosts file (%s) to check the host key %s %s of %s against", strings.Join(files, ", "), key.Type(), fp, hostport),
				Fix: fmt.Sprintf("compare %s with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on it), then: %s >> %s (or known_hosts=FILE)", fp, scan, knownFile)}
			return h.err
		}
		err := check(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			h.err = &ConnectError{URI: u.String(), Step: StepSSHHostKey,
				Err: fmt.Errorf("host %s is not in %s (it offered %s %s)", hostport, strings.Join(existing, ", "), key.Type(), fp),
				Fix: fmt.Sprintf("compare %s with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on it), then: %s >> %s", fp, scan, existing[0])}
		} else if ke != nil {
			w := ke.Want[0]
			h.err = &ConnectError{URI: u.String(), Step: StepSSHHostKey,
				Err: fmt.Errorf("HOST KEY MISMATCH for %s: it offered %s %s, but %s:%d has %s %s: someone may be intercepting the connection, or the host was reinstalled", hostport, key.Type(), fp, w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)),
				Fix: fmt.Sprintf("if the change is known to be genuine: ssh-keygen -R '[%s]:%s' -f %s, then add the new key (%s)", u.Host, port, w.Filename, scan)}
		} else {
			h.err = &ConnectError{URI: u.String(), Step: StepSSHHostKey, Err: err, Fix: "check the known_hosts file"}
		}
		return h.err
	}
	return h, hostKeyAlgorithms(check, hostport), nil
}

// hostKeyAlgorithms are the key types known_hosts holds for hostport, so that the server is
// asked for a key that can be checked (Go's default order might pick another type the host
// also has, which would look like a changed key).
func hostKeyAlgorithms(check ssh.HostKeyCallback, hostport string) []string {
	if check == nil {
		return nil
	}
	err := check(hostport, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		t := w.Key.Type()
		var add []string
		if t == ssh.KeyAlgoRSA {
			add = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		} else {
			add = []string{t}
		}
		for _, a := range add {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// probeKey is a key no known_hosts line holds.
type probeKey struct{}

func (probeKey) Type() string                                 { return "crashkey-probe" }
func (probeKey) Marshal() []byte                              { return []byte("crashkey-probe") }
func (probeKey) Verify(data []byte, sig *ssh.Signature) error { return errors.New("probe") }

var timeZero time.Time
