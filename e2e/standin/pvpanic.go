package standin

import (
	"errors"
	"fmt"
	"os"
)

// PanicKind is a pvpanic event bit (QEMU docs/specs/pvpanic.rst).
type PanicKind byte

// The pvpanic events Windows' virtio-win driver raises (windows-crash.md §7.2).
const (
	// Panicked (bit 0): the guest crashed and no dump will be written (QMP GUEST_PANICKED).
	Panicked PanicKind = 1 << 0
	// CrashLoaded (bit 1): the guest crashed and is writing a dump; virtio-win's driver writes
	// it at the start of dump I/O (QMP GUEST_CRASHLOADED).
	CrashLoaded PanicKind = 1 << 1
)

// String names the event.
func (k PanicKind) String() string {
	switch k {
	case Panicked:
		return "panicked"
	case CrashLoaded:
		return "crash-loaded"
	}
	return fmt.Sprintf("pvpanic event 0x%02x", byte(k))
}

// ErrNoPVPanic: no pvpanic device answers at the port, or it does not support the event.
var ErrNoPVPanic = errors.New("no pvpanic device")

// PVPanic is the ISA pvpanic device, reached through a file whose offsets are I/O ports
// (/dev/port). Tests point Path at an ordinary file.
type PVPanic struct {
	// Path is the port file, normally /dev/port.
	Path string
	// Port is the device's I/O port, normally 0x505.
	Port int64
}

// DefaultPVPanic is QEMU's ISA pvpanic device (-device pvpanic, libvirt <panic model='isa'/>)
// at its default port.
var DefaultPVPanic = PVPanic{Path: "/dev/port", Port: 0x505}

// Features reads the events the device supports (bit 0 panicked, bit 1 crash-loaded,
// bit 2 shutdown). Without a device the port reads 0xFF, reported as ErrNoPVPanic.
func (p PVPanic) Features() (byte, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return 0, fmt.Errorf("pvpanic: %w", err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], p.Port); err != nil {
		return 0, fmt.Errorf("pvpanic: read port 0x%x of %s: %w", p.Port, p.Path, err)
	}
	if b[0] == 0xFF || b[0]&0x7 == 0 {
		return b[0], fmt.Errorf("%w at port 0x%x (it reads 0x%02x): add -device pvpanic to the QEMU command line", ErrNoPVPanic, p.Port, b[0])
	}
	return b[0], nil
}

// Signal raises event kind: it checks that the device supports it and writes the event bit
// to the port.
func (p PVPanic) Signal(kind PanicKind) error {
	if kind != Panicked && kind != CrashLoaded {
		return fmt.Errorf("pvpanic: %s is not an event the stand-in raises: use Panicked or CrashLoaded", kind)
	}
	feat, err := p.Features()
	if err != nil {
		return err
	}
	if feat&byte(kind) == 0 {
		return fmt.Errorf("%w: the device at port 0x%x supports events 0x%02x, not %s (bit 0x%02x)", ErrNoPVPanic, p.Port, feat, kind, byte(kind))
	}
	f, err := os.OpenFile(p.Path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pvpanic: %w", err)
	}
	if _, err := f.WriteAt([]byte{byte(kind)}, p.Port); err != nil {
		f.Close()
		return fmt.Errorf("pvpanic: write port 0x%x of %s: %w", p.Port, p.Path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pvpanic: %w", err)
	}
	return nil
}

// SignalPanic raises kind on DefaultPVPanic: CrashLoaded when a dump will be written,
// Panicked when dumps are disabled.
func SignalPanic(kind PanicKind) error { return DefaultPVPanic.Signal(kind) }
