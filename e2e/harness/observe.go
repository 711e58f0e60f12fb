package harness

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Observation kinds written by the guest's recorder (see e2e/guest/recorder.go).
const (
	KindBoot  = "boot"  // boot <mode>
	KindDev   = "dev"   // dev <ps2|usb|evdev> …: a keyboard device is open
	KindReady = "ready" // every expected keyboard is open
	KindPS2   = "ps2"   // ps2 <xx>: one byte from the PS/2 keyboard
	KindUSB   = "usb"   // usb <xx …>: one HID input report
	KindEvdev = "evdev" // evdev <bus> <type> <code> <value>
	KindNMI   = "nmi"   // the guest kernel logged "NMI received"
	KindError = "error" // error <text>
	// KindInvalid marks a line that ParseLine rejected; Fields holds the parse error.
	KindInvalid = "invalid"
)

// maxLine bounds one observation line; longer lines are cut and marked invalid.
const maxLine = 64 << 10

// Observation is one line the guest wrote on its data serial port.
type Observation struct {
	// Index is the observation's position in the guest's stream, from 0.
	Index int
	// Time is when the harness read the line (host clock).
	Time time.Time
	// Kind is the first word of the line.
	Kind string
	// Fields are the remaining words.
	Fields []string
	// Line is the line as written, without the newline.
	Line string
}

// EvdevEvent is one evdev event from a grabbed keyboard.
type EvdevEvent struct {
	// Bus is the device's bus: "usb", "virtio", "i8042" or "other".
	Bus string
	// Type is "KEY", "MSC", "LED", "REP" or a decimal event type.
	Type string
	// Code is the event code (for KEY, the Linux key code, e.g. 97 KEY_RIGHTCTRL).
	Code uint16
	// Value is 1 for a press, 0 for a release and 2 for an autorepeat (KEY events).
	Value int32
}

// String formats e as "KEY 97 1" (the bus is left out).
func (e EvdevEvent) String() string { return fmt.Sprintf("%s %d %d", e.Type, e.Code, e.Value) }

// ParseLine parses one line of the guest's output. It returns an error, and no observation, for
// an empty line or a malformed line of a known kind; lines of unknown kinds are accepted with
// their words as Fields (later guest modes add kinds).
func ParseLine(line string) (Observation, error) {
	line = strings.TrimRight(line, "\r\n")
	if len(line) > maxLine {
		return Observation{}, fmt.Errorf("parse: line of %d bytes is longer than %d", len(line), maxLine)
	}
	words := strings.Fields(line)
	if len(words) == 0 {
		return Observation{}, errors.New("parse: empty line")
	}
	o := Observation{Kind: words[0], Fields: words[1:], Line: line}
	n := len(o.Fields)
	switch o.Kind {
	case KindPS2:
		if n != 1 {
			return Observation{}, fmt.Errorf("parse: ps2 line %q: want one byte", line)
		}
		if _, err := parseHexBytes(o.Fields); err != nil {
			return Observation{}, fmt.Errorf("parse: ps2 line %q: %w", line, err)
		}
	case KindUSB:
		if n == 0 {
			return Observation{}, fmt.Errorf("parse: usb line %q: no report bytes", line)
		}
		if _, err := parseHexBytes(o.Fields); err != nil {
			return Observation{}, fmt.Errorf("parse: usb line %q: %w", line, err)
		}
	case KindEvdev:
		if _, err := parseEvdev(o.Fields); err != nil {
			return Observation{}, fmt.Errorf("parse: evdev line %q: %w", line, err)
		}
	case KindReady, KindNMI:
		if n != 0 {
			return Observation{}, fmt.Errorf("parse: %s line %q: unexpected words", o.Kind, line)
		}
	case KindBoot:
		if n != 1 {
			return Observation{}, fmt.Errorf("parse: boot line %q: want the mode", line)
		}
	case KindDev:
		if n < 2 {
			return Observation{}, fmt.Errorf("parse: dev line %q: want kind and path", line)
		}
	}
	return o, nil
}

// PS2Byte returns the byte of a ps2 observation.
func (o Observation) PS2Byte() (byte, bool) {
	if o.Kind != KindPS2 {
		return 0, false
	}
	b, err := parseHexBytes(o.Fields)
	if err != nil || len(b) != 1 {
		return 0, false
	}
	return b[0], true
}

// USBReport returns the report bytes of a usb observation.
func (o Observation) USBReport() ([]byte, bool) {
	if o.Kind != KindUSB {
		return nil, false
	}
	b, err := parseHexBytes(o.Fields)
	return b, err == nil
}

// Evdev returns the event of an evdev observation.
func (o Observation) Evdev() (EvdevEvent, bool) {
	if o.Kind != KindEvdev {
		return EvdevEvent{}, false
	}
	e, err := parseEvdev(o.Fields)
	return e, err == nil
}

func parseHexBytes(words []string) ([]byte, error) {
	out := make([]byte, 0, len(words))
	for _, w := range words {
		if len(w) != 2 {
			return nil, fmt.Errorf("%q is not a two-digit hex byte", w)
		}
		v, err := strconv.ParseUint(w, 16, 8)
		if err != nil {
			return nil, fmt.Errorf("%q is not a two-digit hex byte", w)
		}
		out = append(out, byte(v))
	}
	return out, nil
}

func parseEvdev(f []string) (EvdevEvent, error) {
	if len(f) != 4 {
		return EvdevEvent{}, errors.New("want bus, type, code and value")
	}
	code, err := strconv.ParseUint(f[2], 10, 16)
	if err != nil {
		return EvdevEvent{}, fmt.Errorf("bad code %q", f[2])
	}
	value, err := strconv.ParseInt(f[3], 10, 32)
	if err != nil {
		return EvdevEvent{}, fmt.Errorf("bad value %q", f[3])
	}
	return EvdevEvent{Bus: f[0], Type: f[1], Code: uint16(code), Value: int32(value)}, nil
}

// FormatHex formats b like the guest does: "10 00 47".
func FormatHex(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}

// TrimReport drops a HID report's trailing zero bytes and formats it as hex, as
// qemu-observed.md writes reports: "10 00 47", "10", "00" (all zero).
func TrimReport(r []byte) string {
	n := len(r)
	for n > 1 && r[n-1] == 0 {
		n--
	}
	return FormatHex(r[:n])
}
