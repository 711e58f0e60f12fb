package hid

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/scancodes/layout"
)

func mustLayout(t *testing.T, name string) *layout.Layout {
	t.Helper()
	l, err := layout.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseHotkeyOn(t *testing.T) {
	cases := []struct {
		layout, spec string
		dump2Key     int    // 0: error
		describe     string // or the error's substring
	}{
		{"fr", "rctrl+a", 17, "RCtrl + A (AZERTY fr; the US Q position, Dump2Key 0x11)"},
		{"fr", "rctrl+q", 31, "RCtrl + Q (AZERTY fr; the US A position, Dump2Key 0x1f)"},
		{"fr", "lshift+rshift+é", 3, "LShift + RShift + é (AZERTY fr; the US 2 position, Dump2Key 0x03)"},
		{"fr", "rctrl+scroll", 125, "RCtrl + ScrollLock (AZERTY fr; the same key on every layout, Dump2Key 0x7d)"},
		{"fr", "rctrl+KEY_Q", 17, "RCtrl + A (AZERTY fr; the US Q position, Dump2Key 0x11)"},
		{"fr", "rctrl+,", 52, "RCtrl + , (AZERTY fr; the US M position, Dump2Key 0x34)"},
		{"de", "rctrl+z", 22, "RCtrl + Z (QWERTZ de; the US Y position, Dump2Key 0x16)"},
		{"de", "rctrl+udiaeresis", 27, "RCtrl + Ü (QWERTZ de; the US BracketLeft position, Dump2Key 0x1b)"},
		{"de", "rctrl++", 28, "RCtrl + + (QWERTZ de; the US BracketRight position, Dump2Key 0x1c)"},
		{"us", "rctrl+a", 31, "RCtrl + A (QWERTY us; the US A position, Dump2Key 0x1f)"},
		{"us", "rctrl+,", 53, "RCtrl + , (QWERTY us; the US Comma position, Dump2Key 0x35)"},
		{"us", "0x02/0x11", 17, "RCtrl + Q (QWERTY us; the US Q position, Dump2Key 0x11)"},
		// Refused.
		{"fr", "rctrl+@", 0, "no key of AZERTY fr types @ without a modifier"},
		{"us", "rctrl++", 0, "= (Shift gives +; the US Equal position, Dump2Key 0x0d)"},
		{"de", "rctrl+<", 0, "< on QWERTZ de (less, the US IntlBackslash position) is not in the driver's crash-key table"},
		{"jp", "rctrl+\\", 0, "is on 2 keys of QWERTY jp"},
	}
	for _, c := range cases {
		t.Run(c.layout+" "+c.spec, func(t *testing.T) {
			h, err := ParseHotkeyOn(c.spec, mustLayout(t, c.layout))
			if c.dump2Key == 0 {
				if err == nil || !strings.Contains(err.Error(), c.describe) {
					t.Fatalf("ParseHotkeyOn(%q) = %v, %v; want an error with %q", c.spec, h, err, c.describe)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Dump2Key != c.dump2Key || h.Describe() != c.describe {
				t.Errorf("ParseHotkeyOn(%q) = Dump2Key %d, %q; want %d, %q", c.spec, h.Dump2Key, h.Describe(), c.dump2Key, c.describe)
			}
		})
	}
}

// On US, every spec ParseHotkey reads gives the same hotkey with ParseHotkeyOn.
func TestParseHotkeyOnUSUnchanged(t *testing.T) {
	for _, spec := range []string{"rctrl+scroll", "lshift+rshift+d", "RightCtrl+Space", "0x11/0x22", "2/125", "ctrl-scroll",
		"rctrl+a", "rctrl+1", "ralt+f12", "lctrl+lalt+grave", "rctrl+KEY_A", "rctrl+semicolon", "rctrl+bracket_left", "rctrl+minus", "rctrl+print"} {
		want, err := ParseHotkey(spec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseHotkeyOn(spec, nil)
		if err != nil || !got.Equal(want) || got.CrashOnCtrlScroll != want.CrashOnCtrlScroll {
			t.Errorf("ParseHotkeyOn(%q, us) = %v, %v; ParseHotkey gives %v", spec, got, err, want)
		}
	}
}

// The driver model fed the stream of a French-labelled hotkey crashes exactly where the stream
// of the same key named by its US position does, on PS/2 and USB; and a guest armed for the
// US-label key does not crash on it.
func TestLayoutHotkeyDriverModel(t *testing.T) {
	fr := mustLayout(t, "fr")
	for _, c := range []struct{ french, us string }{{"rctrl+a", "rctrl+q"}, {"lshift+rshift+z", "lshift+rshift+w"}, {"rctrl+m", "rctrl+semicolon"}, {"lalt+ù", "lalt+apostrophe"}} {
		hf, err := ParseHotkeyOn(c.french, fr)
		if err != nil {
			t.Fatal(err)
		}
		hu, err := ParseHotkey(c.us)
		if err != nil {
			t.Fatal(err)
		}
		sf, su := Set1(Plan(hf, DefaultTiming)), Set1(Plan(hu, DefaultTiming))
		if !bytes.Equal(sf, su) {
			t.Errorf("%s on fr: set-1 %s, %s gives %s", c.french, HexBytes(sf), c.us, HexBytes(su))
		}
		armed := Armed(hu)
		vf, vu := SimulateSet1(armed, sf), SimulateSet1(armed, su)
		if !vf.Crash || !vu.Crash || *vf.At != *vu.At {
			t.Errorf("%s on fr: i8042prt %+v, %s: %+v", c.french, vf, c.us, vu)
		}
		uf, uu := USBReports(Plan(hf, DefaultTiming)), USBReports(Plan(hu, DefaultTiming))
		if !slices.Equal(uf, uu) {
			t.Errorf("%s on fr: USB reports differ from %s", c.french, c.us)
		}
		wf, wu := SimulateUSB(armed, uf), SimulateUSB(armed, uu)
		if !wf.Crash || !wu.Crash || *wf.At != *wu.At {
			t.Errorf("%s on fr: kbdhid %+v, %s: %+v", c.french, wf, c.us, wu)
		}
		// Armed for the key whose US name is the French label: no crash.
		wrong, err := ParseHotkey(c.french)
		if err != nil {
			continue // ù has no US name
		}
		if v := SimulateSet1(Armed(wrong), sf); v.Crash {
			t.Errorf("%s on fr crashes a guest armed for US %s", c.french, wrong)
		}
	}
}

// FuzzParseHotkeyOn: any spec on any of a few layouts parses or fails, never panics, and a
// parsed hotkey can fire.
func FuzzParseHotkeyOn(f *testing.F) {
	for _, s := range []string{"rctrl+a", "rctrl++", "rctrl+,", "lshift+rshift+ü", "rctrl+@", "0x02/0x11", "rctrl+/", "+", ",,", "rctrl+udiaeresis"} {
		f.Add(s, uint8(0))
	}
	names := []string{"us", "fr", "de", "jp", "ru"}
	f.Fuzz(func(t *testing.T, spec string, which uint8) {
		l, err := layout.Get(names[int(which)%len(names)])
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHotkeyOn(spec, l)
		if err != nil {
			return
		}
		if _, err := FromRegistry(h.Registry()); err != nil && !h.CrashOnCtrlScroll {
			t.Fatalf("ParseHotkeyOn(%q) gave a hotkey that cannot fire: %v", spec, err)
		}
		_ = h.Describe()
	})
}
