package standin

import (
	"testing"

	"github.com/crashkey/crashkey/hid"
)

// machineFor is a Machine whose drivers carry the given registry values, as Load derives them.
func machineFor(client bool, ps2, usb *hid.Registry) *Machine {
	m := &Machine{Client: client}
	for _, d := range []struct {
		drv hid.Driver
		reg *hid.Registry
	}{{hid.I8042prt, ps2}, {hid.Kbdhid, usb}} {
		c := DriverConfig{Driver: d.drv}
		if d.reg != nil {
			r := *d.reg
			r.Client = client
			c.Present, c.Values, c.Effective = true, r, r.Effective()
		}
		m.Drivers = append(m.Drivers, c)
	}
	return m
}

func u32(v uint32) *uint32 { return &v }

func mustHotkey(t *testing.T, spec string) hid.Hotkey {
	t.Helper()
	h, err := hid.ParseHotkey(spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDetectorPS2(t *testing.T) {
	ctrlScroll := &hid.Registry{CrashOnCtrlScroll: 1}
	custom := &hid.Registry{Dump1Keys: u32(0x11), Dump2Key: u32(0x21)} // LShift+RShift+D
	tests := []struct {
		name   string
		m      *Machine
		bytes  string
		fireAt int // index of the byte that fires; -1 never
	}{
		// windows-crash.md §3.5: fires on the second Scroll Lock break (C6), byte 5.
		{"ctrl scroll", machineFor(false, ctrlScroll, nil), "e0 1d 46 c6 46 c6 e0 9d", 5},
		{"left ctrl does not count", machineFor(false, ctrlScroll, nil), "1d 46 c6 46 c6 9d", -1},
		{"both ctrls do not count", machineFor(false, ctrlScroll, nil), "1d e0 1d 46 c6 46 c6 e0 9d 9d", -1},
		{"a letter between the taps resets", machineFor(false, ctrlScroll, nil), "e0 1d 46 c6 1e 9e 46 c6 e0 9d", -1},
		// A reset also forgets the held modifiers: taps after it count only once Right Ctrl
		// is seen again (its typematic repeat).
		{"a reset forgets held modifiers", machineFor(false, ctrlScroll, nil), "e0 1d 46 c6 1e 9e 46 c6 46 c6", -1},
		{"typematic ctrl after a reset fires", machineFor(false, ctrlScroll, nil), "e0 1d 46 c6 1e 9e e0 1d 46 c6 46 c6", 11},
		{"auto-repeat makes are harmless", machineFor(false, ctrlScroll, nil), "e0 1d e0 1d 46 46 46 c6 46 c6", 9},
		{"custom hotkey", machineFor(false, custom, nil), "2a 36 20 a0 20 a0 b6 aa", 5},
		{"custom hotkey needs both shifts", machineFor(false, custom, nil), "2a 20 a0 20 a0 aa", -1},
		// A client with no crashdump values: the built-in LShift+RShift+grave.
		{"client built-in default", machineFor(true, &hid.Registry{}, nil), "2a 36 29 a9 29 a9 b6 aa", 5},
		{"server has no default", machineFor(false, &hid.Registry{}, nil), "2a 36 29 a9 29 a9 b6 aa", -1},
		{"driver not installed", machineFor(true, nil, ctrlScroll), "e0 1d 46 c6 46 c6 e0 9d", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hid.ParseHexBytes(tc.bytes)
			if err != nil {
				t.Fatal(err)
			}
			d := NewDetector(tc.m)
			at := -1
			for i, c := range b {
				if d.FeedPS2(c) {
					if at >= 0 {
						t.Fatalf("fired twice, at %d and %d", at, i)
					}
					at = i
				}
			}
			if at != tc.fireAt {
				ps2, _ := d.State()
				t.Fatalf("fired at %d, want %d (state 0x%x)", at, tc.fireAt, ps2)
			}
			if want := map[bool]hid.Driver{true: hid.I8042prt, false: ""}[tc.fireAt >= 0]; d.Fired() != want {
				t.Errorf("Fired() = %q, want %q", d.Fired(), want)
			}
			// The USB keyboard's driver never saw these bytes.
			if _, usb := d.State(); usb != 0 {
				t.Errorf("kbdhid state 0x%x after PS/2 input", usb)
			}
		})
	}
}

func TestDetectorUSB(t *testing.T) {
	ctrlScroll := &hid.Registry{CrashOnCtrlScroll: 1}
	tests := []struct {
		name    string
		m       *Machine
		reports string
		fireAt  int
	}{
		// Right Ctrl (modifier bit 0x10), Scroll Lock (usage 0x47) down, up, down, up.
		{"ctrl scroll", machineFor(false, nil, ctrlScroll),
			"10 00 00 00 00 00 00 00; 10 00 47 00 00 00 00 00; 10 00 00 00 00 00 00 00; 10 00 47 00 00 00 00 00; 10 00 00 00 00 00 00 00; 00 00 00 00 00 00 00 00", 4},
		{"left ctrl does not count", machineFor(false, nil, ctrlScroll),
			"01 00 00 00 00 00 00 00; 01 00 47 00 00 00 00 00; 01 00 00 00 00 00 00 00; 01 00 47 00 00 00 00 00; 01 00 00 00 00 00 00 00", -1},
		{"ps2 only armed", machineFor(false, ctrlScroll, &hid.Registry{}),
			"10 00 00 00 00 00 00 00; 10 00 47 00 00 00 00 00; 10 00 00 00 00 00 00 00; 10 00 47 00 00 00 00 00; 10 00 00 00 00 00 00 00", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reports, err := hid.ParseReports(tc.reports)
			if err != nil {
				t.Fatal(err)
			}
			d := NewDetector(tc.m)
			at := -1
			for i, r := range reports {
				if d.FeedUSB(r) && at < 0 {
					at = i
				}
			}
			if at != tc.fireAt {
				t.Fatalf("fired at report %d, want %d", at, tc.fireAt)
			}
			if tc.fireAt >= 0 && d.Fired() != hid.Kbdhid {
				t.Errorf("Fired() = %q, want kbdhid", d.Fired())
			}
		})
	}
}

// TestDetectorPlans feeds the exact sequences crashkey sends (hid.Plan rendered as set-1
// bytes and boot reports) to a machine armed for the same hotkey: every plan fires once, on
// the second release of the crash key, on both keyboards; a plan for another hotkey never does.
func TestDetectorPlans(t *testing.T) {
	for _, spec := range []string{"ctrl-scroll", "rctrl+space", "lshift+rshift+d", "lctrl+lalt+f12", "ralt+print", "rshift+kp_5", "0x40/0x7c"} {
		t.Run(spec, func(t *testing.T) {
			h := mustHotkey(t, spec)
			reg := hid.Armed(h)
			m := machineFor(false, &reg, &reg)
			seq := hid.Plan(h, hid.BurstTiming)

			d := NewDetector(m)
			fired := 0
			for _, b := range hid.Set1(seq) {
				if d.FeedPS2(b) {
					fired++
				}
			}
			// After a bug check the machine is gone; a fresh one for the USB keyboard.
			for _, r := range hid.USBReports(seq) {
				if d.FeedUSB(r) {
					t.Fatalf("the detector fired again after the bug check")
				}
			}
			du := NewDetector(m)
			reports := hid.USBReports(seq)
			usbAt := -1
			for i, r := range reports {
				if du.FeedUSB(r) {
					usbAt = i
				}
			}
			// The plan is: modifiers down, key down, up, down, up, modifiers up; one report per
			// event, so kbdhid fires on report len(mods)+3.
			mods := len(h.Modifiers.Keys())
			if fired != 1 || d.Fired() != hid.I8042prt {
				t.Errorf("PS/2: fired %d times (first driver %q), want once", fired, d.Fired())
			}
			if usbAt != mods+3 {
				t.Errorf("USB: fired at report %d of %d, want %d", usbAt, len(reports), mods+3)
			}

			other := mustHotkey(t, "lalt+rshift+z")
			oreg := hid.Armed(other)
			od := NewDetector(machineFor(false, &oreg, &oreg))
			for _, b := range hid.Set1(seq) {
				if od.FeedPS2(b) {
					t.Fatalf("a machine armed for %s fired on the plan for %s", other, h)
				}
			}
			for _, r := range reports {
				if od.FeedUSB(r) {
					t.Fatalf("a machine armed for %s fired on the USB plan for %s", other, h)
				}
			}
		})
	}
}
