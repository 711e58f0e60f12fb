package registry

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/hid"
)

// problemIDs lists "severity:id[:driver]" for every problem, in report order.
func problemIDs(r *Report) []string {
	var out []string
	for _, p := range r.Problems {
		s := string(p.Severity) + ":" + p.ID
		if p.Driver != "" {
			s += ":" + string(p.Driver)
		}
		out = append(out, s)
	}
	return out
}

// TestCheck builds guests' SYSTEM hives with hivexregedit (crashkey's own arm output plus
// hand-written breakage) and checks the problems preflight reports and the fixes it offers.
func TestCheck(t *testing.T) {
	custom := mustHotkey(t, "lshift+rshift+d")
	def := hid.CrashOnCtrlScroll()
	client := hid.ClientDefault()
	armed := func(opts ArmOptions) string { return armReg(t, opts) }
	old := time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		regs   []string
		dirty  bool
		opts   CheckOptions
		want   []string // problem IDs
		fix    string   // substring of Report.Fix ("" = no fix expected)
		verify func(t *testing.T, r *Report)
	}{
		{name: "armed default", regs: []string{baseReg("WinNT"), armed(ArmOptions{})},
			opts: CheckOptions{Hotkey: &def}, want: nil,
			verify: func(t *testing.T, r *Report) {
				if !r.OK || !r.Hotkey.PS2.Fires || !r.Hotkey.USB.Fires || r.Dump.Type != DumpKernel || r.Paging.Fits != "yes" {
					t.Errorf("report = OK %v, hotkey %+v, dump %s, fits %s", r.OK, r.Hotkey, r.Dump.Type, r.Paging.Fits)
				}
				if r.Drivers[2].Present || r.Drivers[2].Armed {
					t.Errorf("hyperkbd reported as %+v; it is not installed", r.Drivers[2])
				}
			}},
		{name: "armed default, asked for a custom hotkey", regs: []string{baseReg("WinNT"), armed(ArmOptions{})},
			opts: CheckOptions{Hotkey: custom}, want: []string{"error:hotkey-ps2:i8042prt", "error:hotkey-usb:kbdhid"},
			fix: "crashkey arm --hotkey shift+shift_r+d >",
			verify: func(t *testing.T, r *Report) {
				if !strings.Contains(r.Hotkey.PS2.Reason, "armed for RCtrl+ScrollLock") {
					t.Errorf("PS/2 reason = %q", r.Hotkey.PS2.Reason)
				}
			}},
		{name: "armed custom", regs: []string{baseReg("ServerNT"), armed(ArmOptions{Hotkey: custom, DumpType: DumpComplete})},
			opts: CheckOptions{Hotkey: custom}, want: nil,
			verify: func(t *testing.T, r *Report) {
				if r.Drivers[0].Source != "crashdump" || r.Drivers[0].Registry != "0x11/0x21" {
					t.Errorf("i8042prt = %+v", r.Drivers[0])
				}
			}},
		{name: "unarmed client: built-in default", regs: []string{baseReg("WinNT")},
			opts: CheckOptions{Hotkey: &client},
			want: []string{"error:dump-disabled", "warning:hotkey-builtin:i8042prt", "warning:hotkey-builtin:kbdhid"},
			fix:  "crashkey arm --hotkey shift+shift_r+grave_accent >"},
		{name: "unarmed server: no hotkey at all", regs: []string{baseReg("ServerNT")},
			want: []string{"error:hotkey-none:i8042prt", "error:hotkey-none:kbdhid", "error:dump-disabled"},
			fix:  "crashkey arm >"},
		{name: "dumps disabled", regs: []string{baseReg("WinNT"), armed(ArmOptions{}), reg(cs1(`Control\CrashControl`), `"CrashDumpEnabled"=dword:00000000`)},
			want: []string{"error:dump-disabled"}, fix: "crashkey arm >",
			verify: func(t *testing.T, r *Report) {
				if r.Paging.Fits != "yes" || !strings.Contains(r.Paging.Detail, "no dump is configured; for the kernel dump") || !strings.Contains(r.Dump.NMI, "writes no dump") {
					t.Errorf("paging %+v, NMI %q", r.Paging, r.Dump.NMI)
				}
			}},
		{name: "unknown dump type", regs: []string{baseReg("WinNT"), armed(ArmOptions{}), reg(cs1(`Control\CrashControl`), `"CrashDumpEnabled"=dword:00000005`)},
			want: []string{"error:dump-type"}, fix: "crashkey arm >"},
		{name: "small dumps only", regs: []string{baseReg("WinNT"), armed(ArmOptions{DumpType: DumpSmall})},
			want: []string{"warning:dump-small"}},
		{name: "no paging file", regs: []string{baseReg("WinNT"), armed(ArmOptions{NoAutoReboot: true}),
			reg(cs1(`Control\Session Manager\Memory Management`), `"PagingFiles"=-`)},
			want: []string{"error:pagefile-none"}, fix: `crashkey arm --no-autoreboot --dedicated-dump-file 'C:\DedicatedDump.sys' >`},
		{name: "no paging file, dedicated dump file", regs: []string{baseReg("WinNT"), armed(ArmOptions{DedicatedDumpFile: `C:\dd.sys`}),
			reg(cs1(`Control\Session Manager\Memory Management`), `"PagingFiles"=-`)},
			want: nil,
			verify: func(t *testing.T, r *Report) {
				if r.Paging.Target != `C:\dd.sys` || r.Paging.Fits != "yes" {
					t.Errorf("paging = %+v", r.Paging)
				}
			}},
		{name: "paging file on D: only", regs: []string{baseReg("WinNT"), armed(ArmOptions{}),
			reg(cs1(`Control\Session Manager\Memory Management`), multiSZ("PagingFiles", `D:\pagefile.sys 1024 2048`))},
			want: []string{"error:pagefile-not-boot"}, fix: `--dedicated-dump-file 'C:\DedicatedDump.sys'`},
		{name: "fixed paging file too small for a complete dump", regs: []string{baseReg("WinNT"), armed(ArmOptions{DumpType: DumpComplete}),
			reg(cs1(`Control\Session Manager\Memory Management`), multiSZ("PagingFiles", `C:\pagefile.sys 1024 2048`, `D:\pagefile.sys 8192 8192`))},
			opts: CheckOptions{MemoryMiB: 4096}, want: []string{"error:pagefile-small"}, fix: "--dump-type complete",
			verify: func(t *testing.T, r *Report) {
				if r.Paging.NeedMB != 4097 || r.Paging.Target != `C:\pagefile.sys` || len(r.Paging.Files) != 2 {
					t.Errorf("paging = %+v", r.Paging)
				}
			}},
		{name: "fixed paging file, kernel dump may not fit", regs: []string{baseReg("WinNT"), armed(ArmOptions{}),
			reg(cs1(`Control\Session Manager\Memory Management`), multiSZ("PagingFiles", `C:\pagefile.sys 2048 2048`))},
			opts: CheckOptions{MemoryMiB: 4096}, want: []string{"warning:pagefile-small"},
			verify: func(t *testing.T, r *Report) {
				if r.Paging.Fits != "maybe" {
					t.Errorf("fits = %s", r.Paging.Fits)
				}
			}},
		{name: "fixed paging file, memory unknown", regs: []string{baseReg("WinNT"), armed(ArmOptions{DumpType: DumpComplete}),
			reg(cs1(`Control\Session Manager\Memory Management`), multiSZ("PagingFiles", `C:\pagefile.sys 1024 2048`))},
			want: nil,
			verify: func(t *testing.T, r *Report) {
				if r.Paging.Fits != "unknown" || !strings.Contains(r.Paging.Detail, "at most 2047 MB of memory") {
					t.Errorf("paging = %+v", r.Paging)
				}
			}},
		{name: "CrashOnCtrlScroll overrides a custom hotkey", regs: []string{baseReg("WinNT"), armed(ArmOptions{}),
			reg(cs1(`Services\kbdhid\crashdump`), `"Dump1Keys"=dword:00000011`, `"Dump2Key"=dword:00000021`)},
			opts: CheckOptions{Hotkey: custom},
			want: []string{"error:hotkey-ps2:i8042prt", "error:hotkey-usb:kbdhid", "warning:hotkey-overridden:kbdhid"},
			fix:  "--hotkey shift+shift_r+d",
			verify: func(t *testing.T, r *Report) {
				p := r.Problems[len(r.Problems)-1]
				if !strings.Contains(p.Message, "CrashOnCtrlScroll=1 overrides the custom hotkey LShift+RShift+D") || !strings.Contains(p.Fix, "--hotkey shift+shift_r+d") {
					t.Errorf("overridden problem = %+v", p)
				}
			}},
		{name: "drivers disagree", regs: []string{baseReg("WinNT"), armed(ArmOptions{}), armed(ArmOptions{Hotkey: custom, Drivers: []hid.Driver{hid.Kbdhid}})},
			want: []string{"warning:hotkey-mismatch"}},
		{name: "value of the wrong type", regs: []string{baseReg("ServerNT"), armed(ArmOptions{}),
			reg(cs1(`Services\i8042prt\Parameters`), `"CrashOnCtrlScroll"="1"`)},
			want: []string{"error:value-type", "error:hotkey-none:i8042prt"}, fix: "crashkey arm >",
			verify: func(t *testing.T, r *Report) {
				if !strings.Contains(r.Problems[0].Message, `ControlSet001\Services\i8042prt\Parameters\CrashOnCtrlScroll has type REG_SZ`) {
					t.Errorf("message = %q", r.Problems[0].Message)
				}
			}},
		{name: "missing and disabled services", regs: []string{
			strings.Replace(baseReg("WinNT"), "[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\i8042prt]\r\n\"Start\"=dword:00000001", "", 1),
			armed(ArmOptions{Drivers: []hid.Driver{hid.Kbdhid}}), reg(cs1(`Services\kbdhid`), `"Start"=dword:00000004`)},
			opts: CheckOptions{Hotkey: &def},
			want: []string{"error:hotkey-ps2:i8042prt", "warning:driver-missing:i8042prt", "warning:driver-disabled:kbdhid"}, fix: "crashkey arm >"},
		{name: "changed after the last shutdown", regs: []string{baseReg("WinNT"), armed(ArmOptions{}),
			reg(cs1(`Control\Windows`), filetimeValue("ShutdownTime", old))},
			want: []string{"warning:reboot-pending:i8042prt", "warning:reboot-pending:kbdhid"}},
		{name: "changed before the last shutdown", regs: []string{baseReg("WinNT"), armed(ArmOptions{}),
			reg(cs1(`Control\Windows`), filetimeValue("ShutdownTime", future))},
			want: nil,
			verify: func(t *testing.T, r *Report) {
				if r.Settings.ShutdownTime == nil || !r.Settings.ShutdownTime.Equal(future) {
					t.Errorf("ShutdownTime = %v", r.Settings.ShutdownTime)
				}
			}},
		{name: "dirty hive with logs", regs: []string{baseReg("WinNT"), armed(ArmOptions{})}, dirty: true,
			opts: CheckOptions{Logs: []LogFile{{Name: "SYSTEM.LOG1", Size: 65536}}},
			want: []string{"warning:hive-dirty"},
			verify: func(t *testing.T, r *Report) {
				if !strings.Contains(r.Problems[0].Message, "possibly stale") || !strings.Contains(r.Problems[0].Message, "SYSTEM.LOG1 (65536 bytes)") {
					t.Errorf("message = %q", r.Problems[0].Message)
				}
			}},
		{name: "no product type, Select\\Default", regs: []string{
			reg(`[HKEY_LOCAL_MACHINE\SYSTEM\Select]`, `"Default"=dword:00000002`, ``, `[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002]`),
			strings.ReplaceAll(armed(ArmOptions{}), "ControlSet001", "ControlSet002")},
			want: []string{"error:pagefile-none", "warning:product-type"}, fix: `--dedicated-dump-file 'C:\DedicatedDump.sys'`,
			verify: func(t *testing.T, r *Report) {
				if r.ControlSet != "ControlSet002" || r.Settings.ControlSetFrom != `Select\Default` {
					t.Errorf("control set %s from %s", r.ControlSet, r.Settings.ControlSetFrom)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hive := buildHive(t, tc.regs...)
			if tc.dirty {
				setSequence2(t, hive, 1)
			}
			s, err := ReadHiveFile(hive)
			if err != nil {
				t.Fatal(err)
			}
			r := Check(s, tc.opts)
			if got := problemIDs(r); !slices.Equal(got, tc.want) {
				t.Errorf("problems = %q, want %q", got, tc.want)
				for _, p := range r.Problems {
					t.Logf("  %s %s: %s", p.Severity, p.ID, p.Message)
				}
			}
			errs := 0
			for _, p := range r.Problems {
				if p.Severity == SeverityError {
					errs++
					if p.Fix == "" {
						t.Errorf("error %s has no fix", p.ID)
					}
				}
			}
			if r.OK != (errs == 0) {
				t.Errorf("OK = %v with %d errors", r.OK, errs)
			}
			if tc.fix == "" && r.Fix != "" || !strings.Contains(r.Fix, tc.fix) {
				t.Errorf("fix = %q, want it to contain %q", r.Fix, tc.fix)
			}
			if tc.verify != nil {
				tc.verify(t, r)
			}
		})
	}
}

// TestFixCommandFixes applies the fix preflight proposes (crashkey arm's .reg) to the broken
// hive and checks that the errors are gone.
func TestFixCommandFixes(t *testing.T) {
	custom := mustHotkey(t, "rctrl+ralt+f12")
	broken := []string{baseReg("ServerNT"), reg(cs1(`Control\Session Manager\Memory Management`), `"PagingFiles"=-`)}
	s, err := ReadHiveFile(buildHive(t, broken...))
	if err != nil {
		t.Fatal(err)
	}
	r := Check(s, CheckOptions{Hotkey: custom})
	want := `crashkey arm --hotkey ctrl_r+alt_r+f12 --dedicated-dump-file 'C:\DedicatedDump.sys' >`
	if !strings.HasPrefix(r.Fix, want) {
		t.Fatalf("fix = %q, want %q…", r.Fix, want)
	}
	fixed := append(broken, armed(t, ArmOptions{Hotkey: custom, DedicatedDumpFile: `C:\DedicatedDump.sys`}))
	s, err = ReadHiveFile(buildHive(t, fixed...))
	if err != nil {
		t.Fatal(err)
	}
	if r := Check(s, CheckOptions{Hotkey: custom}); !r.OK {
		t.Errorf("still broken after the fix: %q", problemIDs(r))
	}
}

func armed(t testing.TB, opts ArmOptions) string { return armReg(t, opts) }

func TestParsePagingFile(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		want  PagingFile
		error string
	}{
		{spec: `?:\pagefile.sys`, want: PagingFile{Path: `?:\pagefile.sys`, Drive: "?", SystemManaged: true}},
		{spec: `c:\pagefile.sys 0 0`, want: PagingFile{Path: `c:\pagefile.sys`, Drive: "C", SystemManaged: true}},
		{spec: `C:\pagefile.sys 1024 4096`, want: PagingFile{Path: `C:\pagefile.sys`, Drive: "C", MinMB: 1024, MaxMB: 4096}},
		{spec: `D:\pagefile.sys 4096 1024`, want: PagingFile{Path: `D:\pagefile.sys`, Drive: "D", MinMB: 4096, MaxMB: 4096}},
		{spec: `pagefile.sys`, error: "drive path"},
		{spec: `C:\pagefile.sys big`, error: `size "big"`},
		{spec: `C:\p.sys 1 2 3`, error: "more than a path"},
		{spec: ` `, error: "empty"},
	} {
		got, err := ParsePagingFile(tc.spec)
		if tc.error != "" {
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("ParsePagingFile(%q) error = %v, want %q", tc.spec, err, tc.error)
			}
			continue
		}
		tc.want.Spec = tc.spec
		if err != nil || got != tc.want {
			t.Errorf("ParsePagingFile(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

// FuzzParsePagingFile: any PagingFiles entry parses or fails, never panics, and a parsed
// fixed size has MinMB <= MaxMB.
func FuzzParsePagingFile(f *testing.F) {
	for _, s := range []string{`?:\pagefile.sys`, `C:\pagefile.sys 0 0`, `C:\pagefile.sys 1024 4096`, `D:\p.sys 9 1`, "", `x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		p, err := ParsePagingFile(spec)
		if err != nil {
			return
		}
		if p.MinMB > p.MaxMB || p.SystemManaged && p.MaxMB != 0 || len(p.Drive) != 1 {
			t.Fatalf("ParsePagingFile(%q) = %+v", spec, p)
		}
	})
}
