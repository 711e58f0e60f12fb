package hid

import (
	"testing"
)

// FuzzSimulateSet1 feeds arbitrary bytes and registry values to the i8042prt model: it never
// panics, and a reported crash points inside the input at a break byte.
func FuzzSimulateSet1(f *testing.F) {
	f.Add([]byte{0xe0, 0x1d, 0x46, 0xc6, 0x46, 0xc6, 0xe0, 0x9d}, uint32(1), uint32(0), uint32(0), false)
	f.Add([]byte{0x2a, 0x36, 0x29, 0xa9, 0x29, 0xa9, 0xb6, 0xaa}, uint32(0), uint32(0x11), uint32(1), true)
	f.Add([]byte{0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5, 0xe0, 0x2a, 0xe0, 0x37, 0xfa}, uint32(0), uint32(2), uint32(124), false)
	f.Fuzz(func(t *testing.T, in []byte, ctrlScroll, d1, d2 uint32, client bool) {
		v := SimulateSet1(Registry{CrashOnCtrlScroll: ctrlScroll, Dump1Keys: &d1, Dump2Key: &d2, Client: client}, in)
		if v.Crash != (v.At != nil) {
			t.Fatalf("crash %v with at %v", v.Crash, v.At)
		}
		if v.Crash && (*v.At < 0 || *v.At >= len(in) || in[*v.At] < 0x80) {
			t.Fatalf("fired at %d of %x, not on a break byte", *v.At, in)
		}
	})
}

// FuzzSimulateUSB does the same for kbdhid and boot reports.
func FuzzSimulateUSB(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0x47, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0}, uint32(1))
	f.Add([]byte{0x10, 0, 1, 1, 1, 1, 1, 1}, uint32(0))
	f.Fuzz(func(t *testing.T, in []byte, ctrlScroll uint32) {
		var reps []Report
		for len(in) >= 8 && len(reps) < 4096 {
			var r Report
			copy(r[:], in)
			reps = append(reps, r)
			in = in[8:]
		}
		v := SimulateUSB(Registry{CrashOnCtrlScroll: ctrlScroll, Client: true}, reps)
		if v.Crash && (*v.At < 0 || *v.At >= len(reps)) {
			t.Fatalf("fired at %d of %d reports", *v.At, len(reps))
		}
	})
}

// FuzzParseHotkey: a spec is refused with an error, or it yields a hotkey whose planned
// sequence crashes a guest armed for it, on PS/2 and on USB.
func FuzzParseHotkey(f *testing.F) {
	for _, s := range []string{"rctrl+scroll", "lshift+rshift+d", "0x11/0x22", "2/124", "CrashOnCtrlScroll", "rctrl", "ctrl_r+ctrl", "0x80/1", "a+b+c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		h, err := ParseHotkey(spec)
		if err != nil {
			if h.Key != nil {
				t.Fatalf("error %v with a hotkey %v", err, h)
			}
			return
		}
		seq := Plan(h, BurstTiming)
		reg := Armed(h)
		if !SimulateSet1(reg, Set1(seq)).Crash || !SimulateUSB(reg, USBReports(seq)).Crash || !SimulateUSB(reg, QEMUUSBReports(seq)).Crash {
			t.Fatalf("accepted hotkey %q (%s) does not crash when planned", spec, h)
		}
	})
}
