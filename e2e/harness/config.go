package harness

import (
	"fmt"
	"io"
	"strings"
)

// Keyboard is an extra keyboard device. The i8042 PS/2 keyboard is built into the pc and q35
// machines and is always there; QEMU sends injected keys to the most recently added keyboard, so
// with a USB or virtio keyboard present the PS/2 port receives nothing.
type Keyboard string

// Keyboards the guest can record.
const (
	// PS2 is the built-in i8042 keyboard alone (listing it is the same as listing nothing).
	PS2 Keyboard = "ps2"
	// USBXHCI is a usb-kbd on a qemu-xhci controller.
	USBXHCI Keyboard = "usb-xhci"
	// USBUHCI is a usb-kbd on a UHCI controller (piix3-usb-uhci on pc, ich9-usb-uhci1 on q35).
	USBUHCI Keyboard = "usb-uhci"
	// USBEHCI is a usb-kbd on a usb-ehci controller.
	USBEHCI Keyboard = "usb-ehci"
	// Virtio is a virtio-keyboard-pci (read through evdev in the guest).
	Virtio Keyboard = "virtio"
)

// IsUSB reports whether k is a USB keyboard.
func (k Keyboard) IsUSB() bool { return strings.HasPrefix(string(k), "usb-") }

// Disk is a disk image attached to the guest as a virtio block device (/dev/vda, vdb, … in
// attach order).
type Disk struct {
	// Path is the image file.
	Path string
	// Format is the QEMU image format ("raw", "qcow2", …; default "raw").
	Format string
	// ReadOnly attaches the image read-only.
	ReadOnly bool
}

// Config describes one guest. Only Artifacts is required.
type Config struct {
	// Artifacts are the kernel and initramfs from Build.
	Artifacts *Artifacts
	// Keyboards are the keyboards besides the built-in PS/2 one. The guest's "ready" waits for
	// all of them.
	Keyboards []Keyboard
	// PVPanic adds an ISA pvpanic device (QEMU -device pvpanic, libvirt <panic model='isa'/>).
	PVPanic bool
	// PanicAction is QEMU's -action panic= value ("none", "pause", "shutdown", "exit-failure");
	// empty keeps QEMU's default (shutdown: GUEST_PANICKED "poweroff" and QEMU exits). Ignored
	// by StartLibvirt, where LibvirtOptions.OnCrash decides.
	PanicAction string
	// PanicOnNMI makes an NMI panic the guest kernel (sysctl kernel.unknown_nmi_panic=1).
	PanicOnNMI bool
	// Disks are attached in order as virtio block devices.
	Disks []Disk
	// VMCoreInfo adds QEMU's vmcoreinfo device (-device vmcoreinfo, libvirt
	// <vmcoreinfo state='on'/>), through which a guest publishes its dump header.
	VMCoreInfo bool
	// PublishHeader makes the guest publish a Windows dump header through the vmcoreinfo device
	// at boot (crashkey.vmcoreinfo=1, with one huge page reserved for it), as virtio-win's FwCfg
	// driver does, so that dump-guest-memory can write a win-dmp dump.
	PublishHeader bool
	// LinuxNoteFirst makes the guest first publish a Linux-style VMCOREINFO note, as Linux's
	// qemu_fw_cfg driver does when it loads, and then its Windows header over it.
	LinuxNoteFirst bool
	// Ignore makes a windows-mode guest hang: "keys" ignores the keyboard, "nmi" NMIs
	// (crashkey.ignore=).
	Ignore []string
	// Mode is the guest /init's crashkey.mode (default "recorder").
	Mode string
	// Append is added to the kernel command line.
	Append string
	// MemoryMiB is the guest RAM (default 256).
	MemoryMiB int
	// Machine is the QEMU machine type (default "pc").
	Machine string
	// Accel is the QEMU accelerator (default "tcg"; "kvm" where /dev/kvm works).
	Accel string
	// AllowReboot keeps QEMU running when the guest reboots (default: -no-reboot, QEMU exits).
	AllowReboot bool
	// Agent adds the guest agent's channel as Windows guests have it: a virtio-serial port
	// named org.qemu.guest_agent.0 behind the socket Guest.AgentAddr names (libvirt: a unix
	// <channel> of that name whose socket libvirtd picks and uses itself: reach the agent
	// through libvirt). The guest /init runs Debian's qemu-ga (packed into the initramfs by
	// Build) on it.
	Agent bool
	// QEMU is the emulator binary (default "qemu-system-x86_64").
	QEMU string
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
	// Dir is the working directory for sockets and logs. Default: a new temporary directory,
	// removed by Stop. A caller-provided Dir is left in place.
	Dir string
	// Stderr receives QEMU's own standard error (default: kept in Dir/qemu.stderr only).
	Stderr io.Writer
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = "recorder"
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 256
	}
	if c.Machine == "" {
		c.Machine = "pc"
	}
	if c.Accel == "" {
		c.Accel = "tcg"
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	return c
}

func (c Config) validate() error {
	if c.Artifacts == nil || c.Artifacts.Kernel == "" || c.Artifacts.Initramfs == "" {
		return fmt.Errorf("config: no kernel/initramfs: set Config.Artifacts from harness.Build")
	}
	seen := map[Keyboard]bool{}
	for _, k := range c.Keyboards {
		switch k {
		case PS2, USBXHCI, USBUHCI, USBEHCI, Virtio:
		default:
			return fmt.Errorf("config: unknown keyboard %q (want %s, %s, %s, %s or %s)", k, PS2, USBXHCI, USBUHCI, USBEHCI, Virtio)
		}
		if seen[k] {
			return fmt.Errorf("config: keyboard %q listed twice", k)
		}
		seen[k] = true
	}
	switch c.PanicAction {
	case "", "none", "pause", "shutdown", "exit-failure":
	default:
		return fmt.Errorf("config: unknown panic action %q (want none, pause, shutdown or exit-failure)", c.PanicAction)
	}
	for _, d := range c.Disks {
		if d.Path == "" {
			return fmt.Errorf("config: disk without a path")
		}
		if strings.Contains(d.Path, ",") {
			return fmt.Errorf("config: disk path %q contains a comma, which QEMU's -drive cannot take", d.Path)
		}
	}
	if strings.ContainsAny(c.Mode, " \t\n") {
		return fmt.Errorf("config: mode %q contains white space", c.Mode)
	}
	return nil
}

// expect is the guest's crashkey.expect list for c's keyboards.
func (c Config) expect() string {
	kinds := []string{"ps2"}
	usb, virtio := false, false
	for _, k := range c.Keyboards {
		switch {
		case k.IsUSB():
			usb = true
		case k == Virtio:
			virtio = true
		}
	}
	if usb {
		kinds = append(kinds, "usb")
	}
	if virtio {
		kinds = append(kinds, "virtio")
	}
	return strings.Join(kinds, ",")
}

// KernelCmdline is the command line the guest boots with: kernel messages on ttyS0, the guest
// /init's parameters, then Config.Append.
func (c Config) KernelCmdline() string {
	c = c.withDefaults()
	parts := []string{"console=ttyS0", "crashkey.mode=" + c.Mode, "crashkey.expect=" + c.expect()}
	if c.PanicOnNMI {
		parts = append(parts, "crashkey.panic_on_nmi=1")
	}
	if c.PublishHeader {
		v := "1"
		if c.LinuxNoteFirst {
			v = "linux-first"
		}
		parts = append(parts, "crashkey.vmcoreinfo="+v, "hugepages=1")
	}
	if len(c.Ignore) > 0 {
		parts = append(parts, "crashkey.ignore="+strings.Join(c.Ignore, ","))
	}
	if s := strings.TrimSpace(c.Append); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// Paths are the files a running guest uses.
type Paths struct {
	// QMP is the QMP unix socket.
	QMP string
	// Console is the file behind ttyS0 (kernel messages).
	Console string
	// Data is the file behind ttyS1 (the recorder's observation lines).
	Data string
	// Agent is the guest agent channel's socket (with Config.Agent; not for libvirt domains).
	Agent string
}

// QEMUArgs returns QEMU's arguments (without the binary) for c with the given paths.
func (c Config) QEMUArgs(p Paths) []string {
	c = c.withDefaults()
	a := []string{
		"-nodefaults", "-no-user-config",
		"-machine", c.Machine + ",accel=" + c.Accel,
		"-m", fmt.Sprint(c.MemoryMiB), "-smp", "1",
		"-display", "none",
		"-kernel", c.Artifacts.Kernel,
		"-initrd", c.Artifacts.Initramfs,
		"-append", c.KernelCmdline(),
		"-serial", "file:" + p.Console,
		"-serial", "file:" + p.Data,
		"-qmp", "unix:" + p.QMP + ",server=on,wait=off",
	}
	if c.Agent {
		a = append(a, "-chardev", "socket,id=qga0,path="+p.Agent+",server=on,wait=off",
			"-device", "virtio-serial-pci,id=vser0",
			"-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0")
	}
	if !c.AllowReboot {
		a = append(a, "-no-reboot")
	}
	for i, k := range c.Keyboards {
		id := fmt.Sprintf("usb%d", i)
		switch k {
		case USBXHCI:
			a = append(a, "-device", "qemu-xhci,id="+id, "-device", "usb-kbd,bus="+id+".0")
		case USBUHCI:
			ctrl := "piix3-usb-uhci"
			if strings.HasPrefix(c.Machine, "q35") {
				ctrl = "ich9-usb-uhci1"
			}
			a = append(a, "-device", ctrl+",id="+id, "-device", "usb-kbd,bus="+id+".0")
		case USBEHCI:
			a = append(a, "-device", "usb-ehci,id="+id, "-device", "usb-kbd,bus="+id+".0")
		case Virtio:
			a = append(a, "-device", "virtio-keyboard-pci")
		}
	}
	if c.PVPanic {
		a = append(a, "-device", "pvpanic")
	}
	if c.VMCoreInfo {
		a = append(a, "-device", "vmcoreinfo")
	}
	if c.PanicAction != "" {
		a = append(a, "-action", "panic="+c.PanicAction)
	}
	for i, d := range c.Disks {
		f := d.Format
		if f == "" {
			f = "raw"
		}
		opt := fmt.Sprintf("file=%s,format=%s,if=none,id=disk%d", d.Path, f, i)
		if d.ReadOnly {
			opt += ",readonly=on"
		}
		a = append(a, "-drive", opt, "-device", fmt.Sprintf("virtio-blk-pci,drive=disk%d", i))
	}
	return append(a, c.ExtraArgs...)
}
