package hid

import (
	"strings"
	"testing"

	"github.com/crashkey/crashkey/scancodes"
)

func TestDump1KeysString(t *testing.T) {
	tests := []struct {
		in   Dump1Keys
		want string
	}{
		{0x11, "LShift+RShift"}, {0x02, "RCtrl"}, {0x20, "LCtrl"}, {0x77, "LShift+RShift+LCtrl+RCtrl+LAlt+RAlt"},
		{0x44, "LAlt+RAlt"}, {0, "none"}, {0x0A, "RCtrl+0x8"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint32(tt.in), got, tt.want)
		}
	}
}

func TestParseDump1Keys(t *testing.T) {
	tests := []struct {
		in      string
		want    Dump1Keys
		wantErr string
	}{
		{"0x11", 0x11, ""}, {"17", 0x11, ""}, {"LShift+RShift", 0x11, ""}, {"rshift,lshift", 0x11, ""},
		{"rctrl", 0x02, ""}, {"KEY_RIGHTCTRL", 0x02, ""}, {"lctrl+lalt", 0x60, ""}, {"0", 0, ""},
		{"0x08", 0, "0x8"}, {"0x80", 0, "0x80"}, {"0x102", 0, "0x100"}, {"0x1ffffffff", 0, "REG_DWORD"},
		{"rctrl+d", 0, "not a modifier"}, {"ctrlx", 0, "unknown key"}, {"", 0, "empty"},
	}
	for _, tt := range tests {
		got, err := ParseDump1Keys(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDump1Keys(%q) error %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			if err != nil && strings.Contains(tt.wantErr, "0x") && !strings.Contains(err.Error(), "valid bits") {
				t.Errorf("error %q does not name the valid bits", err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDump1Keys(%q) = %#x, %v; want %#x", tt.in, uint32(got), err, uint32(tt.want))
		}
	}
}

func TestFromRegistryRefusals(t *testing.T) {
	tests := []struct {
		name   string
		d1, d2 uint32
		reason string
	}{
		{"index above 133", 0x02, 134, "outside the driver's table"},
		{"scan code given instead of index", 0x02, 0x1D0, "not a scan code"},
		{"empty entry", 0x02, 29, "empty entry"},
		{"empty entry 0", 0x02, 0, "empty entry"},
		{"modifier as trigger: RCtrl", 0x20, 64, "modifier"},
		{"modifier as trigger: LShift", 0x02, 44, "modifier"},
		{"no modifier", 0, 125, "at least one modifier"},
		{"bit 0x08", 0x0A, 125, "0x8"},
		{"bit 0x80", 0x82, 125, "0x80"},
		{"internal flag bits", 0x302, 125, "0x300"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromRegistry(tt.d1, tt.d2)
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("FromRegistry(%#x, %d) = %v, want an error mentioning %q", tt.d1, tt.d2, err, tt.reason)
			}
		})
	}
}

func TestParseHotkey(t *testing.T) {
	tests := []struct {
		spec          string
		human, reg    string
		ctrlScroll    bool
		wantErrSubstr string
	}{
		{"rctrl+scroll", "RCtrl+ScrollLock", "0x02/0x7d", false, ""},
		{"RightCtrl + ScrollLock", "RCtrl+ScrollLock", "0x02/0x7d", false, ""},
		{"CrashOnCtrlScroll", "RCtrl+ScrollLock", "0x02/0x7d", true, ""},
		{"lshift+rshift+d", "LShift+RShift+D", "0x11/0x21", false, ""},
		{"rshift+lshift+grave", "LShift+RShift+Grave", "0x11/0x01", false, ""},
		{"0x11/0x22", "LShift+RShift+F", "0x11/0x22", false, ""},
		{"2/61", "RCtrl+Space", "0x02/0x3d", false, ""},
		{"ralt+prtsc", "RAlt+PrintScreen", "0x04/0x7c", false, ""},
		{"lctrl+lalt+KEY_DELETE", "LCtrl+LAlt+Delete", "0x60/0x4c", false, ""},
		{"rctrl+kp_enter", "RCtrl+NumpadEnter", "0x02/0x6c", false, ""},
		{"ctrl_r+katakanahiragana", "RCtrl+KanaMode", "0x02/0x85", false, ""},
		{"scroll", "", "", false, "no modifier"},
		{"rctrl+lctrl", "", "", false, "is a modifier"},
		{"d+scroll", "", "", false, "not a modifier"},
		{"rctrl+meta_l", "", "", false, "not in the driver's crash-key table"},
		{"rctrl+pause", "", "", false, "not in the driver's crash-key table"},
		{"rctrl+scrol", "", "", false, "did you mean"},
		{"0x02/134", "", "", false, "outside"},
		{"0x02/x", "", "", false, "two numbers"},
		{"", "", "", false, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			h, err := ParseHotkey(tt.spec)
			if tt.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr) {
					t.Fatalf("ParseHotkey(%q) = %v, %v; want error with %q", tt.spec, h, err, tt.wantErrSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.String() != tt.human || h.RegistryString() != tt.reg || h.CrashOnCtrlScroll != tt.ctrlScroll {
				t.Errorf("got %s %s ctrlScroll=%v, want %s %s %v", h, h.RegistryString(), h.CrashOnCtrlScroll, tt.human, tt.reg, tt.ctrlScroll)
			}
		})
	}
}

// TestRoundTrips: spec → registry values → spec for every usable index and several modifier sets.
func TestRoundTrips(t *testing.T) {
	mods := []Dump1Keys{RShift, RCtrl, RAlt, LShift, LCtrl, LAlt, LShift | RShift, RCtrl | LAlt, ValidDump1Keys}
	n := 0
	for idx := 0; idx < scancodes.Dump2KeyCount; idx++ {
		k, ok := scancodes.ByDump2Key(idx)
		if !ok || k.Modifier() != 0 {
			continue
		}
		for _, m := range mods {
			h, err := FromRegistry(uint32(m), uint32(idx))
			if err != nil {
				t.Fatalf("FromRegistry(%#x, %d): %v", uint32(m), idx, err)
			}
			for _, spec := range []string{h.Spec(), h.String(), h.RegistryString()} {
				back, err := ParseHotkey(spec)
				if err != nil {
					t.Fatalf("ParseHotkey(%q): %v", spec, err)
				}
				d1, d2 := back.Registry()
				if d1 != uint32(m) || d2 != uint32(idx) {
					t.Fatalf("%q → %#x/%d, want %#x/%d", spec, d1, d2, uint32(m), idx)
				}
			}
			n++
		}
	}
	if n != 99*len(mods) { // 104 non-zero entries − 6 modifiers + index 124 = 99 keys
		t.Errorf("round-tripped %d hotkeys, want %d", n, 99*len(mods))
	}
}
