package scancodes

import "fmt"

// Dump2KeyCount is the number of entries in the Windows keyboard drivers' crash-key table.
const Dump2KeyCount = 134

// SysRqIndex is the Dump2Key index the drivers special-case: its table byte is 0 and the driver
// instead accepts both E0 37 (Print Screen on a 101-key board) and 54 (the 84-key SysRq key,
// also Alt+Print Screen).
const SysRqIndex = 124

// dump2KeyTable is keyToScanTbl of i8042prt/kbdhid/hyperkbd, verbatim from Microsoft's "Forcing
// a system crash from the keyboard". Values are set-1 make codes with bit 0x80 for an E0 prefix
// (qnum encoding); 0 means no key.
var dump2KeyTable = [Dump2KeyCount]uint8{
	0x00, 0x29, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, // 0
	0x0A, 0x0B, 0x0C, 0x0D, 0x7D, 0x0E, 0x0F, 0x10, 0x11, 0x12, // 10
	0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x00, // 20
	0x3A, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, // 30
	0x27, 0x28, 0x2B, 0x1C, 0x2A, 0x00, 0x2C, 0x2D, 0x2E, 0x2F, // 40
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x73, 0x36, 0x1D, 0x00, // 50
	0x38, 0x39, 0xB8, 0x00, 0x9D, 0x00, 0x00, 0x00, 0x00, 0x00, // 60
	0x00, 0x00, 0x00, 0x00, 0x00, 0xD2, 0xD3, 0x00, 0x00, 0xCB, // 70
	0xC7, 0xCF, 0x00, 0xC8, 0xD0, 0xC9, 0xD1, 0x00, 0x00, 0xCD, // 80
	0x45, 0x47, 0x4B, 0x4F, 0x00, 0xB5, 0x48, 0x4C, 0x50, 0x52, // 90
	0x37, 0x49, 0x4D, 0x51, 0x53, 0x4A, 0x4E, 0x00, 0x9C, 0x00, // 100
	0x01, 0x00, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F, 0x40, 0x41, 0x42, // 110
	0x43, 0x44, 0x57, 0x58, 0x00, 0x46, 0x00, 0x00, 0x00, 0x00, // 120
	0x00, 0x7B, 0x79, 0x70, // 130
}

// Dump2KeyValue returns the table byte at index idx (the qnum of the key the driver will treat
// as the crash key), and whether idx is inside the table. Index 124 returns 0: use
// [CrashScanCodes] to get what the driver really matches.
func Dump2KeyValue(idx int) (uint8, bool) {
	if idx < 0 || idx >= Dump2KeyCount {
		return 0, false
	}
	return dump2KeyTable[idx], true
}

// CrashScanCodes returns the driver's CrashScanCode and CrashScanCode2 for a Dump2Key index, in
// qnum encoding (bit 0x80 = the byte follows E0): the table value and 0, or 0xB7 and 0x54 for
// index 124. It fails for an index the driver can never match: outside 0..133 or a zero entry.
func CrashScanCodes(idx int) (key1, key2 uint8, err error) {
	if idx == SysRqIndex {
		return 0xB7, 0x54, nil
	}
	v, ok := Dump2KeyValue(idx)
	if !ok {
		return 0, 0, fmt.Errorf("Dump2Key %d is outside the driver's table (0..%d): the hotkey can never fire", idx, Dump2KeyCount-1)
	}
	if v == 0 {
		return 0, 0, fmt.Errorf("Dump2Key %d is an empty entry of the driver's table: the hotkey can never fire; %s", idx, emptyHint(idx))
	}
	return v, 0, nil
}

func emptyHint(idx int) string {
	switch idx {
	case 29:
		return "the backslash key is index 42"
	case 45:
		return "the ISO 102nd key cannot be a crash key"
	}
	return "run 'crashkey keys' for the valid indices"
}

// ByDump2Key returns the key at a Dump2Key index (Print Screen for 124), or false for an index
// outside the table or an empty entry.
func ByDump2Key(idx int) (*Key, bool) {
	if idx == SysRqIndex {
		return byQCode["print"], true
	}
	v, ok := Dump2KeyValue(idx)
	if !ok || v == 0 {
		return nil, false
	}
	return ByQnum(v)
}
