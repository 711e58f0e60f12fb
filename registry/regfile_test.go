package registry

import (
	"testing"

	"github.com/crashkey/crashkey/hid"
)

// TestParseRegRoundTrip reads back what Arm renders.
func TestParseRegRoundTrip(t *testing.T) {
	h, err := hid.ParseHotkey("lshift+rshift+d")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Arm(ArmOptions{Hotkey: &h, DedicatedDumpFile: `C:\D.sys`})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseReg(p.Reg())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]PlanValue{}
	for _, k := range keys {
		got[k.Path] = append(got[k.Path], k.Values...)
	}
	for _, k := range p.Keys {
		vals := got[p.Root+`\`+k.Path]
		if len(vals) != len(k.Values) {
			t.Fatalf("%s: %d values, want %d", k.Path, len(vals), len(k.Values))
		}
		for i, w := range k.Values {
			g := vals[i]
			if g.Name != w.Name || g.Delete != w.Delete || g.Type != w.Type && !w.Delete ||
				(w.DWORD != nil && (g.DWORD == nil || *g.DWORD != *w.DWORD)) || (w.String != nil && (g.String == nil || *g.String != *w.String)) {
				t.Errorf("%s\\%s: got %+v, want %+v", k.Path, w.Name, g, w)
			}
		}
	}
}

func TestParseRegHandWritten(t *testing.T) {
	in := "Windows Registry Editor Version 5.00\r\n\r\n[-HKEY_LOCAL_MACHINE\\SOFTWARE\\gone]\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\x]\r\n@=\"def\"\r\n\"a \\\"q\\\"\"=\"C:\\\\p\"\r\n" +
		"\"m\"=hex(7):61,00,00,00,62,00,\\\r\n  00,00,00,00\r\n\"b\"=hex:01,ff\r\n"
	keys, err := ParseReg([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !keys[0].Delete || keys[0].Path != `HKEY_LOCAL_MACHINE\SOFTWARE\gone` {
		t.Fatalf("keys = %+v", keys)
	}
	v := keys[1].Values
	if len(v) != 4 || v[0].Name != "" || *v[0].String != "def" || v[1].Name != `a "q"` || *v[1].String != `C:\p` ||
		*v[2].String != `a\0b` || v[2].Type != "REG_MULTI_SZ" || *v[3].String != "01FF" {
		t.Errorf("values = %+v", v)
	}
	for _, bad := range []string{"", "REGEDIT5\n", "Windows Registry Editor Version 5.00\n\"x\"=dword:1\n", "Windows Registry Editor Version 5.00\n[k]\n\"x\"=dword:zz\n", "Windows Registry Editor Version 5.00\n[k]\n\"x=1\n"} {
		if _, err := ParseReg([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseReg(f *testing.F) {
	p, _ := Arm(ArmOptions{})
	f.Add(p.Reg())
	f.Add([]byte("Windows Registry Editor Version 5.00\n[k]\n\"m\"=hex(7):61,00,\\\n00,00\n@=\"x\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseReg(b)
		if err == nil && len(keys) > len(b) {
			t.Fatalf("%d keys from %d bytes", len(keys), len(b))
		}
	})
}
