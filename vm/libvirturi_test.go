package vm

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLibvirtURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want LibvirtURI
		err  string
	}{
		{uri: "qemu:///system", want: LibvirtURI{Transport: "unix", Name: "qemu:///system"}},
		{uri: "qemu:///session", want: LibvirtURI{Transport: "unix", Name: "qemu:///session"}},
		{uri: "qemu+unix:///system?socket=/run/libvirt/virtqemud-sock", want: LibvirtURI{Transport: "unix", Name: "qemu:///system", Socket: "/run/libvirt/virtqemud-sock"}},
		{uri: "qemu+tcp://host7/system", want: LibvirtURI{Transport: "tcp", Host: "host7", Name: "qemu:///system"}},
		{uri: "qemu://host7/system", want: LibvirtURI{Transport: "tls", Host: "host7", Name: "qemu:///system"}},
		{uri: "qemu+tls://host7:16515/system?pkipath=/etc/ck&no_verify=1", want: LibvirtURI{Transport: "tls", Host: "host7", Port: "16515", Name: "qemu:///system", PKIPath: "/etc/ck", NoVerify: true}},
		{uri: "qemu+ssh://admin@host7:2222/system?keyfile=/k&known_hosts=/kh&socket=/s", want: LibvirtURI{Transport: "ssh", Host: "host7", Port: "2222", User: "admin", Name: "qemu:///system", KeyFile: "/k", KnownHosts: "/kh", Socket: "/s"}},
		{uri: "qemu+libssh2://h/system?known_hosts_verify=ignore", want: LibvirtURI{Transport: "ssh", Host: "h", Name: "qemu:///system", NoVerify: true}},
		{uri: "qemu+ssh://[::1]:22/system?no_tty=1", want: LibvirtURI{Transport: "ssh", Host: "::1", Port: "22", Name: "qemu:///system"}},
		{uri: "xen:///system", err: "crashkey drives QEMU guests"},
		{uri: "qemu+ssh:///system", err: "needs a host"},
		{uri: "qemu+tcp://h/", err: "want /system or /session"},
		{uri: "qemu+ssh://u:hunter2@h/system", err: "a password in the URI is not supported"},
		{uri: "qemu+ssh://h/system?known_hosts_verify=auto", err: "never does"},
		{uri: "qemu+tcp://h/system?keyfile=/k", err: "keyfile= is for qemu+ssh"},
		{uri: "qemu+ssh://h/system?keyfil=/k", err: "unknown parameter keyfil="},
		{uri: "qemu+ssh://h/system?command=/bin/nc", err: "forwards the daemon's socket itself"},
		{uri: "qemu+tcp://u@h/system", err: "only used by qemu+ssh"},
		{uri: "qemu+foo://h/system", err: "unknown transport"},
		{uri: "not a uri", err: "not a URI"},
	} {
		got, err := ParseLibvirtURI(tc.uri)
		if tc.err != "" {
			var ue *URIError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &ue) {
				t.Errorf("%s: error %v, want a URIError with %q", tc.uri, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: the error shows the password: %v", tc.uri, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.uri, err)
			continue
		}
		got.raw = nil
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.uri, got, tc.want)
		}
	}
}

func TestConnectErrorNamesStepAndFix(t *testing.T) {
	e := &ConnectError{URI: "qemu+tcp://h/system", Step: StepTCP, Err: errors.New("connection refused"), Fix: "listen_tcp = 1"}
	if got := e.Error(); got != "libvirt qemu+tcp://h/system: tcp: connection refused; fix: listen_tcp = 1" {
		t.Errorf("Error() = %q", got)
	}
}

func FuzzParseLibvirtURI(f *testing.F) {
	f.Add("qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k&socket=/s")
	f.Add("qemu+tls://h/system?pkipath=/p&no_verify=1")
	f.Add("qemu:///session")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseLibvirtURI(s)
		if err == nil && u.Transport == "" {
			t.Fatalf("%q: no transport", s)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("%q: empty error", s)
		}
	})
}

func FuzzParseDomainDisks(f *testing.F) {
	f.Add([]byte(`<domain><devices><disk type='file' device='disk'><source file='/a'/><target dev='vda'/></disk></devices></domain>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		disks, err := ParseDomainDisks(b)
		if err == nil {
			for _, d := range disks {
				if d.Device == "" {
					t.Fatal("empty device")
				}
			}
		}
	})
}

// TestDialLocalErrors: a local daemon that does not answer is named by its socket, for
// qemu:///session under $XDG_RUNTIME_DIR.
func TestDialLocalErrors(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	_, err := DialLibvirt(t.Context(), "qemu:///session", "win11", Options{})
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Step != StepUnix || !strings.Contains(err.Error(), dir+"/libvirt/libvirt-sock") || !strings.Contains(ce.Fix, "session daemon") {
		t.Errorf("session: %v", err)
	}
	_, err = DialLibvirt(t.Context(), "qemu:///system?socket="+dir+"/virtqemud-sock", "win11", Options{})
	if !errors.As(err, &ce) || ce.Step != StepUnix || !strings.Contains(ce.Fix, "virtqemud-sock") {
		t.Errorf("system: %v", err)
	}
}
