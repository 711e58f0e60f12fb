package scancodes

import (
	"encoding/hex"
	"strings"
)

// Key is one key as QEMU, PS/2 (scan code set 1), Linux, USB HID and the Windows crash-key table
// name it.
type Key struct {
	// QCode is the QEMU QKeyCode, the canonical name ("ctrl_r", "scroll_lock").
	QCode string
	// Make is the set-1 byte sequence a PS/2 keyboard sends on press, as QEMU's i8042 emulation
	// sends it: one byte, E0 and a byte, E0 2A E0 37 for Print Screen, E1 1D 45 E1 9D C5 for Pause.
	Make []byte
	// Break is the set-1 byte sequence sent on release; nil for keys that have none (Pause and
	// the Korean Hangul/Hanja keys).
	Break []byte
	// Qnum is QEMU's number for the key: the set-1 code, with bit 0x80 standing for an E0 prefix.
	// It is what QMP's {"type":"number"} key and libvirt's qnum codeset take, and the encoding of
	// the Windows crash-key table.
	Qnum uint8
	// Linux is the Linux evdev key code and LinuxName its name ("KEY_RIGHTCTRL").
	Linux     uint16
	LinuxName string
	// USB is the HID usage on the Keyboard page (0x07) that QEMU's usb-kbd reports; 0 if none.
	// Values above 0xE7 are legacy Linux usbkbd numbers, not Keyboard-page usages.
	USB uint16
	// Code is the W3C KeyboardEvent.code name ("ControlRight"), empty if none.
	Code string
	// Dump2Key is the index in the drivers' crash-key table whose entry is this key, or -1.
	Dump2Key int
	// Since is the first QEMU release that knows QCode, when it is newer than 2.11.
	Since string
	// NotInGoQEMU is true when go-qemu's generated QKeyCode enum (QEMU 2.11 schema) lacks QCode:
	// send it by number.
	NotInGoQEMU bool
}

// E0 reports whether the key is E0-prefixed (its qnum has bit 0x80 set).
func (k *Key) E0() bool { return len(k.Make) >= 2 && k.Make[0] == 0xE0 }

// Set1Hex is the make sequence as lowercase hex without separators ("e01d").
func (k *Key) Set1Hex() string { return hex.EncodeToString(k.Make) }

// Modifier returns the Dump1Keys bit this key stands for (0x01 RShift, 0x02 RCtrl, 0x04 RAlt,
// 0x10 LShift, 0x20 LCtrl, 0x40 LAlt), or 0 if the key is not one of the six tracked modifiers.
func (k *Key) Modifier() uint8 {
	switch k.QCode {
	case "shift_r":
		return 0x01
	case "ctrl_r":
		return 0x02
	case "alt_r":
		return 0x04
	case "shift":
		return 0x10
	case "ctrl":
		return 0x20
	case "alt":
		return 0x40
	}
	return 0
}

// Name is a short human name: "RCtrl", "ScrollLock", "D", "1", "F12", "Numpad7".
func (k *Key) Name() string {
	if n, ok := shortNames[k.QCode]; ok {
		return n
	}
	switch {
	case strings.HasPrefix(k.Code, "Key") && len(k.Code) == 4:
		return k.Code[3:]
	case strings.HasPrefix(k.Code, "Digit") && len(k.Code) == 6:
		return k.Code[5:]
	case k.Code != "":
		return k.Code
	}
	return k.QCode
}

// String returns the canonical name (the QKeyCode).
func (k *Key) String() string { return k.QCode }

// shortNames overrides Name for keys whose W3C code is not what people call them.
var shortNames = map[string]string{
	"shift": "LShift", "shift_r": "RShift", "ctrl": "LCtrl", "ctrl_r": "RCtrl",
	"alt": "LAlt", "alt_r": "RAlt", "meta_l": "LWin", "meta_r": "RWin",
	"grave_accent": "Grave", "ret": "Enter", "spc": "Space", "esc": "Esc",
	"print": "PrintScreen", "sysrq": "SysRq", "kp_multiply": "NumpadMultiply",
	"asterisk": "NumpadMultiply",
}
