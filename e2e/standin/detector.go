package standin

import "github.com/crashkey/crashkey/hid"

// Detector runs the Windows keyboard drivers' crash-hotkey state machine on the raw input
// the guest's keyboards deliver: i8042prt's on PS/2 set-1 bytes, kbdhid's on USB boot
// reports, each armed with that driver's settings from the machine's registry. Each keyboard
// keeps its own state, as each driver does. A Detector is not safe for concurrent use: feed
// it from one goroutine (or guard it).
type Detector struct {
	ps2, usb *hid.Model
	fired    hid.Driver
}

// NewDetector returns a detector armed with m's i8042prt and kbdhid settings. A driver
// without a hotkey (not installed, Dump1Keys 0, ...) never fires.
func NewDetector(m *Machine) *Detector {
	return &Detector{
		ps2: hid.NewModel(m.Driver(hid.I8042prt).Effective),
		usb: hid.NewModel(m.Driver(hid.Kbdhid).Effective),
	}
}

// FeedPS2 processes one byte read from the PS/2 keyboard (serio_raw), prefix bytes
// included, and reports whether i8042prt bug-checks on it.
func (d *Detector) FeedPS2(b byte) bool {
	if d.ps2.FeedSet1(b) && d.fired == "" {
		d.fired = hid.I8042prt
		return true
	}
	return false
}

// FeedUSB processes one 8-byte boot report read from the USB keyboard (hidraw) and reports
// whether kbdhid bug-checks while translating it.
func (d *Detector) FeedUSB(report [8]byte) bool {
	if d.usb.FeedReport(hid.Report(report)) && d.fired == "" {
		d.fired = hid.Kbdhid
		return true
	}
	return false
}

// Fired returns the driver that bug-checked first, or "" while none has. After a bug check
// the machine is gone: neither Feed method reports true again.
func (d *Detector) Fired() hid.Driver { return d.fired }

// State returns the drivers' CurrentCrashFlags (modifier bits, 0x100 after the first release
// of the crash key, 0x200 after the second), for logs.
func (d *Detector) State() (ps2, usb uint32) { return d.ps2.State(), d.usb.State() }
