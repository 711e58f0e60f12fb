package qemuboot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Keyboard is the guest's keyboard. The i8042 PS/2 keyboard is built into the pc and q35
// machines; QEMU sends injected keys to the most recently added keyboard, so a USB or virtio
// keyboard takes them over.
type Keyboard string

// The keyboards (what Windows drives them with: i8042prt, kbdhid, vioinput + kbdhid).
const (
	PS2    Keyboard = "ps2"    // the built-in i8042 keyboard
	USB    Keyboard = "usb"    // a usb-kbd on a qemu-xhci controller
	Virtio Keyboard = "virtio" // a virtio-keyboard-pci
)

// Keyboards lists the keyboards in the order they are usually tried.
var Keyboards = []Keyboard{PS2, USB, Virtio}

// ParseKeyboard reads "ps2", "usb" or "virtio" (case does not matter).
func ParseKeyboard(s string) (Keyboard, error) {
	k := Keyboard(strings.ToLower(strings.TrimSpace(s)))
	switch k {
	case PS2, USB, Virtio:
		return k, nil
	}
	return "", fmt.Errorf("unknown keyboard %q: use ps2, usb or virtio", s)
}

// OVMF is UEFI firmware as two pflash images: the code (attached read-only) and a variable
// store template (copied; the guest writes only the copy).
type OVMF struct {
	Code, Vars string
}

// Config describes one guest. Only Image (or Kernel) is required.
type Config struct {
	// QEMU is the emulator (default "qemu-system-x86_64"); QEMUImg is qemu-img (default
	// "qemu-img").
	QEMU, QEMUImg string
	// Image is the guest's disk image (raw, qcow2, or anything qemu-img reads). The guest
	// boots a qcow2 overlay of it as a virtio block device (Windows needs virtio-win's viostor
	// driver for it); the image itself is opened read-only.
	Image string
	// Kernel, Initrd and Append boot a kernel directly (-kernel, -initrd, -append).
	Kernel, Initrd, Append string
	// Keyboard is the keyboard the guest gets (default PS2).
	Keyboard Keyboard
	// MemoryMiB is the guest RAM (default 1024); CPUs the number of virtual CPUs (default 1).
	MemoryMiB, CPUs int
	// OVMF, when set, boots UEFI firmware instead of SeaBIOS.
	OVMF *OVMF
	// Machine is the machine type (default "q35" with OVMF, else "pc").
	Machine string
	// Accel is the accelerator ("kvm", "tcg"); empty means kvm when /dev/kvm is usable, else
	// tcg with a warning.
	Accel string
	// NoReboot makes QEMU exit when the guest resets (-no-reboot).
	NoReboot bool
	// Console, when set, records the first serial port (ttyS0, COM1) into console.log.
	Console bool
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
	// Stderr receives QEMU's standard error as well as qemu.stderr in the private directory.
	Stderr io.Writer
	// Logger receives the TCG warning and debug lines (default slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.QEMUImg == "" {
		c.QEMUImg = "qemu-img"
	}
	if c.Keyboard == "" {
		c.Keyboard = PS2
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 1024
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.Machine == "" {
		c.Machine = "pc"
		if c.OVMF != nil {
			c.Machine = "q35"
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// ErrBadConfig marks configuration errors.
var ErrBadConfig = errors.New("bad configuration")

// Validate checks c (with its defaults filled in) as Start does; errors wrap ErrBadConfig.
func (c Config) Validate() error { return c.withDefaults().validate() }

func (c Config) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("qemuboot: %w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	if c.Image == "" && c.Kernel == "" {
		return bad("no image: give the guest's disk image (or a kernel to boot)")
	}
	if _, err := ParseKeyboard(string(c.Keyboard)); err != nil {
		return bad("%v", err)
	}
	if c.MemoryMiB < 16 {
		return bad("memory %d MiB is too small (give at least 16; Windows needs 2048, Windows 11 4096)", c.MemoryMiB)
	}
	if c.CPUs < 1 || c.CPUs > 256 {
		return bad("%d CPUs: give 1 to 256", c.CPUs)
	}
	if c.OVMF != nil && (c.OVMF.Code == "" || c.OVMF.Vars == "") {
		return bad("OVMF needs both the code and the vars file (e.g. /usr/share/OVMF/OVMF_CODE_4M.fd and OVMF_VARS_4M.fd)")
	}
	if (c.Initrd != "" || c.Append != "") && c.Kernel == "" {
		return bad("an initrd or kernel command line needs a kernel")
	}
	switch c.Accel {
	case "", "kvm", "tcg":
	default:
		return bad("unknown accelerator %q: use kvm or tcg", c.Accel)
	}
	for _, p := range []string{c.Image, c.Kernel, c.Initrd} {
		if strings.Contains(p, ",") {
			return bad("path %q contains a comma, which QEMU's options cannot take: rename or link it", p)
		}
	}
	if c.OVMF != nil && strings.Contains(c.OVMF.Code, ",") {
		return bad("path %q contains a comma, which QEMU's options cannot take: rename or link it", c.OVMF.Code)
	}
	return nil
}

// Paths are the files of a running guest, all in its private directory.
type Paths struct {
	// QMP and Agent are the unix sockets of the QMP monitor and the guest agent channel.
	QMP, Agent string
	// Overlay is the qcow2 overlay of Config.Image ("" without an image).
	Overlay string
	// Vars is the private copy of the OVMF variable store ("" without OVMF).
	Vars string
	// Console is the file behind the first serial port ("" without Config.Console).
	Console string
}

// Args returns QEMU's arguments (without the binary) for c with the given paths. c.Accel must
// be set (Start picks it when empty).
func Args(c Config, p Paths) []string {
	c = c.withDefaults()
	accel := c.Accel
	if accel == "" {
		accel = "tcg"
	}
	a := []string{
		"-nodefaults", "-no-user-config",
		"-machine", c.Machine + ",accel=" + accel,
		"-m", fmt.Sprint(c.MemoryMiB), "-smp", fmt.Sprint(c.CPUs),
		"-display", "none", "-vga", "std",
	}
	if c.OVMF != nil {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+c.OVMF.Code,
			"-drive", "if=pflash,format=raw,unit=1,file="+p.Vars)
	}
	if c.Kernel != "" {
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			a = append(a, "-append", c.Append)
		}
	}
	if p.Console != "" {
		a = append(a, "-serial", "file:"+p.Console)
	}
	a = append(a,
		"-qmp", "unix:"+p.QMP+",server=on,wait=off",
		"-chardev", "socket,id=qga0,path="+p.Agent+",server=on,wait=off",
		"-device", "virtio-serial-pci,id=vser0",
		"-device", "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
		"-device", "pvpanic",
		"-device", "vmcoreinfo",
		// The guest writes its dump after telling pvpanic: keep it running.
		"-action", "panic=none",
	)
	if c.NoReboot {
		a = append(a, "-no-reboot")
	}
	switch c.Keyboard {
	case USB:
		a = append(a, "-device", "qemu-xhci,id=usb0", "-device", "usb-kbd,bus=usb0.0")
	case Virtio:
		a = append(a, "-device", "virtio-keyboard-pci")
	}
	if p.Overlay != "" {
		a = append(a, "-drive", "file="+p.Overlay+",format=qcow2,if=none,id=disk0,discard=unmap",
			"-device", "virtio-blk-pci,drive=disk0,bootindex=1")
	}
	return append(a, c.ExtraArgs...)
}
