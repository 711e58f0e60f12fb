package hid

import (
	"strings"
	"testing"
)

func mustHotkey(t testing.TB, spec string) Hotkey {
	t.Helper()
	h, err := ParseHotkey(spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := ParseHexBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u32(v uint32) *uint32 { return &v }

// TestPlannedHotkeysCrash: every planned hotkey crashes a guest armed for it, on PS/2 and on
// USB, whether the USB reports come from a real keyboard or from QEMU's usb-kbd, and fires on
// the second release of the crash key.
func TestPlannedHotkeysCrash(t *testing.T) {
	specs := []string{"CrashOnCtrlScroll", "rctrl+scroll", "lshift+rshift+grave", "lshift+rshift+d", "0x02/0x3d",
		"ralt+prtsc", "lalt+prtsc", "rshift+prtsc", "lctrl+lalt+delete", "rctrl+kp_enter", "rctrl+ret", "lctrl+rshift+f12",
		"0x77/0x2a", "rctrl+kp_multiply", "lalt+num_lock", "rctrl+katakanahiragana", "rctrl+left", "lshift+yen"}
	for _, spec := range specs {
		t.Run(spec, func(t *testing.T) {
			h := mustHotkey(t, spec)
			seq := Plan(h, DefaultTiming)
			reg := Armed(h)
			ps2 := Set1(seq)
			v := SimulateSet1(reg, ps2)
			if !v.Crash {
				t.Fatalf("PS/2 %s: no crash (state %#x)", HexBytes(ps2), v.State)
			}
			// it fires on the last byte of the crash key's second release
			mods := len(h.Modifiers.Keys())
			wantAt := len(Set1(seq[:mods+4])) - 1
			if *v.At != wantAt {
				t.Errorf("PS/2 fired at byte %d, want %d (second release of %s)", *v.At, wantAt, h.Key.Name())
			}
			for name, reps := range map[string][]Report{"usb": USBReports(seq), "qemu usb-kbd": QEMUUSBReports(seq)} {
				v := SimulateUSB(reg, reps)
				if !v.Crash {
					t.Errorf("%s: no crash for %v", name, reps)
				}
			}
			// The registry form of the same hotkey also fires (crashdump values).
			d1, d2 := h.Registry()
			if v := SimulateSet1(Registry{Dump1Keys: &d1, Dump2Key: &d2}, ps2); !v.Crash {
				t.Errorf("crashdump %s does not fire", h.RegistryString())
			}
		})
	}
}

// TestWrongWays: the ways of sending a hotkey that must not crash (qemu-observed.md,
// windows-crash.md §3.5).
func TestWrongWays(t *testing.T) {
	ctrlScroll := Registry{CrashOnCtrlScroll: 1}
	shiftsD := Armed(mustHotkey(t, "lshift+rshift+d"))
	tests := []struct {
		name string
		reg  Registry
		ps2  string // set-1 bytes, or
		usb  string // reports
	}{
		{"two separate chords (each releases RCtrl)", ctrlScroll, "e0 1d 46 c6 e0 9d e0 1d 46 c6 e0 9d", ""},
		{"Left Ctrl instead of Right Ctrl (E0 twin)", ctrlScroll, "1d 46 c6 46 c6 9d", ""},
		{"both Ctrls held: extra modifier", ctrlScroll, "1d e0 1d 46 c6 46 c6 e0 9d 9d", ""},
		{"extra Shift held", ctrlScroll, "2a e0 1d 46 c6 46 c6 e0 9d aa", ""},
		{"foreign key between the taps", ctrlScroll, "e0 1d 46 c6 1e 9e 46 c6 e0 9d", ""},
		{"foreign key make only between the taps", ctrlScroll, "e0 1d 46 c6 1e 46 c6 e0 9d", ""},
		{"Ctrl+Break (E0 46) is not Scroll Lock", ctrlScroll, "e0 1d e0 46 e0 c6 e0 46 e0 c6 e0 9d", ""},
		{"Right Ctrl released between the taps", ctrlScroll, "e0 1d 46 c6 e0 9d e0 1d 46 c6 e0 9d", ""},
		{"a single tap", ctrlScroll, "e0 1d 46 c6 e0 9d", ""},
		{"Pause between the taps resets", ctrlScroll, "e0 1d 46 c6 e1 1d 45 e1 9d c5 46 c6 e0 9d", ""},
		{"one Shift only for 0x11", shiftsD, "2a 20 a0 20 a0 aa", ""},
		{"USB chord with a repeated key (QEMU drops the second press)", ctrlScroll, "",
			"00 00 00 00 00 00 00 00;10 00 00 00 00 00 00 00;10 00 47 00 00 00 00 00;10 00 47 00 00 00 00 00;10 00 00 00 00 00 00 00;10 00 00 00 00 00 00 00;10 00 00 00 00 00 00 00;00 00 00 00 00 00 00 00"},
		{"USB Left Ctrl", ctrlScroll, "", "01 00 00 00 00 00 00 00;01 00 47 00 00 00 00 00;01 00 00 00 00 00 00 00;01 00 47 00 00 00 00 00;01 00 00 00 00 00 00 00;00 00 00 00 00 00 00 00"},
		{"USB extra key held", ctrlScroll, "", "10 00 04 00 00 00 00 00;10 00 04 47 00 00 00 00;10 00 04 00 00 00 00 00;10 00 04 47 00 00 00 00;10 00 04 00 00 00 00 00"},
		{"not armed at all (server, no values)", Registry{}, "e0 1d 46 c6 46 c6 e0 9d", ""},
		{"Dump1Keys 0 disables", Registry{Dump1Keys: u32(0), Dump2Key: u32(125)}, "e0 1d 46 c6 46 c6 e0 9d", ""},
		{"Dump2Key on an empty entry", Registry{Dump1Keys: u32(2), Dump2Key: u32(29)}, "e0 1d 2b ab 2b ab e0 9d", ""},
		{"Dump2Key pointing at a modifier", Registry{Dump1Keys: u32(0x10), Dump2Key: u32(64)}, "2a e0 1d e0 9d e0 1d e0 9d aa", ""},
		{"crashdump ignored under CrashOnCtrlScroll", Registry{CrashOnCtrlScroll: 1, Dump1Keys: u32(0x11), Dump2Key: u32(0x21)}, "2a 36 20 a0 20 a0 b6 aa", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Verdict
			if tt.ps2 != "" {
				v = SimulateSet1(tt.reg, mustBytes(t, tt.ps2))
			} else {
				reps, err := ParseReports(tt.usb)
				if err != nil {
					t.Fatal(err)
				}
				v = SimulateUSB(tt.reg, reps)
			}
			if v.Crash {
				t.Fatalf("crashed at %d; want no crash", *v.At)
			}
		})
	}
}

// TestDriverQuirks: inputs that do crash although they look odd.
func TestDriverQuirks(t *testing.T) {
	ctrlScroll := Registry{CrashOnCtrlScroll: 1}
	tests := []struct {
		name string
		reg  Registry
		ps2  string
		at   int
	}{
		{"observed input-send-event stream", ctrlScroll, "e0 1d 46 c6 46 c6 e0 9d", 5},
		{"send-key chord on PS/2 (typematic repeat, two breaks)", ctrlScroll, "e0 1d 46 46 c6 c6 e0 9d", 5},
		{"ACK bytes after the LED update are consumed", ctrlScroll, "e0 1d 46 c6 fa fa 46 c6 e0 9d", 7},
		{"auto-repeat of the held modifier", ctrlScroll, "e0 1d e0 1d 46 e0 1d c6 46 c6 e0 9d", 9},
		{"modifier pressed after the first tap", ctrlScroll, "46 c6 e0 1d 46 c6 e0 9d", 5},
		{"fake shifts are ignored", Registry{Dump1Keys: u32(0x02), Dump2Key: u32(124)}, "e0 1d e0 2a e0 37 e0 b7 e0 aa e0 2a e0 37 e0 b7 e0 aa e0 9d", 15},
		{"index 124 also matches 54 (Alt+PrtSc)", Registry{Dump1Keys: u32(0x04), Dump2Key: u32(124)}, "e0 38 54 d4 54 d4 e0 b8", 5},
		{"missing modifier added after two taps, one more tap fires", Registry{Dump1Keys: u32(0x11), Dump2Key: u32(0x21)}, "2a 20 a0 20 a0 36 20 a0 b6 aa", 7},
		{"client default 0x11/1 with no values", Registry{Client: true}, "2a 36 29 a9 29 a9 b6 aa", 5},
		{"client default fills a missing Dump2Key", Registry{Client: true, Dump1Keys: u32(0x02)}, "e0 1d 29 a9 29 a9 e0 9d", 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := SimulateSet1(tt.reg, mustBytes(t, tt.ps2))
			if !v.Crash {
				t.Fatalf("no crash (state %#x)", v.State)
			}
			if *v.At != tt.at {
				t.Errorf("fired at byte %d, want %d", *v.At, tt.at)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	tests := []struct {
		name         string
		reg          Registry
		source       string
		hotkey       string
		reasonSubstr string
	}{
		{"CrashOnCtrlScroll", Registry{CrashOnCtrlScroll: 1}, "CrashOnCtrlScroll", "RCtrl+ScrollLock", ""},
		{"any non-zero CrashOnCtrlScroll", Registry{CrashOnCtrlScroll: 7}, "CrashOnCtrlScroll", "RCtrl+ScrollLock", ""},
		{"CrashOnCtrlScroll overrides crashdump", Registry{CrashOnCtrlScroll: 1, Dump1Keys: u32(0x11), Dump2Key: u32(0x21)}, "CrashOnCtrlScroll", "RCtrl+ScrollLock", ""},
		{"crashdump", Registry{Dump1Keys: u32(0x02), Dump2Key: u32(0x3d)}, "crashdump", "RCtrl+Space", ""},
		{"client default", Registry{Client: true}, "built-in default", "LShift+RShift+Grave", ""},
		{"server without values", Registry{}, "none", "", "server"},
		{"Dump1Keys 0", Registry{Client: true, Dump1Keys: u32(0)}, "crashdump", "", "disables"},
		{"missing Dump2Key on a server", Registry{Dump1Keys: u32(0x02)}, "crashdump", "", "empty entry"},
		{"index out of range", Registry{Dump1Keys: u32(0x02), Dump2Key: u32(0x1D)}, "crashdump", "", "empty entry"},
		{"index far out of range", Registry{Dump1Keys: u32(0x02), Dump2Key: u32(0xFFFFFFFF)}, "crashdump", "", "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.reg.Effective()
			if e.Source != tt.source {
				t.Errorf("source %q, want %q", e.Source, tt.source)
			}
			got := ""
			if e.Hotkey != nil {
				got = e.Hotkey.String()
			}
			if got != tt.hotkey {
				t.Errorf("hotkey %q, want %q", got, tt.hotkey)
			}
			if tt.hotkey == "" && (e.Enabled() || !strings.Contains(e.Reason, tt.reasonSubstr)) {
				t.Errorf("enabled=%v reason %q, want disabled with %q", e.Enabled(), e.Reason, tt.reasonSubstr)
			}
		})
	}
}

func TestChordReport(t *testing.T) {
	c := Chord(CrashOnCtrlScroll())
	if c.PS2.Received != "e0 1d 46 46 c6 c6 e0 9d" || !c.PS2.Verdict.Crash {
		t.Errorf("PS/2 chord: %+v", c.PS2)
	}
	if c.USB.Verdict.Crash {
		t.Errorf("USB chord crashed: %+v", c.USB)
	}
	w := ChordWarning(CrashOnCtrlScroll())
	for _, want := range []string{"e0 1d 46 46 c6 c6 e0 9d", "crashes (at byte 5)", "1 press(es)", "does NOT crash", "input-send-event"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
}

func TestReleases(t *testing.T) {
	seq := Plan(mustHotkey(t, "lshift+rshift+d"), DefaultTiming)
	tests := []struct {
		sent int
		want string
	}{
		{0, ""}, {1, "-shift"}, {2, "-shift_r -shift"}, {3, "-d -shift_r -shift"}, {4, "-shift_r -shift"}, {7, "-shift"}, {8, ""},
	}
	for _, tt := range tests {
		if got := Releases(seq[:tt.sent]).String(); got != tt.want {
			t.Errorf("after %d events (%s): releases %q, want %q", tt.sent, seq[:tt.sent], got, tt.want)
		}
	}
}

func TestQMPBatchesRespectQueue(t *testing.T) {
	for _, spec := range []string{"CrashOnCtrlScroll", "0x77/0x4f", "lctrl+lalt+ralt+rctrl+prtsc"} {
		h := mustHotkey(t, spec)
		for _, timing := range []Timing{DefaultTiming, BurstTiming} {
			batches := QMPBatches(Plan(h, timing))
			var all Sequence
			for _, b := range batches {
				if b.Scancodes > QEMUQueueLimit || len(b.Events) > MaxEventsPerCall {
					t.Errorf("%s: batch of %d scancodes / %d events", spec, b.Scancodes, len(b.Events))
				}
				all = append(all, b.Events...)
			}
			if all.String() != Plan(h, timing).String() {
				t.Errorf("%s: batches reorder or lose events", spec)
			}
			if timing == DefaultTiming && len(batches) != len(all) {
				t.Errorf("%s: paced plan should send one event per call, got %d calls for %d events", spec, len(batches), len(all))
			}
		}
	}
	if n := len(QMPBatches(Plan(mustHotkey(t, "0x77/0x4f"), BurstTiming))); n < 2 {
		t.Errorf("a burst of 16 events (22 scancodes) went out in %d call(s)", n)
	}
}
