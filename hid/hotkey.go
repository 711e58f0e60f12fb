package hid

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/crashkey/crashkey/scancodes"
	"github.com/crashkey/crashkey/scancodes/layout"
)

// ScrollLockIndex is the Dump2Key index of Scroll Lock, the CrashOnCtrlScroll key.
const ScrollLockIndex = 125

// Hotkey is a crash hotkey: every modifier in Modifiers held, the crash key pressed twice.
type Hotkey struct {
	// Modifiers is the Dump1Keys bitmask.
	Modifiers Dump1Keys
	// Dump2Key is the index of the crash key in the drivers' table.
	Dump2Key int
	// Key is the key at Dump2Key (Print Screen for index 124).
	Key *scancodes.Key
	// CrashOnCtrlScroll is true for the hotkey armed by Parameters\CrashOnCtrlScroll rather than
	// by crashdump\Dump1Keys and Dump2Key.
	CrashOnCtrlScroll bool
	// Layout is the keyboard layout the hotkey is read on by people (its labels); nil means
	// US. It never changes which keys are sent: those are positions.
	Layout *layout.Layout
}

// CrashOnCtrlScroll returns the hotkey that Parameters\CrashOnCtrlScroll=1 arms: Right Ctrl held,
// Scroll Lock pressed twice.
func CrashOnCtrlScroll() Hotkey {
	k, _ := scancodes.ByDump2Key(ScrollLockIndex)
	return Hotkey{Modifiers: RCtrl, Dump2Key: ScrollLockIndex, Key: k, CrashOnCtrlScroll: true}
}

// ClientDefault returns the hotkey that current client Windows (i8042prt, kbdhid) arm by
// themselves when no crashdump values are set: both Shifts held, grave/tilde pressed twice
// (Dump1Keys 0x11, Dump2Key 1).
func ClientDefault() Hotkey {
	h, _ := FromRegistry(0x11, 1)
	return h
}

// FromRegistry builds the hotkey that crashdump\Dump1Keys and Dump2Key arm. A pair that can
// never fire is refused with the reason: unknown modifier bits, no modifier, an index outside
// 0..133, an empty table entry, or a modifier as the crash key.
func FromRegistry(dump1Keys, dump2Key uint32) (Hotkey, error) {
	d := Dump1Keys(dump1Keys)
	if err := d.Validate(); err != nil {
		return Hotkey{}, err
	}
	if d == 0 {
		return Hotkey{}, fmt.Errorf("Dump1Keys 0 disables the hotkey: at least one modifier must be held (%s)", validBitsHelp)
	}
	if dump2Key >= scancodes.Dump2KeyCount {
		return Hotkey{}, fmt.Errorf("Dump2Key %d (%#x) is outside the driver's table (0..133): the hotkey can never fire; Dump2Key is a table index, not a scan code ('crashkey keys' lists them)", dump2Key, dump2Key)
	}
	idx := int(dump2Key)
	if _, _, err := scancodes.CrashScanCodes(idx); err != nil {
		return Hotkey{}, err
	}
	k, _ := scancodes.ByDump2Key(idx)
	if k.Modifier() != 0 {
		return Hotkey{}, fmt.Errorf("Dump2Key %d is %s, a modifier: the driver counts it as a modifier, so it can never be the crash key; pick another key", idx, k.Name())
	}
	return Hotkey{Modifiers: d, Dump2Key: idx, Key: k}, nil
}

// ParseHotkey parses a hotkey spec: key names joined by '+', the modifiers first and the crash
// key last ("rctrl+scroll", "lshift+rshift+d", "RightCtrl+Space"), or the registry pair
// "DUMP1KEYS/DUMP2KEY" in hex or decimal ("0x11/0x22", "2/125"). "ctrl-scroll" and
// "CrashOnCtrlScroll" name the CrashOnCtrlScroll hotkey. Key names are crashkey's (US
// positions); see [ParseHotkeyOn] for labels on a layout.
func ParseHotkey(spec string) (Hotkey, error) {
	return parseHotkey(spec, scancodes.Lookup, nil)
}

// ParseHotkeyOn is ParseHotkey reading the keys as people see them on layout l (nil: US): a
// key written as a character ("a", "ü", ";", "+" after a '+') or an xkb keysym name
// ("udiaeresis") is the key that carries this label without a modifier on l; names of
// non-character keys (ctrl_r, scroll_lock, f5) and position names (KEY_Q, KeyQ, Digit1) are
// unaffected. On US every spec ParseHotkey reads means the same keys. The hotkey remembers l.
func ParseHotkeyOn(spec string, l *layout.Layout) (Hotkey, error) {
	if l == nil {
		l = layout.US()
	}
	h, err := parseHotkey(spec, l.Lookup, l)
	if err != nil {
		return Hotkey{}, err
	}
	return h.On(l), nil
}

func parseHotkey(spec string, lookup func(string) (*scancodes.Key, error), l *layout.Layout) (Hotkey, error) {
	s := strings.TrimSpace(spec)
	switch strings.ToLower(s) {
	case "":
		return Hotkey{}, fmt.Errorf("empty hotkey spec: use e.g. rctrl+scroll, lshift+rshift+d or 0x11/0x22")
	case "crashonctrlscroll", "ctrl-scroll", "default":
		return CrashOnCtrlScroll(), nil
	}
	if a, b, ok := strings.Cut(s, "/"); ok && (l == nil || a != "" && b != "" && !strings.ContainsAny(a+b, "+, ")) {
		d1, err1 := strconv.ParseUint(strings.TrimSpace(a), 0, 32)
		d2, err2 := strconv.ParseUint(strings.TrimSpace(b), 0, 32)
		if err1 != nil || err2 != nil {
			return Hotkey{}, fmt.Errorf("hotkey %q: registry form is DUMP1KEYS/DUMP2KEY with two numbers, e.g. 0x11/0x22", spec)
		}
		return FromRegistry(uint32(d1), uint32(d2))
	}
	names := splitSpec(s, l != nil)
	if len(names) < 2 {
		k, err := lookup(s)
		if err != nil {
			return Hotkey{}, fmt.Errorf("hotkey %q: %w", spec, err)
		}
		return Hotkey{}, fmt.Errorf("hotkey %q has no modifier: hold at least one of RShift, RCtrl, RAlt, LShift, LCtrl, LAlt, e.g. rctrl+%s", spec, k.QCode)
	}
	var mods Dump1Keys
	for _, n := range names[:len(names)-1] {
		k, err := lookup(n)
		if err != nil {
			return Hotkey{}, fmt.Errorf("hotkey %q: %w", spec, err)
		}
		bit := Dump1Keys(k.Modifier())
		if bit == 0 {
			return Hotkey{}, fmt.Errorf("hotkey %q: %s is not a modifier the driver tracks; only the last key is the crash key, and the others must be RShift, RCtrl, RAlt, LShift, LCtrl or LAlt", spec, k.Name())
		}
		mods |= bit
	}
	last := names[len(names)-1]
	k, err := lookup(last)
	if err != nil {
		return Hotkey{}, fmt.Errorf("hotkey %q: %w", spec, err)
	}
	if k.Modifier() != 0 {
		return Hotkey{}, fmt.Errorf("hotkey %q: the crash key %s is a modifier, which the driver never treats as the crash key; end the spec with another key", spec, k.Name())
	}
	if k.Dump2Key < 0 {
		what := k.Name()
		if l != nil && layout.Dependent(k) && l.Label(k) != k.Name() {
			what = fmt.Sprintf("%s on %s (%s, the US %s position)", last, l.Title(), k.QCode, k.Name())
		}
		return Hotkey{}, fmt.Errorf("hotkey %q: %s is not in the driver's crash-key table, so it can never be the crash key ('crashkey keys' shows the keys with a Dump2Key index)", spec, what)
	}
	h, err := FromRegistry(uint32(mods), uint32(k.Dump2Key))
	if err != nil {
		return Hotkey{}, fmt.Errorf("hotkey %q: %w", spec, err)
	}
	return h, nil
}

func isSpecSep(r rune) bool { return r == '+' || r == ',' || r == ' ' }

// splitSpec splits a spec at '+', ',' and spaces. With labels, a separator right after
// another one is the crash key itself ("rctrl++", "rctrl+,").
func splitSpec(s string, labels bool) []string {
	var last string
	if n := len(s); labels && n >= 2 && isSpecSep(rune(s[n-1])) && s[n-1] != ' ' && isSpecSep(rune(s[n-2])) {
		last, s = s[n-1:], s[:n-2]
	}
	names := strings.FieldsFunc(s, isSpecSep)
	if last != "" {
		names = append(names, last)
	}
	return names
}

// On returns h as read on layout l (nil: US): the same keys, with l's labels.
func (h Hotkey) On(l *layout.Layout) Hotkey {
	h.Layout = l
	return h
}

// Labels is the hotkey as labelled on h.Layout: "RCtrl+A" for the US Q position on French.
func (h Hotkey) Labels() string {
	if h.Key == nil {
		return "none"
	}
	return h.Modifiers.String() + "+" + h.Layout.Label(h.Key)
}

// Describe gives the hotkey both ways, as labels on h.Layout and as US positions: "RCtrl + A
// (AZERTY fr; the US Q position, Dump2Key 0x11)", "RCtrl + ScrollLock (QWERTZ de; the same key on
// every layout, Dump2Key 0x7d)".
func (h Hotkey) Describe() string {
	if h.Key == nil {
		return "none"
	}
	where := fmt.Sprintf("the same key on every layout, Dump2Key %#02x", h.Dump2Key)
	if layout.Dependent(h.Key) {
		where = layout.Where(h.Key)
	}
	return fmt.Sprintf("%s + %s (%s; %s)", strings.ReplaceAll(h.Modifiers.String(), "+", " + "), h.Layout.Label(h.Key), h.Layout.Title(), where)
}

// Press says what a person at a keyboard with h.Layout does: "hold RCtrl, press A twice".
func (h Hotkey) Press() string {
	if h.Key == nil {
		return "nothing fires"
	}
	return fmt.Sprintf("hold %s, press %s twice", strings.ReplaceAll(h.Modifiers.String(), "+", " and "), h.Layout.Label(h.Key))
}

// Registry returns the crashdump values that arm h: Dump1Keys and Dump2Key.
func (h Hotkey) Registry() (dump1Keys, dump2Key uint32) {
	return uint32(h.Modifiers), uint32(h.Dump2Key)
}

// String is the human form: "RCtrl+ScrollLock", "LShift+RShift+D".
func (h Hotkey) String() string {
	if h.Key == nil {
		return "none"
	}
	return h.Modifiers.String() + "+" + h.Key.Name()
}

// Spec is the spec form ParseHotkey reads back: "ctrl_r+scroll_lock".
func (h Hotkey) Spec() string {
	var parts []string
	for _, k := range h.Modifiers.Keys() {
		parts = append(parts, k.QCode)
	}
	if h.Key != nil {
		parts = append(parts, h.Key.QCode)
	}
	return strings.Join(parts, "+")
}

// RegistryString is the registry pair as "0x02/0x7d".
func (h Hotkey) RegistryString() string {
	return fmt.Sprintf("%#02x/%#02x", uint32(h.Modifiers), h.Dump2Key)
}

// Equal reports whether two hotkeys need the same keys (wherever they were armed).
func (h Hotkey) Equal(o Hotkey) bool { return h.Modifiers == o.Modifiers && h.Dump2Key == o.Dump2Key }
