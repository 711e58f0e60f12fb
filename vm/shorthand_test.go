package vm

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeRoot builds a file system layout under a fresh directory with real unix sockets at the
// given paths, and plain files at the paths ending in "!file".
func fakeRoot(t *testing.T, paths ...string) string {
	t.Helper()
	root, err := os.MkdirTemp("", "ckroot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	for _, p := range paths {
		file := strings.HasSuffix(p, "!file")
		p = filepath.Join(root, strings.TrimSuffix(p, "!file"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if file {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	return root
}

func noEnv(string) string { return "" }

func TestProxmox(t *testing.T) {
	root := fakeRoot(t, "/var/run/qemu-server/101.qmp", "/var/run/qemu-server/101.qga", "/var/run/qemu-server/102.qmp", "/var/run/qemu-server/103.qmp!file")
	l := Locator{Root: root, Env: noEnv}
	r, err := l.Proxmox("101")
	if err != nil {
		t.Fatal(err)
	}
	if r.QMP != "unix:"+root+"/var/run/qemu-server/101.qmp" || r.Agent != "unix:"+root+"/var/run/qemu-server/101.qga" {
		t.Errorf("101: %+v", r)
	}
	if r, err := l.Proxmox("102"); err != nil || r.Agent != "" {
		t.Errorf("102: %+v %v", r, err)
	}
	for _, id := range []string{"103", "104"} { // a plain file is not a socket
		_, err := l.Proxmox(id)
		if !errors.Is(err, ErrNoSocket) || !strings.Contains(err.Error(), "tried /var/run/qemu-server/"+id+".qmp") {
			t.Errorf("%s: %v", id, err)
		}
	}
	if _, err := l.Proxmox("../etc"); err == nil || errors.Is(err, ErrNoSocket) {
		t.Errorf("bad VMID: %v", err)
	}
	if got := l.ProxmoxVMIDs(); !reflect.DeepEqual(got, []string{"101", "102"}) {
		t.Errorf("VMIDs = %v", got)
	}
}

func TestIncusAndLXD(t *testing.T) {
	root := fakeRoot(t,
		"/var/log/incus/win11/qemu.monitor",
		"/var/log/incus/win10/qemu.monitor", "/var/log/incus/win10/crashkey.qmp",
		"/var/log/incus/ci_win/qemu.monitor",
		"/srv/incus/logs/other/qemu.monitor",
		"/var/snap/lxd/common/lxd/logs/lxdwin/qemu.monitor",
		"/var/log/lxd/debwin/qemu.monitor",
	)
	l := Locator{Root: root, Env: noEnv}
	r, err := l.Incus("win11")
	if err != nil || r.QMP != "unix:"+root+"/var/log/incus/win11/qemu.monitor" || !strings.Contains(r.Warning, "raw.qemu") {
		t.Errorf("win11: %+v %v", r, err)
	}
	r, err = l.Incus("win10")
	if err != nil || r.QMP != "unix:"+root+"/var/log/incus/win10/crashkey.qmp" || r.Warning != "" {
		t.Errorf("win10 (own socket first): %+v %v", r, err)
	}
	if r, err := l.Incus("ci/win"); err != nil || r.QMP != "unix:"+root+"/var/log/incus/ci_win/qemu.monitor" {
		t.Errorf("project: %+v %v", r, err)
	}
	_, err = l.Incus("other")
	if !errors.Is(err, ErrNoSocket) || !strings.Contains(err.Error(), "tried /var/log/incus/other/crashkey.qmp, /var/log/incus/other/qemu.monitor") {
		t.Errorf("other without INCUS_DIR: %v", err)
	}
	l.Env = func(k string) string {
		if k == "INCUS_DIR" {
			return "/srv/incus"
		}
		return ""
	}
	if r, err := l.Incus("other"); err != nil || r.QMP != "unix:"+root+"/srv/incus/logs/other/qemu.monitor" {
		t.Errorf("other with INCUS_DIR: %+v %v", r, err)
	}
	if _, err := l.Incus("bad name"); err == nil || errors.Is(err, ErrNoSocket) {
		t.Errorf("bad name: %v", err)
	}
	l.Env = noEnv
	if r, err := l.LXD("lxdwin"); err != nil || !strings.HasSuffix(r.QMP, "/var/snap/lxd/common/lxd/logs/lxdwin/qemu.monitor") {
		t.Errorf("lxd snap: %+v %v", r, err)
	}
	if r, err := l.LXD("debwin"); err != nil || !strings.HasSuffix(r.QMP, "/var/log/lxd/debwin/qemu.monitor") {
		t.Errorf("lxd deb: %+v %v", r, err)
	}
	if got := l.Instances("incus"); !reflect.DeepEqual(got, []string{"ci/win", "win10", "win11"}) {
		t.Errorf("incus instances = %v", got)
	}
	socks := l.QMPSockets(filepath.Join(root, "nowhere"))
	if len(socks) != 6 || socks[0] != "unix:"+root+"/var/log/incus/ci_win/qemu.monitor" {
		t.Errorf("sockets = %v", socks)
	}
}

func TestQMPFromCommandLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"qemu-system-x86_64", "-m", "4G", "-qmp", "unix:/run/win.qmp,server=on,wait=off"}, "unix:/run/win.qmp"},
		{[]string{"qemu", "-qmp", "unix:/run/old.qmp,server,nowait"}, "unix:/run/old.qmp"},
		{[]string{"qemu", "-qmp=tcp:127.0.0.1:4444,server=on,wait=off"}, "tcp:127.0.0.1:4444"},
		{[]string{"qemu", "-chardev", "socket,id=mon0,path=/run/m.sock,server=on,wait=off", "-mon", "chardev=mon0,mode=control"}, "unix:/run/m.sock"},
		{[]string{"qemu", "-chardev", "socket,id=hmp,path=/run/hmp.sock,server=on,wait=off", "-mon", "chardev=hmp",
			"-chardev", "socket,id=qmp,path=/var/run/qemu-server/101.qmp,server=on,wait=off", "-mon", "chardev=qmp,mode=control"}, "unix:/var/run/qemu-server/101.qmp"},
		{[]string{"qemu", "--chardev", "socket,id=q,host=127.0.0.1,port=5555,server=on,wait=off", "--mon", "chardev=q,mode=control"}, "tcp:127.0.0.1:5555"},
	} {
		got, err := QMPFromCommandLine(tt.args)
		if err != nil || got != tt.want {
			t.Errorf("%q: %q %v, want %q", tt.args, got, err, tt.want)
		}
	}
	for _, args := range [][]string{
		{"qemu", "-monitor", "stdio"},
		{"qemu", "-chardev", "socket,id=h,path=/run/h.sock,server=on,wait=off", "-mon", "chardev=h"}, // HMP
		{"qemu", "-qmp", "unix:/run/client.sock"},                                                    // a client, not a server
		{"qemu", "-chardev", "socket,id=c,path=/run/c.sock", "-mon", "chardev=c,mode=control"},       // client chardev
		{"qemu", "-chardev", "file,id=f,path=/tmp/log", "-mon", "chardev=f,mode=control"},            // not a socket
		{"qemu", "-mon"},
	} {
		if got, err := QMPFromCommandLine(args); !errors.Is(err, ErrNoSocket) {
			t.Errorf("%q: %q %v, want ErrNoSocket", args, got, err)
		}
	}
}

func TestQEMUProcess(t *testing.T) {
	root := fakeRoot(t, "/proc/4242/cmdline!file")
	cmdline := "qemu-system-x86_64\x00-chardev\x00socket,id=m,path=vm.qmp,server=on,wait=off\x00-mon\x00chardev=m,mode=control\x00"
	if err := os.WriteFile(filepath.Join(root, "proc/4242/cmdline"), []byte(cmdline), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/home/admin/vms", filepath.Join(root, "proc/4242/cwd")); err != nil {
		t.Fatal(err)
	}
	l := Locator{Root: root}
	r, err := l.QEMUProcess(4242)
	if err != nil || r.QMP != "unix:/home/admin/vms/vm.qmp" {
		t.Errorf("relative path: %+v %v", r, err)
	}
	if _, err := l.QEMUProcess(1); err == nil || !strings.Contains(err.Error(), "process 1") {
		t.Errorf("missing process: %v", err)
	}
}
