package vm

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzQMPFromCommandLine: any command line (NUL-separated, as /proc/PID/cmdline) gives an
// address or ErrNoSocket, never a panic, and an address is always unix: or tcp:.
func FuzzQMPFromCommandLine(f *testing.F) {
	f.Add("qemu\x00-qmp\x00unix:/run/a.qmp,server=on,wait=off")
	f.Add("qemu\x00-chardev\x00socket,id=m,path=/x,server,nowait\x00-mon\x00chardev=m,mode=control")
	f.Add("qemu\x00--qmp=tcp::4444,server\x00-mon")
	f.Fuzz(func(t *testing.T, cmdline string) {
		addr, err := QMPFromCommandLine(strings.Split(cmdline, "\x00"))
		if err == nil && !strings.HasPrefix(addr, "unix:") && !strings.HasPrefix(addr, "tcp:") {
			t.Fatalf("address %q", addr)
		}
	})
}

// FuzzRedactURI: a URI's password never survives redaction.
func FuzzRedactURI(f *testing.F) {
	f.Add("qemu+ssh://root:hunter2@host/system?keyfile=/k")
	f.Add("qemu+tls://h/system?password=abc&x=1")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactURI(s)
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			return
		}
		if p, ok := u.User.Password(); ok && len(p) >= 4 && p != Redacted && !strings.Contains(Redacted, p) {
			if ru, err := url.Parse(out); err != nil || ru.User == nil {
				t.Fatalf("RedactURI(%q) = %q: no longer a URI with user info", s, out)
			} else if rp, _ := ru.User.Password(); rp == p {
				t.Fatalf("RedactURI(%q) = %q keeps the password", s, out)
			}
		}
	})
}
