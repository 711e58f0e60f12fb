package hid

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/crashkey/crashkey/scancodes"
)

// Dump1Keys is the registry bitmask of modifiers that must all be held for the crash hotkey.
type Dump1Keys uint32

// The six documented Dump1Keys bits.
const (
	RShift Dump1Keys = 0x01
	RCtrl  Dump1Keys = 0x02
	RAlt   Dump1Keys = 0x04
	LShift Dump1Keys = 0x10
	LCtrl  Dump1Keys = 0x20
	LAlt   Dump1Keys = 0x40

	// ValidDump1Keys is the union of the six documented bits.
	ValidDump1Keys = RShift | RCtrl | RAlt | LShift | LCtrl | LAlt
)

// modifierOrder is the order modifiers are named and pressed in.
var modifierOrder = []struct {
	bit   Dump1Keys
	name  string
	qcode string
}{
	{LShift, "LShift", "shift"},
	{RShift, "RShift", "shift_r"},
	{LCtrl, "LCtrl", "ctrl"},
	{RCtrl, "RCtrl", "ctrl_r"},
	{LAlt, "LAlt", "alt"},
	{RAlt, "RAlt", "alt_r"},
}

const validBitsHelp = "valid bits: 0x01 RShift, 0x02 RCtrl, 0x04 RAlt, 0x10 LShift, 0x20 LCtrl, 0x40 LAlt"

// Validate reports bits outside the six documented modifiers (0x08, 0x80 and anything above
// 0xff): the driver can never see them held, so such a hotkey never fires.
func (d Dump1Keys) Validate() error {
	if bad := d &^ ValidDump1Keys; bad != 0 {
		return fmt.Errorf("Dump1Keys %#x has bit(s) %#x that no key sets, so the hotkey can never fire (%s)", uint32(d), uint32(bad), validBitsHelp)
	}
	return nil
}

// String names the modifiers joined by '+' ("LShift+RShift"), or "none".
func (d Dump1Keys) String() string {
	var parts []string
	for _, m := range modifierOrder {
		if d&m.bit != 0 {
			parts = append(parts, m.name)
		}
	}
	if rest := d &^ ValidDump1Keys; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// Keys returns the modifier keys in press order.
func (d Dump1Keys) Keys() []*scancodes.Key {
	var ks []*scancodes.Key
	for _, m := range modifierOrder {
		if d&m.bit != 0 {
			k, _ := scancodes.ByQCode(m.qcode)
			ks = append(ks, k)
		}
	}
	return ks
}

// ParseDump1Keys parses a number ("0x11", "17") or modifier names joined by '+', ',' or spaces
// ("LShift+RShift", "rctrl"). The result is validated.
func ParseDump1Keys(s string) (Dump1Keys, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty Dump1Keys (%s)", validBitsHelp)
	}
	if n, err := strconv.ParseUint(s, 0, 64); err == nil {
		if n > 0xffffffff {
			return 0, fmt.Errorf("Dump1Keys %s does not fit a REG_DWORD (%s)", s, validBitsHelp)
		}
		d := Dump1Keys(n)
		return d, d.Validate()
	}
	var d Dump1Keys
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == '+' || r == ',' || r == ' ' || r == '|' }) {
		k, err := scancodes.Lookup(name)
		if err != nil {
			return 0, fmt.Errorf("Dump1Keys: %w", err)
		}
		bit := Dump1Keys(k.Modifier())
		if bit == 0 {
			return 0, fmt.Errorf("Dump1Keys: %s is not a modifier the driver tracks (%s)", k.QCode, validBitsHelp)
		}
		d |= bit
	}
	return d, nil
}
