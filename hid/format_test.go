package hid

import (
	"path/filepath"
	"strings"
	"testing"

	gold "github.com/crashkey/crashkey/internal/golden"
)

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	gold.CheckString(t, filepath.Join("testdata", name), got)
}

// TestRenderGolden pins every renderer's output for a set of hotkeys.
func TestRenderGolden(t *testing.T) {
	hotkeys := map[string]string{
		"ctrlscroll":  "CrashOnCtrlScroll",
		"shifts-d":    "lshift+rshift+d",
		"rctrl-space": "0x02/0x3d",
		"ralt-prtsc":  "ralt+prtsc",
		"rctrl-kana":  "rctrl+katakanahiragana",
	}
	for name, spec := range hotkeys {
		h := mustHotkey(t, spec)
		for _, f := range Formats {
			t.Run(name+"/"+string(f), func(t *testing.T) {
				text, warning, err := Render(h, DefaultTiming, f)
				if err != nil {
					t.Fatal(err)
				}
				if f.IsChord() != (warning != "") {
					t.Errorf("warning %q for format %s", warning, f)
				}
				if warning != "" {
					text += "# " + warning + "\n"
				}
				golden(t, filepath.Join("render", name+"."+string(f)+".golden"), text)
			})
		}
	}
}

// TestDefaultHotkeyBytes pins the brief's example exactly.
func TestDefaultHotkeyBytes(t *testing.T) {
	text, _, err := Render(CrashOnCtrlScroll(), DefaultTiming, FormatSet1)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(text) != "e0 1d 46 c6 46 c6 e0 9d" {
		t.Errorf("default hotkey set1 = %q", text)
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "set1, usb") {
		t.Errorf("ParseFormat(xml) = %v", err)
	}
}
