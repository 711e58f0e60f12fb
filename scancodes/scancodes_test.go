package scancodes

import (
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDump2KeyTableShape(t *testing.T) {
	if len(dump2KeyCases) != Dump2KeyCount {
		t.Fatalf("reference rows: %d, want %d", len(dump2KeyCases), Dump2KeyCount)
	}
	var zero []int
	for i := 0; i < Dump2KeyCount; i++ {
		if v, _ := Dump2KeyValue(i); v == 0 {
			zero = append(zero, i)
		}
	}
	want := []int{0, 29, 45, 59, 63, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 77, 78, 82, 87, 88, 94, 107, 109, 111, 124, 126, 127, 128, 129, 130}
	if !slices.Equal(zero, want) {
		t.Errorf("zero entries %v, want %v", zero, want)
	}
	for _, idx := range []int{-1, 134, 1000} {
		if _, ok := Dump2KeyValue(idx); ok {
			t.Errorf("Dump2KeyValue(%d) ok, want out of table", idx)
		}
		if _, _, err := CrashScanCodes(idx); err == nil {
			t.Errorf("CrashScanCodes(%d) accepted an index outside the table", idx)
		}
	}
}

// TestEveryDump2KeyIndex checks all 134 indices against the reference rows.
func TestEveryDump2KeyIndex(t *testing.T) {
	for _, c := range dump2KeyCases {
		t.Run(strconv.Itoa(c.idx), func(t *testing.T) {
			v, ok := Dump2KeyValue(c.idx)
			if !ok || v != c.value {
				t.Fatalf("Dump2KeyValue = %#x, %v; want %#x", v, ok, c.value)
			}
			k, ok := ByDump2Key(c.idx)
			if c.qcode == "" {
				if ok {
					t.Fatalf("ByDump2Key found %s for an empty entry", k.QCode)
				}
				if _, _, err := CrashScanCodes(c.idx); err == nil || !strings.Contains(err.Error(), "never fire") {
					t.Fatalf("CrashScanCodes: %v, want a 'never fire' error", err)
				}
				return
			}
			if !ok || k.QCode != c.qcode {
				t.Fatalf("ByDump2Key = %v, want %s", k, c.qcode)
			}
			if k.Dump2Key != c.idx {
				t.Errorf("%s.Dump2Key = %d, want %d", k.QCode, k.Dump2Key, c.idx)
			}
			k1, k2, err := CrashScanCodes(c.idx)
			if err != nil {
				t.Fatal(err)
			}
			if c.idx == SysRqIndex {
				if k1 != 0xB7 || k2 != 0x54 {
					t.Errorf("index 124 scan codes %#x/%#x, want 0xb7/0x54", k1, k2)
				}
				return
			}
			if k.Set1Hex() != c.make || k1 != k.Qnum || k2 != 0 {
				t.Errorf("make %s (crash code %#x), want %s (%#x)", k.Set1Hex(), k1, c.make, k.Qnum)
			}
		})
	}
}

func TestLookupAliasClasses(t *testing.T) {
	tests := []struct{ in, want string }{
		// QKeyCodes, any case
		{"ctrl_r", "ctrl_r"}, {"CTRL_R", "ctrl_r"}, {"scroll_lock", "scroll_lock"}, {"sysrq", "sysrq"}, {"asterisk", "asterisk"},
		// short aliases
		{"rctrl", "ctrl_r"}, {"lctrl", "ctrl"}, {"rshift", "shift_r"}, {"lshift", "shift"}, {"ralt", "alt_r"}, {"AltGr", "alt_r"},
		{"scroll", "scroll_lock"}, {"scrlk", "scroll_lock"}, {"grave", "grave_accent"}, {"space", "spc"}, {"enter", "ret"},
		{"esc", "esc"}, {"escape", "esc"}, {"del", "delete"}, {"prtsc", "print"}, {"win", "meta_l"},
		// human names
		{"RightCtrl", "ctrl_r"}, {"Right Ctrl", "ctrl_r"}, {"right-ctrl", "ctrl_r"}, {"RCtrl", "ctrl_r"}, {"ScrollLock", "scroll_lock"}, {"LShift", "shift"},
		// Linux names, with and without KEY_
		{"KEY_RIGHTCTRL", "ctrl_r"}, {"key_scrolllock", "scroll_lock"}, {"RIGHTCTRL", "ctrl_r"}, {"KEY_SYSRQ", "print"},
		{"KEY_KPASTERISK", "kp_multiply"}, {"KEY_D", "d"}, {"KEY_LEFTSHIFT", "shift"},
		// W3C codes
		{"ControlRight", "ctrl_r"}, {"KeyD", "d"}, {"Digit1", "1"}, {"Backquote", "grave_accent"}, {"NumpadEnter", "kp_enter"},
		{"PrintScreen", "print"}, {"ContextMenu", "compose"},
		// the one-letter and digit keys
		{"d", "d"}, {"D", "d"}, {"1", "1"}, {"f12", "f12"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, err := Lookup(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if k.QCode != tt.want {
				t.Errorf("Lookup(%q) = %s, want %s", tt.in, k.QCode, tt.want)
			}
		})
	}
}

func TestLookupUnknownSuggests(t *testing.T) {
	tests := []struct{ in, suggest string }{
		{"scrol_lock", "scroll_lock"}, {"rcrtl", "ctrl_r"}, {"ctrl_rr", "ctrl_r"}, {"escp", "esc"}, {"spce", "spc"},
	}
	for _, tt := range tests {
		_, err := Lookup(tt.in)
		var ue *UnknownKeyError
		if !errors.As(err, &ue) {
			t.Fatalf("Lookup(%q): %v, want *UnknownKeyError", tt.in, err)
		}
		if !slices.Contains(ue.Suggestions, tt.suggest) {
			t.Errorf("Lookup(%q) suggests %v, want %s among them", tt.in, ue.Suggestions, tt.suggest)
		}
		if !strings.Contains(err.Error(), "crashkey keys") {
			t.Errorf("error %q does not point at 'crashkey keys'", err)
		}
	}
	if _, err := Lookup(""); err == nil {
		t.Error("Lookup(\"\") succeeded")
	}
}

func TestReverseLookups(t *testing.T) {
	tests := []struct {
		name  string
		got   func() (*Key, bool)
		qcode string
	}{
		{"set1 1d", func() (*Key, bool) { return BySet1(0x1D) }, "ctrl"},
		{"set1 e01d", func() (*Key, bool) { return BySet1(0xE01D) }, "ctrl_r"},
		{"set1 46", func() (*Key, bool) { return BySet1(0x46) }, "scroll_lock"},
		{"set1 e046 (ctrl+break)", func() (*Key, bool) { return BySet1(0xE046) }, "pause"},
		{"set1 e11d", func() (*Key, bool) { return BySet1(0xE11D) }, "pause"},
		{"set1 e037", func() (*Key, bool) { return BySet1(0xE037) }, "print"},
		{"set1 54", func() (*Key, bool) { return BySet1(0x54) }, "print"},
		{"set1 37", func() (*Key, bool) { return BySet1(0x37) }, "kp_multiply"},
		{"set1 1c", func() (*Key, bool) { return BySet1(0x1C) }, "ret"},
		{"set1 e01c", func() (*Key, bool) { return BySet1(0xE01C) }, "kp_enter"},
		{"set1 f2", func() (*Key, bool) { return BySet1(0xF2) }, "lang1"},
		{"qnum 9d", func() (*Key, bool) { return ByQnum(0x9D) }, "ctrl_r"},
		{"qnum b7", func() (*Key, bool) { return ByQnum(0xB7) }, "print"},
		{"usb e4", func() (*Key, bool) { return ByUSB(0xE4) }, "ctrl_r"},
		{"usb 47", func() (*Key, bool) { return ByUSB(0x47) }, "scroll_lock"},
		{"usb 31", func() (*Key, bool) { return ByUSB(0x31) }, "backslash"},
		{"usb 32", func() (*Key, bool) { return ByUSB(0x32) }, "backslash"},
		{"linux 97", func() (*Key, bool) { return ByLinux(97) }, "ctrl_r"},
		{"linux 70", func() (*Key, bool) { return ByLinux(70) }, "scroll_lock"},
		{"linux 99", func() (*Key, bool) { return ByLinux(99) }, "print"},
		{"linux 55", func() (*Key, bool) { return ByLinux(55) }, "kp_multiply"},
	}
	for _, tt := range tests {
		k, ok := tt.got()
		if !ok || k.QCode != tt.qcode {
			t.Errorf("%s: got %v, %v; want %s", tt.name, k, ok, tt.qcode)
		}
	}
	for _, bad := range []uint16{0x00E0, 0xE1, 0x1234} {
		if k, ok := BySet1(bad); ok {
			t.Errorf("BySet1(%#x) = %s, want none", bad, k.QCode)
		}
	}
}

// TestE0Twins: keys that differ only by the E0 prefix must never be confused.
func TestE0Twins(t *testing.T) {
	twins := [][2]string{{"ctrl", "ctrl_r"}, {"alt", "alt_r"}, {"ret", "kp_enter"}, {"slash", "kp_divide"}, {"kp_multiply", "print"}, {"scroll_lock", "pause"}}
	for _, tw := range twins {
		a, _ := ByQCode(tw[0])
		b, _ := ByQCode(tw[1])
		if a.Qnum == b.Qnum || a.Set1Hex() == b.Set1Hex() {
			t.Errorf("%s and %s share a code", tw[0], tw[1])
		}
	}
}

func TestModifiers(t *testing.T) {
	want := map[string]uint8{"shift_r": 0x01, "ctrl_r": 0x02, "alt_r": 0x04, "shift": 0x10, "ctrl": 0x20, "alt": 0x40}
	for _, k := range All() {
		if got := k.Modifier(); got != want[k.QCode] {
			t.Errorf("%s.Modifier() = %#x, want %#x", k.QCode, got, want[k.QCode])
		}
	}
}

// TestQCodesAreTheirOwnNames: no alias may shadow a QKeyCode.
func TestQCodesAreTheirOwnNames(t *testing.T) {
	seen := map[string]bool{}
	for i := range All() {
		k := &All()[i]
		if seen[k.QCode] {
			t.Errorf("QKeyCode %s twice", k.QCode)
		}
		seen[k.QCode] = true
		got, err := Lookup(k.QCode)
		if err != nil || got != k {
			t.Errorf("Lookup(%s) = %v, %v", k.QCode, got, err)
		}
		for _, a := range Aliases(k) {
			got, err := Lookup(a)
			if err != nil {
				t.Errorf("alias %q of %s: %v", a, k.QCode, err)
			} else if got.Qnum != k.Qnum {
				t.Errorf("alias %q of %s resolves to %s", a, k.QCode, got.QCode)
			}
		}
	}
	if len(seen) != 161 {
		t.Errorf("%d keys, want the 161 QKeyCodes with a scan code", len(seen))
	}
}

// sharedFixture finds ../shared/fixtures/NAME beside the repository (or $CRASHKEY_SHARED).
func sharedFixture(name string) string {
	if d := os.Getenv("CRASHKEY_SHARED"); d != "" {
		return filepath.Join(d, "fixtures", name)
	}
	return filepath.Join("..", "..", "shared", "fixtures", name)
}

// TestAgainstKeymapsCSV cross-checks the table against QEMU's keycodemapdb keymaps.csv.
func TestAgainstKeymapsCSV(t *testing.T) {
	f, err := os.Open(sharedFixture("keymaps.csv"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("keymaps.csv is not beside the repository (../shared/fixtures)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	type csvKey struct {
		set1  uint16
		linux []uint16
		usb   []uint16
	}
	byQ := map[string]*csvKey{}
	for _, r := range rows[1:] {
		q, s1 := r[16], r[4]
		if q == "" || s1 == "" {
			continue
		}
		code, err := strconv.ParseUint(strings.TrimPrefix(s1, "0x"), 16, 16)
		if err != nil {
			t.Fatalf("row %v: %v", r, err)
		}
		c := byQ[q]
		if c == nil {
			c = &csvKey{set1: uint16(code)}
			byQ[q] = c
		}
		if l, err := strconv.Atoi(r[1]); err == nil {
			c.linux = append(c.linux, uint16(l))
		}
		if u, err := strconv.Atoi(r[7]); err == nil {
			c.usb = append(c.usb, uint16(u))
		}
	}
	if len(byQ) != len(All()) {
		t.Errorf("CSV has %d QKeyCodes with a set-1 code, table has %d", len(byQ), len(All()))
	}
	for _, k := range All() {
		c, ok := byQ[k.QCode]
		if !ok {
			t.Errorf("%s: not in keymaps.csv", k.QCode)
			continue
		}
		// qnum derivation rules of keymap-gen
		var qnum uint8
		switch {
		case c.set1 < 0x80:
			qnum = uint8(c.set1)
		case c.set1>>8 == 0xE0:
			qnum = 0x80 | uint8(c.set1)
		default:
			qnum = uint8(c.set1) & 0x7F
		}
		if qnum != k.Qnum {
			t.Errorf("%s: qnum %#x, CSV gives %#x", k.QCode, k.Qnum, qnum)
		}
		if k.QCode != "print" && k.QCode != "sysrq" && k.QCode != "pause" {
			csvMake := strings.TrimPrefix(strconv.FormatUint(uint64(c.set1), 16), "0x")
			if len(csvMake)%2 == 1 {
				csvMake = "0" + csvMake
			}
			if k.Set1Hex() != csvMake {
				t.Errorf("%s: make %s, CSV gives %s", k.QCode, k.Set1Hex(), csvMake)
			}
		}
		if !slices.Contains(c.linux, k.Linux) {
			t.Errorf("%s: Linux %d not among CSV's %v", k.QCode, k.Linux, c.linux)
		}
		if k.USB == 0 && len(c.usb) > 0 || k.USB != 0 && !slices.Contains(c.usb, k.USB) {
			t.Errorf("%s: USB %#x, CSV gives %v", k.QCode, k.USB, c.usb)
		}
	}
	// Every non-zero Dump2Key value is a known set-1 code.
	for i := 0; i < Dump2KeyCount; i++ {
		if v, _ := Dump2KeyValue(i); v != 0 {
			if _, ok := ByQnum(v); !ok {
				t.Errorf("Dump2Key %d value %#x is no known key", i, v)
			}
		}
	}
}
