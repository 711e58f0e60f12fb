package qemuboot

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/internal/golden"
)

var testPaths = Paths{QMP: "/run/g/qmp.sock", Agent: "/run/g/qga.sock", Overlay: "/run/g/overlay.qcow2"}

func TestArgs(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		paths Paths
	}{
		{"ps2", Config{Image: "/img/win.qcow2", Accel: "kvm"}, testPaths},
		{"usb-tcg", Config{Image: "/img/win.qcow2", Keyboard: USB, Accel: "tcg", MemoryMiB: 4096, CPUs: 2}, testPaths},
		{"virtio", Config{Image: "/img/win.raw", Keyboard: Virtio, Accel: "kvm", NoReboot: true, ExtraArgs: []string{"-d", "guest_errors"}}, testPaths},
		{"ovmf", Config{Image: "/img/win11.qcow2", Accel: "kvm", MemoryMiB: 4096, OVMF: &OVMF{Code: "/usr/share/OVMF/OVMF_CODE_4M.fd", Vars: "/usr/share/OVMF/OVMF_VARS_4M.fd"}},
			Paths{QMP: testPaths.QMP, Agent: testPaths.Agent, Overlay: testPaths.Overlay, Vars: "/run/g/vars.fd"}},
		{"kernel", Config{Image: "/img/standin.qcow2", Kernel: "/cache/vmlinuz", Initrd: "/cache/initramfs.cpio.gz", Append: "console=ttyS0 crashkey.mode=windows", Accel: "tcg", MemoryMiB: 256, Console: true},
			Paths{QMP: testPaths.QMP, Agent: testPaths.Agent, Overlay: testPaths.Overlay, Console: "/run/g/console.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.withDefaults().validate(); err != nil {
				t.Fatal(err)
			}
			golden.CheckString(t, filepath.Join("testdata", "qemu-"+tt.name+".golden"), strings.Join(Args(tt.cfg, tt.paths), "\n")+"\n")
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no image"},
		{Config{Image: "a", Keyboard: "hyperv"}, `unknown keyboard "hyperv"`},
		{Config{Image: "a", MemoryMiB: 8}, "too small"},
		{Config{Image: "a", CPUs: -1}, "-1 CPUs"},
		{Config{Image: "a", OVMF: &OVMF{Code: "c"}}, "both the code and the vars"},
		{Config{Image: "a", Initrd: "i"}, "needs a kernel"},
		{Config{Image: "a", Accel: "hvf"}, `unknown accelerator "hvf"`},
		{Config{Image: "/img/a,b.qcow2"}, "contains a comma"},
	}
	for _, tt := range tests {
		err := tt.cfg.withDefaults().validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: got %v, want ErrBadConfig with %q", tt.cfg, err, tt.want)
		}
	}
}

func TestParseKeyboard(t *testing.T) {
	for _, s := range []string{"ps2", "USB", " virtio "} {
		if _, err := ParseKeyboard(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseKeyboard("usb-uhci"); err == nil || !strings.Contains(err.Error(), "use ps2, usb or virtio") {
		t.Errorf("usb-uhci: %v", err)
	}
}
