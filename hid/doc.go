// Package hid turns a Windows crash hotkey into exact key events and models how the Windows
// keyboard drivers decide to bug-check.
//
// A [Hotkey] is the set of modifiers that must all be held ([Dump1Keys]) and the crash key
// (a Dump2Key index into the drivers' table; see package scancodes). It comes from
// CrashOnCtrlScroll ([CrashOnCtrlScroll]), from registry values ([FromRegistry]) or from a
// spec string ([ParseHotkey]: "rctrl+scroll", "lshift+rshift+d", "0x11/0x22").
//
// [Plan] turns a hotkey into a [Sequence]: every modifier down, the crash key down/up twice, the
// modifiers up in reverse order, each event followed by a delay ([DefaultTiming]). Renderers
// print a sequence as set-1 bytes, USB boot-keyboard reports, Linux evdev events, QMP
// input-send-event batches that never overflow QEMU's 16-scancode queue, and the chord-only
// forms (QMP send-key, HMP sendkey, virsh send-key) with a [ChordWarning] that says what a PS/2
// and a USB guest will really receive.
//
// The driver model ([Model], [SimulateSet1], [SimulateUSB]) is the crash-hotkey state machine of
// i8042prt (fed set-1 bytes) and kbdhid (fed boot reports, translated to set 1, releases before
// presses), with the registry precedence of [Registry]. It tells whether, and at which byte or
// report, the bug check 0xE2 fires.
package hid
