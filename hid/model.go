package hid

import (
	"fmt"

	"github.com/crashkey/crashkey/scancodes"
)

// Driver names a Windows keyboard driver that carries the crash-hotkey logic.
type Driver string

// The three keyboard drivers Microsoft documents.
const (
	I8042prt Driver = "i8042prt" // PS/2
	Kbdhid   Driver = "kbdhid"   // USB and other HID keyboards (also virtio via vioinput)
	Hyperkbd Driver = "hyperkbd" // Hyper-V synthetic keyboard
)

// Drivers lists the three drivers.
var Drivers = []Driver{I8042prt, Kbdhid, Hyperkbd}

// ParseDriver accepts a driver name, case-insensitively.
func ParseDriver(s string) (Driver, error) {
	for _, d := range Drivers {
		if string(d) == lower(s) {
			return d, nil
		}
	}
	return "", fmt.Errorf("unknown keyboard driver %q: use i8042prt (PS/2), kbdhid (USB/HID) or hyperkbd (Hyper-V)", s)
}

// Registry is what a keyboard driver reads from the guest's registry.
type Registry struct {
	// CrashOnCtrlScroll is Parameters\CrashOnCtrlScroll (0 when absent).
	CrashOnCtrlScroll uint32
	// Dump1Keys and Dump2Key are crashdump\Dump1Keys and Dump2Key; nil when absent.
	Dump1Keys, Dump2Key *uint32
	// Client is true on a client SKU (ProductType WinNT), where the drivers fall back to the
	// built-in hotkey 0x11/1 for crashdump values that are absent.
	Client bool
}

// Armed is the registry of a guest armed for h: CrashOnCtrlScroll=1 for the CrashOnCtrlScroll
// hotkey, crashdump values otherwise.
func Armed(h Hotkey) Registry {
	if h.CrashOnCtrlScroll {
		return Registry{CrashOnCtrlScroll: 1}
	}
	d1, d2 := h.Registry()
	return Registry{Dump1Keys: &d1, Dump2Key: &d2}
}

// Effective is the configuration a driver derives from its registry values.
type Effective struct {
	// Want is CrashFlags: the modifier bits that must be held exactly. 0 disables the hotkey.
	Want uint32
	// Key1 and Key2 are CrashScanCode and CrashScanCode2 in qnum encoding (0 = none).
	Key1, Key2 uint8
	// Source says where the setting came from: "CrashOnCtrlScroll", "crashdump",
	// "built-in default", "none".
	Source string
	// Hotkey is the hotkey that fires, when one can.
	Hotkey *Hotkey
	// Reason says why no hotkey can fire, when none can.
	Reason string
}

// Enabled reports whether some key sequence can fire the bug check.
func (e Effective) Enabled() bool { return e.Want != 0 && e.Key1 != 0 }

// Effective applies the drivers' precedence: a non-zero CrashOnCtrlScroll wins (RCtrl + Scroll
// Lock); otherwise crashdump\Dump1Keys and Dump2Key, each falling back to the built-in default
// (0x11 and 1) on client Windows when absent, or to 0 (disabled) elsewhere.
func (r Registry) Effective() Effective {
	if r.CrashOnCtrlScroll != 0 {
		h := CrashOnCtrlScroll()
		return Effective{Want: uint32(RCtrl), Key1: 0x46, Source: "CrashOnCtrlScroll", Hotkey: &h}
	}
	var d1, d2 uint32
	source := "crashdump"
	switch {
	case r.Dump1Keys != nil:
		d1 = *r.Dump1Keys
	case r.Client:
		d1, source = 0x11, "built-in default"
	}
	switch {
	case r.Dump2Key != nil:
		d2 = *r.Dump2Key
	case r.Client:
		d2 = 1
		if r.Dump1Keys == nil {
			source = "built-in default"
		}
	}
	if r.Dump1Keys == nil && r.Dump2Key == nil && !r.Client {
		return Effective{Source: "none", Reason: "neither CrashOnCtrlScroll nor crashdump\\Dump1Keys/Dump2Key is set (and a server SKU has no built-in hotkey)"}
	}
	e := Effective{Want: d1, Source: source}
	if d1 == 0 {
		e.Reason = "Dump1Keys is 0, which disables the hotkey"
		return e
	}
	k1, k2, err := scancodes.CrashScanCodes(int(min(d2, 1<<20)))
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	e.Key1, e.Key2 = k1, k2
	h, err := FromRegistry(d1, d2)
	if err != nil {
		e.Reason = err.Error()
		return e
	}
	e.Hotkey = &h
	return e
}

// Model is the crash-hotkey state machine of i8042prt and kbdhid (I8xProcessCrashDump /
// KbdHidProcessCrashDump). Feed it set-1 bytes with [Model.FeedSet1] (prefix bytes included) or
// boot reports with [Model.FeedReport].
type Model struct {
	eff     Effective
	cur     uint32
	prefix  byte // 0, 0xE0 or 0xE1
	e1Left  int  // bytes still under the E1 prefix
	fired   bool
	lastRep Report
}

// State bits beyond the modifier bits.
const (
	crashFirst  = 0x100
	crashSecond = 0x200
)

// NewModel returns a model in its reset state for the effective configuration.
func NewModel(eff Effective) *Model { return &Model{eff: eff} }

// Fired reports whether the bug check has fired.
func (m *Model) Fired() bool { return m.fired }

// State returns CurrentCrashFlags: modifier bits, 0x100 after the first release of the crash
// key, 0x200 after the second.
func (m *Model) State() uint32 { return m.cur }

// FeedSet1 processes one byte as the i8042prt ISR sees it and reports whether the bug check
// fires on it. E0 and E1 set the prefix for the following byte(s); FA (ACK) and FE (resend) are
// command responses the ISR consumes. Once fired, the model ignores further input.
func (m *Model) FeedSet1(b byte) bool {
	if m.fired {
		return false
	}
	switch b {
	case 0xE0:
		m.prefix, m.e1Left = 0xE0, 0
		return false
	case 0xE1:
		m.prefix, m.e1Left = 0xE1, 2
		return false
	case 0xFA, 0xFE:
		return false
	}
	prefix := m.prefix
	if prefix == 0xE1 {
		m.e1Left--
		if m.e1Left <= 0 {
			m.prefix = 0
		}
	} else {
		m.prefix = 0
	}
	if m.eff.Want == 0 {
		return false
	}
	return m.process(b, prefix)
}

func (m *Model) isCrashKey(code byte, prefix byte) bool {
	match := func(k uint8) bool {
		if k == 0 {
			return false
		}
		if k < 0x80 {
			return prefix == 0 && code == k
		}
		return prefix == 0xE0 && code == k&0x7F
	}
	return match(m.eff.Key1) || match(m.eff.Key2)
}

func (m *Model) process(b byte, prefix byte) bool {
	code := b & 0x7F
	if prefix == 0xE1 {
		if code == 0x1D {
			return false
		}
		m.cur = 0
		return false
	}
	var bit uint32
	switch {
	case code == 0x1D && prefix == 0:
		bit = uint32(LCtrl)
	case code == 0x1D && prefix == 0xE0:
		bit = uint32(RCtrl)
	case code == 0x38 && prefix == 0:
		bit = uint32(LAlt)
	case code == 0x38 && prefix == 0xE0:
		bit = uint32(RAlt)
	case code == 0x2A && prefix == 0:
		bit = uint32(LShift)
	case code == 0x36 && prefix == 0:
		bit = uint32(RShift)
	case (code == 0x2A || code == 0x36) && prefix == 0xE0:
		return false // fake shift
	}
	if b < 0x80 { // make
		switch {
		case bit != 0:
			m.cur |= bit
		case m.isCrashKey(code, prefix):
			// crash-key makes are ignored (auto-repeat is harmless)
		default:
			m.cur = 0
		}
		return false
	}
	switch { // break
	case bit != 0:
		m.cur &^= bit | crashFirst | crashSecond
	case m.isCrashKey(code, prefix):
		if m.cur&crashFirst != 0 {
			m.cur |= crashSecond
		} else {
			m.cur |= crashFirst
		}
		if m.cur == m.eff.Want|crashFirst|crashSecond {
			m.cur = 0
			m.fired = true
			return true
		}
	default:
		m.cur = 0
	}
	return false
}

// FeedReport processes one boot report as kbdhid does: it diffs the report against the previous
// one, translates released usages first and then pressed ones into set-1 bytes, and feeds those.
// It reports whether the bug check fires while processing this report.
func (m *Model) FeedReport(r Report) bool {
	prev := m.lastRep
	m.lastRep = r
	if isRollover(r) {
		m.lastRep = prev
		return false
	}
	var released, pressed []uint16
	for bit := 0; bit < 8; bit++ {
		was, is := prev[0]&(1<<bit) != 0, r[0]&(1<<bit) != 0
		if was && !is {
			released = append(released, uint16(0xE0+bit))
		}
		if !was && is {
			pressed = append(pressed, uint16(0xE0+bit))
		}
	}
	for _, u := range prev[2:] {
		if u > 1 && !hasUsage(r, u) {
			released = append(released, uint16(u))
		}
	}
	for _, u := range r[2:] {
		if u > 1 && !hasUsage(prev, u) {
			pressed = append(pressed, uint16(u))
		}
	}
	fired := false
	for _, u := range released {
		fired = m.feedUsage(u, false) || fired
	}
	for _, u := range pressed {
		fired = m.feedUsage(u, true) || fired
	}
	return fired
}

func (m *Model) feedUsage(u uint16, down bool) bool {
	k, ok := scancodes.ByUSB(u)
	if !ok {
		// A usage with no set-1 translation produces no scan code: nothing reaches the logic.
		return false
	}
	bytes := k.Make
	if !down {
		bytes = k.Break
	}
	fired := false
	for _, b := range bytes {
		fired = m.FeedSet1(b) || fired
	}
	return fired
}

func isRollover(r Report) bool {
	for _, u := range r[2:] {
		if u != 0x01 {
			return false
		}
	}
	return true
}

func hasUsage(r Report, u byte) bool {
	for _, x := range r[2:] {
		if x == u {
			return true
		}
	}
	return false
}

// Verdict is the driver model's answer for a stream.
type Verdict struct {
	// Crash is true when the bug check fires.
	Crash bool `json:"crash"`
	// At is the 0-based index of the byte or report on which it fires.
	At *int `json:"at"`
	// Effective is the configuration the driver derived from the registry.
	Effective Effective `json:"-"`
	// State is CurrentCrashFlags after the stream (when it did not fire).
	State uint32 `json:"-"`
}

// SimulateSet1 feeds bytes to an i8042prt model armed by reg.
func SimulateSet1(reg Registry, bytes []byte) Verdict {
	m := NewModel(reg.Effective())
	for i, b := range bytes {
		if m.FeedSet1(b) {
			return Verdict{Crash: true, At: &i, Effective: m.eff}
		}
	}
	return Verdict{Effective: m.eff, State: m.cur}
}

// SimulateUSB feeds reports to a kbdhid model armed by reg.
func SimulateUSB(reg Registry, reports []Report) Verdict {
	m := NewModel(reg.Effective())
	for i, r := range reports {
		if m.FeedReport(r) {
			return Verdict{Crash: true, At: &i, Effective: m.eff}
		}
	}
	return Verdict{Effective: m.eff, State: m.cur}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
