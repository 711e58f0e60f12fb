// Package scancodes is crashkey's key table: every key QEMU can send, with its QEMU QKeyCode
// (the canonical name, e.g. "ctrl_r"), PC scan code set 1 make and break bytes, qnum (the number
// QMP and libvirt's "qnum" codeset take), Linux evdev code and name, USB HID usage and, where the
// Windows keyboard drivers' 134-entry crash-key table has one, its Dump2Key index.
//
// Dump2Key is an index into the drivers' keyToScanTbl, not a scan code: see [Dump2KeyValue]. Keys
// are looked up by any name people type ("rctrl", "RightCtrl", "KEY_RIGHTCTRL", "ControlRight",
// "ctrl_r"; case-insensitive, '_', '-' and spaces ignored) with [Lookup], by set-1 code with
// [BySet1], by qnum with [ByQnum], by Dump2Key index with [ByDump2Key], by USB usage with [ByUSB]
// and by Linux code with [ByLinux].
package scancodes
