package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseParams(t *testing.T) {
	p := parseParams("console=ttyS0 quiet crashkey.mode=recorder crashkey.expect=ps2,,usb crashkey.panic_on_nmi=1 crashkey.mode=windows x=a=b\n")
	tests := []struct {
		key, def, want string
	}{
		{"console", "", "ttyS0"},
		{"crashkey.mode", "recorder", "windows"}, // the last occurrence wins
		{"quiet", "def", ""},
		{"x", "", "a=b"},
		{"missing", "def", "def"},
	}
	for _, tt := range tests {
		if got := p.get(tt.key, tt.def); got != tt.want {
			t.Errorf("get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if got := p.list("crashkey.expect"); !slices.Equal(got, []string{"ps2", "usb"}) {
		t.Errorf("list = %q", got)
	}
	if got := p.list("missing"); got != nil {
		t.Errorf("list(missing) = %q", got)
	}
	flags := []struct {
		key  string
		want bool
	}{{"crashkey.panic_on_nmi", true}, {"quiet", true}, {"console", false}, {"missing", false}}
	for _, f := range flags {
		if got := p.flag(f.key); got != f.want {
			t.Errorf("flag(%q) = %v, want %v", f.key, got, f.want)
		}
	}
}

func TestHexBytes(t *testing.T) {
	if got := hexBytes([]byte{0x10, 0, 0x47, 0xff}); got != "10 00 47 ff" {
		t.Errorf("hexBytes = %q", got)
	}
	if got := hexBytes(nil); got != "" {
		t.Errorf("hexBytes(nil) = %q", got)
	}
}

func TestBusName(t *testing.T) {
	for in, want := range map[string]string{"0003": "usb", "0006": "virtio", "0011": "i8042", "0019": "other", "": "other", "zz": "other"} {
		if got := busName(in); got != want {
			t.Errorf("busName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModesRegistered(t *testing.T) {
	for _, m := range []string{"recorder", "windows"} {
		if _, ok := modes[m]; !ok {
			t.Fatalf("%s mode not registered", m)
		}
	}
	if got := modeNames(); !slices.Contains(got, "recorder") {
		t.Fatalf("modeNames = %q", got)
	}
}

// TestInputEventFields checks the observation lines the recorder prints; the harness parses them
// (harness.ParseLine), so both sides must agree.
func TestInputEventFields(t *testing.T) {
	tests := []struct {
		ev   inputEvent
		want string
	}{
		{inputEvent{Kind: "ps2", Data: []byte{0xe0}}, "ps2 e0"},
		{inputEvent{Kind: "usb", Data: []byte{0x10, 0, 0x47, 0, 0, 0, 0, 0}}, "usb 10 00 47 00 00 00 00 00"},
		{inputEvent{Kind: "evdev", Bus: "virtio", Type: 1, Code: 97, Value: 1}, "evdev virtio KEY 97 1"},
		{inputEvent{Kind: "evdev", Bus: "usb", Type: 4, Code: 4, Value: 458823}, "evdev usb MSC 4 458823"},
		{inputEvent{Kind: "evdev", Bus: "other", Type: 3, Code: 0, Value: -5}, "evdev other 3 0 -5"},
		{inputEvent{Kind: "bogus"}, `error unknown input kind "bogus"`},
	}
	for _, tt := range tests {
		kind, fields := tt.ev.fields()
		if got := strings.Join(append([]string{kind}, fields...), " "); got != tt.want {
			t.Errorf("fields(%+v) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}
