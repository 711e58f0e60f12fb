package hid

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/crashkey/crashkey/scancodes"
)

// Set1 returns the scan code set 1 bytes a PS/2 guest receives for s: what QEMU's i8042
// emulation sends (with the BIOS's translation on, as SeaBIOS leaves it). Print Screen follows
// QEMU's rules: 54/D4 while an Alt is held, a bare E0 37 / E0 B7 while a Shift or Ctrl is held,
// E0 2A E0 37 / E0 B7 E0 AA otherwise. Pause sends E0 46 E0 C6 while a Ctrl is held.
func Set1(s Sequence) []byte {
	var out []byte
	var held Dump1Keys
	for _, e := range s {
		out = append(out, set1Event(e, held)...)
		if bit := Dump1Keys(e.Key.Modifier()); bit != 0 {
			if e.Down {
				held |= bit
			} else {
				held &^= bit
			}
		}
	}
	return out
}

func set1Event(e Event, held Dump1Keys) []byte {
	k := e.Key
	switch k.QCode {
	case "print", "sysrq":
		switch {
		case held&(LAlt|RAlt) != 0:
			return pick(e.Down, []byte{0x54}, []byte{0xD4})
		case held&(LShift|RShift|LCtrl|RCtrl) != 0:
			return pick(e.Down, []byte{0xE0, 0x37}, []byte{0xE0, 0xB7})
		}
	case "pause":
		if held&(LCtrl|RCtrl) != 0 {
			return pick(e.Down, []byte{0xE0, 0x46, 0xE0, 0xC6}, nil)
		}
	}
	return pick(e.Down, k.Make, k.Break)
}

func pick(down bool, mk, br []byte) []byte {
	if down {
		return mk
	}
	return br
}

// HexBytes renders bytes as lowercase hex separated by single spaces ("e0 1d 46 c6").
func HexBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, " ")
}

// ParseHexBytes reads hex bytes separated by spaces or commas, with or without 0x ("e0 1d 46").
func ParseHexBytes(s string) ([]byte, error) {
	var out []byte
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		f = strings.TrimPrefix(strings.ToLower(f), "0x")
		if len(f) != 2 {
			return nil, fmt.Errorf("byte %q: write each byte as two hex digits, e.g. \"e0 1d 46\"", f)
		}
		b, err := hex.DecodeString(f)
		if err != nil {
			return nil, fmt.Errorf("byte %q is not hex: write each byte as two hex digits, e.g. \"e0 1d 46\"", f)
		}
		out = append(out, b[0])
	}
	return out, nil
}

// Report is an 8-byte USB boot-keyboard input report: modifier bits, a reserved byte, and up to
// six pressed usages.
type Report [8]byte

// Boot-report modifier bits (byte 0), usages 0xE0..0xE7.
const (
	ReportLCtrl  = 0x01
	ReportLShift = 0x02
	ReportLAlt   = 0x04
	ReportLGUI   = 0x08
	ReportRCtrl  = 0x10
	ReportRShift = 0x20
	ReportRAlt   = 0x40
	ReportRGUI   = 0x80
)

// String renders the report as 8 lowercase hex bytes separated by spaces.
func (r Report) String() string { return HexBytes(r[:]) }

// ParseReport reads one report written as 8 hex bytes.
func ParseReport(s string) (Report, error) {
	b, err := ParseHexBytes(s)
	if err != nil {
		return Report{}, err
	}
	if len(b) != 8 {
		return Report{}, fmt.Errorf("report %q has %d bytes: a boot-keyboard report is 8 bytes (modifiers, reserved, six usages)", strings.TrimSpace(s), len(b))
	}
	var r Report
	copy(r[:], b)
	return r, nil
}

// ParseReports reads reports separated by ';' or newlines.
func ParseReports(s string) ([]Report, error) {
	var out []Report
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		if strings.TrimSpace(part) == "" {
			continue
		}
		r, err := ParseReport(part)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// keyboard is the state of a USB boot keyboard.
type keyboard struct {
	mods byte
	keys []byte
}

func (kb *keyboard) apply(usage uint16, down bool) {
	if usage >= 0xE0 && usage <= 0xE7 {
		bit := byte(1) << (usage - 0xE0)
		if down {
			kb.mods |= bit
		} else {
			kb.mods &^= bit
		}
		return
	}
	if usage == 0 || usage > 0xFF {
		return
	}
	u := byte(usage)
	for i, x := range kb.keys {
		if x == u {
			if !down {
				kb.keys = append(kb.keys[:i], kb.keys[i+1:]...)
			}
			return // a down for a key already down changes nothing
		}
	}
	if down {
		kb.keys = append(kb.keys, u)
	}
}

func (kb *keyboard) report() Report {
	var r Report
	r[0] = kb.mods
	if len(kb.keys) > 6 {
		for i := 2; i < 8; i++ {
			r[i] = 0x01 // ErrorRollOver
		}
		return r
	}
	copy(r[2:], kb.keys)
	return r
}

// USBReports returns the boot reports a USB keyboard sends for s: one report per event, each
// the keyboard's state after that event.
func USBReports(s Sequence) []Report {
	var kb keyboard
	out := make([]Report, 0, len(s))
	for _, e := range s {
		kb.apply(e.Key.USB, e.Down)
		out = append(out, kb.report())
	}
	return out
}

// QEMUUSBReports returns the reports QEMU's usb-kbd delivers for s: one report per queued
// scancode, so an E0-prefixed key adds a report with no change first; a press of a key already
// down and a release of a key not down change nothing (so a send-key chord that names a key
// twice presses it once).
func QEMUUSBReports(s Sequence) []Report {
	var kb keyboard
	var out []Report
	for _, e := range s {
		for i := 1; i < qemuScancodes(e.Key); i++ {
			out = append(out, kb.report()) // E0/E1 prefix entries
		}
		kb.apply(e.Key.USB, e.Down)
		out = append(out, kb.report())
	}
	return out
}

// qemuScancodes is how many entries a key event takes in QEMU's device queues: the set-1 bytes
// QEMU generates from the key's qnum (2 for an E0 key, 3 for Pause).
func qemuScancodes(k *scancodes.Key) int {
	switch {
	case k.QCode == "pause":
		return 3
	case k.Qnum&0x80 != 0:
		return 2
	}
	return 1
}

// EvdevEvent is one Linux input event.
type EvdevEvent struct {
	Type  uint16 `json:"type"`
	Code  uint16 `json:"code"`
	Value int32  `json:"value"`
}

// Linux input event types and the SYN_REPORT code.
const (
	EvSyn     = 0x00
	EvKey     = 0x01
	SynReport = 0
)

// String renders "EV_KEY KEY_RIGHTCTRL 1" or "EV_SYN SYN_REPORT 0".
func (e EvdevEvent) String() string {
	if e.Type == EvSyn {
		return "EV_SYN SYN_REPORT 0"
	}
	name := fmt.Sprintf("%d", e.Code)
	if k, ok := scancodes.ByLinux(e.Code); ok {
		name = k.LinuxName
	}
	return fmt.Sprintf("EV_KEY %s %d", name, e.Value)
}

// Evdev returns the Linux input events a virtio keyboard delivers for s: EV_KEY (1 down, 0 up)
// and EV_SYN after each.
func Evdev(s Sequence) []EvdevEvent {
	var out []EvdevEvent
	for _, e := range s {
		v := int32(0)
		if e.Down {
			v = 1
		}
		out = append(out, EvdevEvent{EvKey, e.Key.Linux, v}, EvdevEvent{EvSyn, SynReport, 0})
	}
	return out
}

// QEMUQueueLimit is the number of scancodes QEMU's PS/2 and USB keyboards queue; a burst beyond it
// is dropped silently and can leave a key stuck.
const QEMUQueueLimit = 16

// MaxEventsPerCall caps the events of one input-send-event call (qemu-observed.md: at most 8).
const MaxEventsPerCall = 8

// QMPBatch is one QMP input-send-event call.
type QMPBatch struct {
	Events Sequence
	// Scancodes is how many set-1 bytes the batch puts into the keyboard's queue.
	Scancodes int
	// After is the pause after the call.
	After time.Duration
}

// QMPBatches splits s into input-send-event calls: events are grouped only while no delay
// separates them, and no call carries more than 16 scancodes or 8 events.
func QMPBatches(s Sequence) []QMPBatch {
	var out []QMPBatch
	var cur QMPBatch
	for i, e := range s {
		n := len(set1Event(e, 0))
		if len(cur.Events) > 0 && (cur.Scancodes+n > QEMUQueueLimit || len(cur.Events) == MaxEventsPerCall) {
			out = append(out, cur)
			cur = QMPBatch{}
		}
		cur.Events = append(cur.Events, e)
		cur.Scancodes += n
		if e.Delay > 0 || i == len(s)-1 {
			cur.After = e.Delay
			out = append(out, cur)
			cur = QMPBatch{}
		}
	}
	return out
}

// KeyValue is the QMP KeyValue of a key: {"type":"qcode","data":"ctrl_r"}, or the number form
// {"type":"number","data":157} for keys go-qemu's and older QEMUs' schemas lack.
func KeyValue(k *scancodes.Key) map[string]any {
	if k.NotInGoQEMU || k.Since != "" {
		return map[string]any{"type": "number", "data": int(k.Qnum)}
	}
	return map[string]any{"type": "qcode", "data": k.QCode}
}

// InputEvents is the "events" argument of input-send-event for s.
func InputEvents(s Sequence) []map[string]any {
	out := make([]map[string]any, len(s))
	for i, e := range s {
		out[i] = map[string]any{"type": "key", "data": map[string]any{"down": e.Down, "key": KeyValue(e.Key)}}
	}
	return out
}

// Command is the QMP command of the batch.
func (b QMPBatch) Command() []byte {
	return mustJSON(map[string]any{"execute": "input-send-event", "arguments": map[string]any{"events": InputEvents(b.Events)}})
}

// DefaultHoldTime is the hold-time used for chord commands, in milliseconds.
const DefaultHoldTime = 100

// chordKeys are the keys of the closest chord: the modifiers, then the crash key twice.
func chordKeys(h Hotkey) []*scancodes.Key {
	return append(h.Modifiers.Keys(), h.Key, h.Key)
}

// SendKeyCommand is the QMP send-key command that comes closest to h: a chord of the modifiers
// and the crash key named twice. See [ChordWarning] for what guests make of it.
func SendKeyCommand(h Hotkey, holdMs int) []byte {
	var keys []map[string]any
	for _, k := range chordKeys(h) {
		keys = append(keys, KeyValue(k))
	}
	return mustJSON(map[string]any{"execute": "send-key", "arguments": map[string]any{"keys": keys, "hold-time": holdMs}})
}

// HMPSendKey is the HMP command line ("sendkey ctrl_r-scroll_lock-scroll_lock 100").
func HMPSendKey(h Hotkey, holdMs int) string {
	var names []string
	for _, k := range chordKeys(h) {
		names = append(names, k.QCode)
	}
	return fmt.Sprintf("sendkey %s %d", strings.Join(names, "-"), holdMs)
}

// VirshSendKeyArgs are the arguments after "virsh send-key DOMAIN".
func VirshSendKeyArgs(h Hotkey, holdMs int) []string {
	args := []string{"--codeset", "linux", "--holdtime", fmt.Sprint(holdMs)}
	for _, k := range chordKeys(h) {
		args = append(args, k.LinuxName)
	}
	return args
}

// VBoxScancodes are the bytes for "VBoxManage controlvm VM keyboardputscancode …": the exact
// set-1 stream of s.
func VBoxScancodes(s Sequence) []string {
	return strings.Fields(HexBytes(Set1(s)))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings, bools and ints always marshal
	}
	return b
}
