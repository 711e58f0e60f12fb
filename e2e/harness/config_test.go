package harness

import (
	"path/filepath"
	"strings"
	"testing"

	gold "github.com/crashkey/crashkey/internal/golden"
)

func golden(t *testing.T, name, got string) {
	t.Helper()
	gold.CheckString(t, filepath.Join("testdata", name+".golden"), got)
}

var testArt = &Artifacts{Kernel: "/cache/vmlinuz", Initramfs: "/cache/initramfs.cpio.gz"}

var testPaths = Paths{QMP: "/run/g/qmp.sock", Console: "/run/g/console.log", Data: "/run/g/data.log", Agent: "/run/g/qga.sock"}

func TestQEMUArgs(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"ps2", Config{}},
		{"usb-xhci", Config{Keyboards: []Keyboard{USBXHCI}}},
		{"usb-uhci-q35", Config{Keyboards: []Keyboard{USBUHCI}, Machine: "q35"}},
		{"all-keyboards", Config{Keyboards: []Keyboard{PS2, USBXHCI, USBUHCI, USBEHCI, Virtio}}},
		{"pvpanic-none", Config{PVPanic: true, PanicAction: "none", PanicOnNMI: true}},
		{"agent", Config{Agent: true, AllowReboot: true}},
		{"hung-vmcoreinfo", Config{Mode: "windows", VMCoreInfo: true, PublishHeader: true, Ignore: []string{"keys", "nmi"}}},
		{"disks-mode", Config{Mode: "windows", Append: "crashkey.x=1", MemoryMiB: 512, AllowReboot: true,
			Disks:     []Disk{{Path: "/img/win.qcow2", Format: "qcow2"}, {Path: "/img/hive.raw", ReadOnly: true}},
			ExtraArgs: []string{"-d", "guest_errors"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Artifacts = testArt
			if err := cfg.withDefaults().validate(); err != nil {
				t.Fatal(err)
			}
			golden(t, "qemu-"+tt.name, strings.Join(cfg.QEMUArgs(testPaths), "\n")+"\n")
		})
	}
}

func TestKernelCmdline(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "console=ttyS0 crashkey.mode=recorder crashkey.expect=ps2"},
		{Config{Keyboards: []Keyboard{USBXHCI, USBUHCI}}, "console=ttyS0 crashkey.mode=recorder crashkey.expect=ps2,usb"},
		{Config{Keyboards: []Keyboard{Virtio, USBEHCI}, PanicOnNMI: true, Append: " panic=-1 "},
			"console=ttyS0 crashkey.mode=recorder crashkey.expect=ps2,usb,virtio crashkey.panic_on_nmi=1 panic=-1"},
		{Config{Mode: "windows"}, "console=ttyS0 crashkey.mode=windows crashkey.expect=ps2"},
		{Config{PublishHeader: true, LinuxNoteFirst: true, Ignore: []string{"keys"}},
			"console=ttyS0 crashkey.mode=recorder crashkey.expect=ps2 crashkey.vmcoreinfo=linux-first hugepages=1 crashkey.ignore=keys"},
	}
	for _, tt := range tests {
		if got := tt.cfg.KernelCmdline(); got != tt.want {
			t.Errorf("KernelCmdline(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no artifacts", Config{}, "no kernel/initramfs"},
		{"unknown keyboard", Config{Artifacts: testArt, Keyboards: []Keyboard{"usb-ohci"}}, `unknown keyboard "usb-ohci"`},
		{"duplicate keyboard", Config{Artifacts: testArt, Keyboards: []Keyboard{Virtio, Virtio}}, "listed twice"},
		{"bad panic action", Config{Artifacts: testArt, PanicAction: "poweroff"}, `unknown panic action "poweroff"`},
		{"disk without path", Config{Artifacts: testArt, Disks: []Disk{{}}}, "disk without a path"},
		{"disk with comma", Config{Artifacts: testArt, Disks: []Disk{{Path: "/a,b"}}}, "comma"},
		{"mode with space", Config{Artifacts: testArt, Mode: "a b"}, "white space"},
		{"ok", Config{Artifacts: testArt, Keyboards: []Keyboard{USBUHCI, Virtio}, PanicAction: "none"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.withDefaults().validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDomainXML(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		opts    LibvirtOptions
		wantErr string
	}{
		{name: "ps2-pvpanic", cfg: Config{PVPanic: true}},
		{name: "usb-virtio-disks", cfg: Config{Keyboards: []Keyboard{USBXHCI, Virtio}, PanicOnNMI: true,
			Disks:  []Disk{{Path: "/img/a&b.qcow2", Format: "qcow2"}, {Path: "/img/c.raw", ReadOnly: true}},
			Append: "x='<y>'"}, opts: LibvirtOptions{OnCrash: "destroy", Emulator: "/opt/qemu"}},
		{name: "uhci-q35", cfg: Config{Keyboards: []Keyboard{USBUHCI}, Machine: "q35"}},
		{name: "vmcoreinfo", cfg: Config{VMCoreInfo: true, PublishHeader: true}},
		{name: "agent", cfg: Config{Agent: true, AllowReboot: true}},
		{name: "two usb", cfg: Config{Keyboards: []Keyboard{USBXHCI, USBUHCI}}, wantErr: "more than one USB keyboard"},
		{name: "kvm", cfg: Config{Accel: "kvm"}, wantErr: "type='qemu'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Artifacts = testArt
			x, err := DomainXML(cfg, "crashkey-e2e-test", testPaths, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "domain-"+tt.name, x)
		})
	}
}
