package harness

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		kind    string
		fields  []string
		wantErr string
	}{
		{name: "ps2", line: "ps2 e0", kind: KindPS2, fields: []string{"e0"}},
		{name: "ps2 with CR", line: "ps2 9d\r", kind: KindPS2, fields: []string{"9d"}},
		{name: "usb", line: "usb 10 00 47 00 00 00 00 00", kind: KindUSB, fields: strings.Fields("10 00 47 00 00 00 00 00")},
		{name: "evdev", line: "evdev virtio KEY 97 1", kind: KindEvdev, fields: strings.Fields("virtio KEY 97 1")},
		{name: "ready", line: "ready", kind: KindReady},
		{name: "nmi", line: "nmi", kind: KindNMI},
		{name: "boot", line: "boot recorder", kind: KindBoot, fields: []string{"recorder"}},
		{name: "dev with name", line: "dev usb /dev/hidraw0 QEMU QEMU USB Keyboard", kind: KindDev, fields: strings.Fields("usb /dev/hidraw0 QEMU QEMU USB Keyboard")},
		{name: "error", line: "error ps2: no serio port", kind: KindError, fields: strings.Fields("ps2: no serio port")},
		{name: "unknown kind kept", line: "dump 0 4096", kind: "dump", fields: []string{"0", "4096"}},
		{name: "empty", line: "", wantErr: "empty line"},
		{name: "blank", line: "  \r", wantErr: "empty line"},
		{name: "ps2 two bytes", line: "ps2 e0 1d", wantErr: "want one byte"},
		{name: "ps2 no byte", line: "ps2", wantErr: "want one byte"},
		{name: "ps2 not hex", line: "ps2 zz", wantErr: "not a two-digit hex byte"},
		{name: "ps2 three digits", line: "ps2 1d0", wantErr: "not a two-digit hex byte"},
		{name: "ps2 sign", line: "ps2 +1", wantErr: "not a two-digit hex byte"},
		{name: "usb empty", line: "usb", wantErr: "no report bytes"},
		{name: "usb bad byte", line: "usb 10 0", wantErr: "not a two-digit hex byte"},
		{name: "evdev short", line: "evdev virtio KEY 97", wantErr: "want bus, type, code and value"},
		{name: "evdev bad code", line: "evdev virtio KEY 70000 1", wantErr: "bad code"},
		{name: "evdev bad value", line: "evdev virtio KEY 97 x", wantErr: "bad value"},
		{name: "ready extra", line: "ready now", wantErr: "unexpected words"},
		{name: "boot no mode", line: "boot", wantErr: "want the mode"},
		{name: "dev short", line: "dev usb", wantErr: "want kind and path"},
		{name: "too long", line: "usb " + strings.Repeat("00 ", maxLine/3+1), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseLine(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseLine(%q) err = %v, want %q", tt.line, err, tt.wantErr)
				}
				if o.Kind != "" {
					t.Fatalf("ParseLine(%q) returned %+v with an error", tt.line, o)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tt.line, err)
			}
			if o.Kind != tt.kind || !slices.Equal(o.Fields, tt.fields) {
				t.Fatalf("ParseLine(%q) = %q %q, want %q %q", tt.line, o.Kind, o.Fields, tt.kind, tt.fields)
			}
		})
	}
}

func TestObservationDecoders(t *testing.T) {
	o, _ := ParseLine("ps2 c6")
	if b, ok := o.PS2Byte(); !ok || b != 0xc6 {
		t.Errorf("PS2Byte = %#x, %v", b, ok)
	}
	if _, ok := o.USBReport(); ok {
		t.Error("USBReport accepted a ps2 line")
	}
	o, _ = ParseLine("usb 10 00 47 00 00 00 00 00")
	if r, ok := o.USBReport(); !ok || TrimReport(r) != "10 00 47" || len(r) != 8 {
		t.Errorf("USBReport = %x, %v", r, ok)
	}
	if _, ok := o.Evdev(); ok {
		t.Error("Evdev accepted a usb line")
	}
	o, _ = ParseLine("evdev virtio KEY 97 1")
	if e, ok := o.Evdev(); !ok || e != (EvdevEvent{Bus: "virtio", Type: "KEY", Code: 97, Value: 1}) || e.String() != "KEY 97 1" {
		t.Errorf("Evdev = %+v, %v", e, ok)
	}
	if _, ok := o.PS2Byte(); ok {
		t.Error("PS2Byte accepted an evdev line")
	}
}

func TestTrimReport(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0}, "00"},
		{[]byte{0x10, 0, 0, 0, 0, 0, 0, 0}, "10"},
		{[]byte{0x10, 0, 0x47, 0, 0, 0, 0, 0}, "10 00 47"},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 1}, "00 00 00 00 00 00 00 01"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := TrimReport(tt.in); got != tt.want {
			t.Errorf("TrimReport(%x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseLine: any line gives an observation or an error, never both, never a panic, and the
// decoders agree with the parser.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"ps2 e0", "usb 10 00 47 00 00 00 00 00", "evdev virtio KEY 97 1", "ready", "nmi",
		"boot recorder", "dev ps2 serio_raw /dev/serio_raw0", "error x", "", "ps2 zz", "evdev a b 1 -1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		o, err := ParseLine(line)
		if err != nil {
			if o.Kind != "" || o.Fields != nil || o.Line != "" {
				t.Fatalf("error %v together with %+v", err, o)
			}
			return
		}
		if o.Kind == "" {
			t.Fatal("no error and no kind")
		}
		switch o.Kind {
		case KindPS2:
			if _, ok := o.PS2Byte(); !ok {
				t.Fatalf("parsed ps2 line %q does not decode", line)
			}
		case KindUSB:
			if r, ok := o.USBReport(); !ok || len(r) != len(o.Fields) {
				t.Fatalf("parsed usb line %q does not decode", line)
			}
		case KindEvdev:
			if _, ok := o.Evdev(); !ok {
				t.Fatalf("parsed evdev line %q does not decode", line)
			}
		}
	})
}
