package registry

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	gold "github.com/crashkey/crashkey/internal/golden"

	"github.com/crashkey/crashkey/hid"
)

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	gold.Check(t, filepath.Join("testdata", "golden", name), got)
}

func mustHotkey(t testing.TB, spec string) *hid.Hotkey {
	t.Helper()
	h, err := hid.ParseHotkey(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &h
}

func TestArmGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts ArmOptions
	}{
		{"default", ArmOptions{}},
		{"custom-all-complete", ArmOptions{Hotkey: mustHotkey(t, "rctrl+space"), Drivers: hid.Drivers, DumpType: DumpComplete}},
		{"active-noreboot-dedicated-cs2", ArmOptions{DumpType: DumpActive, NoAutoReboot: true, DedicatedDumpFile: `C:\Dump's\dedicated.sys`, ControlSet: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Arm(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			reg := p.Reg()
			checkGolden(t, tc.name+".reg", reg)
			checkGolden(t, tc.name+".ps1", p.PowerShell())
			checkGolden(t, tc.name+".json", p.JSON())
			for i, line := range bytes.SplitAfter(reg, []byte("\n")) {
				if len(line) > 0 && !bytes.HasSuffix(line, []byte("\r\n")) {
					t.Errorf(".reg line %d is not CRLF-terminated: %q", i+1, line)
				}
			}
			var back Plan
			if err := json.Unmarshal(p.JSON(), &back); err != nil || len(back.Keys) != len(p.Keys) {
				t.Errorf("JSON does not read back: %v", err)
			}
		})
	}
}

func TestArmErrors(t *testing.T) {
	bad := hid.Hotkey{Modifiers: 0x08, Dump2Key: 0x20}
	for _, tc := range []struct {
		name string
		opts ArmOptions
		msg  string
	}{
		{"unknown driver", ArmOptions{Drivers: []hid.Driver{"mouclass"}}, `unknown keyboard driver "mouclass"`},
		{"dump type none", ArmOptions{DumpType: DumpNone}, `unknown dump type "none"`},
		{"bad dump type", ArmOptions{DumpType: "huge"}, `unknown dump type "huge"`},
		{"relative dedicated file", ArmOptions{DedicatedDumpFile: `dump.sys`}, "full Windows path"},
		{"dedicated file with quote", ArmOptions{DedicatedDumpFile: `C:\a"b.sys`}, "full Windows path"},
		{"control set 0 is fine but 1000 is not", ArmOptions{ControlSet: 1000}, "control set 1000"},
		{"hotkey that never fires", ArmOptions{Hotkey: &bad}, "arm: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Arm(tc.opts)
			if err == nil || p != nil {
				t.Fatalf("Arm = %v, %v; want an error", p, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestArmRoundTrip merges crashkey's .reg output into a real hive with hivexregedit, reads it
// back with ReadHive, and checks that the hotkey armed is the one that fires on PS/2 and USB.
func TestArmRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		first   *ArmOptions // merged before opts (e.g. a default arm that opts must override)
		opts    ArmOptions
		dump    DumpType
		drivers []hid.Driver
	}{
		{name: "default", opts: ArmOptions{}, dump: DumpKernel, drivers: DefaultArmDrivers},
		{name: "custom over default", first: &ArmOptions{Drivers: hid.Drivers},
			opts: ArmOptions{Hotkey: mustHotkey(t, "lshift+rshift+d"), Drivers: hid.Drivers, DumpType: DumpSmall}, dump: DumpSmall, drivers: hid.Drivers},
		{name: "active then complete", first: &ArmOptions{DumpType: DumpActive},
			opts: ArmOptions{DumpType: DumpComplete, NoAutoReboot: true}, dump: DumpComplete, drivers: DefaultArmDrivers},
		{name: "print screen", opts: ArmOptions{Hotkey: mustHotkey(t, "ralt+sysrq"), DumpType: DumpAutomatic, DedicatedDumpFile: `E:\crash\dd.sys`},
			dump: DumpAutomatic, drivers: DefaultArmDrivers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			regs := []string{baseReg("ServerNT")}
			if tc.first != nil {
				regs = append(regs, armReg(t, *tc.first))
			}
			regs = append(regs, armReg(t, tc.opts))
			hive := buildHive(t, regs...)
			s, err := ReadHiveFile(hive)
			if err != nil {
				t.Fatal(err)
			}
			want := hid.CrashOnCtrlScroll()
			if tc.opts.Hotkey != nil {
				want = *tc.opts.Hotkey
			}
			if got := s.CrashControl.DumpType(); got != tc.dump {
				t.Errorf("dump type = %s, want %s", got, tc.dump)
			}
			if ar := s.CrashControl.AutoReboot; ar == nil || (*ar == 0) != tc.opts.NoAutoReboot {
				t.Errorf("AutoReboot = %s with NoAutoReboot %v", showU32(ar), tc.opts.NoAutoReboot)
			}
			if d := s.CrashControl.DedicatedDumpFile; (d == nil) != (tc.opts.DedicatedDumpFile == "") || d != nil && *d != tc.opts.DedicatedDumpFile {
				t.Errorf("DedicatedDumpFile = %v, want %q", d, tc.opts.DedicatedDumpFile)
			}
			r := Check(s, CheckOptions{Hotkey: &want})
			if !r.Hotkey.PS2.Fires || !r.Hotkey.USB.Fires {
				t.Errorf("armed hotkey %s: PS/2 %+v, USB %+v", want, r.Hotkey.PS2, r.Hotkey.USB)
			}
			for _, d := range tc.drivers {
				dr := r.Drivers[driverIndex(d)]
				if !dr.Armed || dr.hotkey == nil || !dr.hotkey.Equal(want) {
					t.Errorf("%s armed %v for %s, want %s", d, dr.Armed, dr.Hotkey, want)
				}
			}
			if !want.Equal(hid.CrashOnCtrlScroll()) {
				// The deletion must have merged too: hivexget finds no CrashOnCtrlScroll.
				for _, d := range tc.drivers {
					if out, ok := hivexget(t, hive, `\ControlSet001\Services\`+string(d)+`\Parameters`, "CrashOnCtrlScroll"); ok {
						t.Errorf("%s\\Parameters\\CrashOnCtrlScroll still exists (%s)", d, out)
					}
				}
			}
			for _, p := range r.Problems {
				if p.Severity == SeverityError {
					t.Errorf("armed guest has an error: %+v", p)
				}
			}
		})
	}
}

func driverIndex(d hid.Driver) int {
	for i, x := range hid.Drivers {
		if x == d {
			return i
		}
	}
	return -1
}

func TestDumpTypes(t *testing.T) {
	for _, tc := range []struct {
		dt       DumpType
		enabled  uint32
		filter   bool
		writeMem bool
	}{
		{DumpComplete, 1, false, true},
		{DumpActive, 1, true, true},
		{DumpKernel, 2, false, true},
		{DumpSmall, 3, false, false},
		{DumpAutomatic, 7, false, true},
	} {
		got, err := ParseDumpType(strings.ToUpper(string(tc.dt)))
		if err != nil || got != tc.dt {
			t.Errorf("ParseDumpType(%s) = %s, %v", tc.dt, got, err)
		}
		if tc.dt.CrashDumpEnabled() != tc.enabled || dumpTypeOf(tc.enabled, tc.filter) != tc.dt || tc.dt.WritesMemoryDump() != tc.writeMem {
			t.Errorf("%s: CrashDumpEnabled %d, back %s", tc.dt, tc.dt.CrashDumpEnabled(), dumpTypeOf(tc.enabled, tc.filter))
		}
	}
	if got := dumpTypeOf(5, false); !strings.HasPrefix(string(got), "unknown") {
		t.Errorf("dumpTypeOf(5) = %s", got)
	}
}
