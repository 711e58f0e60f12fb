package standin

import (
	"context"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/registry"
)

// TestRegistryOnDisk: an unarmed stand-in volume (standin-disk.sh --unarmed, built with
// hivexregedit and ntfs-3g) armed through its reg import as the guest does it: reg query shows
// the hive's values with the imported ones on top at once; the values are kept on the volume
// (written with the host's ntfscp) and the next boot (Load) is armed.
func TestRegistryOnDisk(t *testing.T) {
	ntfscp, _ := lookPath(t, "ntfscp")
	vol := makeDisk(t, t.TempDir(), "win.ntfs", "--unarmed")
	m, err := Load(vol)
	if err != nil {
		t.Fatal(err)
	}
	if m.Driver(hid.I8042prt).Armed || m.Crash.Type != registry.DumpNone || m.Imported != 0 {
		t.Fatalf("unarmed disk: i8042prt armed=%t, dump %s, imported %d", m.Driver(hid.I8042prt).Armed, m.Crash.Type, m.Imported)
	}
	r, err := OpenRegistry(vol)
	if err != nil {
		t.Fatal(err)
	}
	if r.ControlSet != 1 {
		t.Errorf("control set %d", r.ControlSet)
	}
	svc := `HKLM\SYSTEM\CurrentControlSet\Services\kbdhid`
	if out, ok := r.Query(svc); !ok || !strings.Contains(out, "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\kbdhid\r\n") ||
		!strings.Contains(out, "    Start    REG_DWORD    0x3\r\n") || !strings.Contains(out, "    Type    REG_DWORD    0x1\r\n") {
		t.Errorf("query of the hive's key: %v %q", ok, out)
	}
	if out, ok := r.Query(`HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management`); !ok || !strings.Contains(out, `PagingFiles    REG_MULTI_SZ    C:\pagefile.sys 32 32`) {
		t.Errorf("query of a REG_MULTI_SZ: %v %q", ok, out)
	}
	if out, ok := r.Query(`HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`); !ok || !strings.Contains(out, "CurrentBuild    REG_SZ    ") {
		t.Errorf("query of the SOFTWARE hive: %v %q", ok, out)
	}
	if _, ok := r.Query(`HKLM\SYSTEM\CurrentControlSet\Services\i8042prt\Parameters`); ok {
		t.Error("Parameters exists before arming")
	}

	plan, err := registry.Arm(registry.ArmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Import(plan.Reg()); err != nil {
		t.Fatal(err)
	}
	// A deletion hides the hive's value.
	if err := r.Import([]byte("Windows Registry Editor Version 5.00\r\n\r\n[" + svc + "]\r\n\"Type\"=-\r\n")); err != nil {
		t.Fatal(err)
	}
	check := func(r *Registry, when string) {
		t.Helper()
		out, ok := r.Query(`HKLM\SYSTEM\CurrentControlSet\Services\i8042prt\Parameters`)
		if !ok || !strings.Contains(out, "CrashOnCtrlScroll    REG_DWORD    0x1") {
			t.Errorf("%s: Parameters: %v %q", when, ok, out)
		}
		out, ok = r.Query(svc)
		if !ok || !strings.Contains(out, "Start    REG_DWORD    0x3") || strings.Contains(out, "Type") {
			t.Errorf("%s: kbdhid after deleting Type: %v %q", when, ok, out)
		}
		out, ok = r.Query(`HKLM\SYSTEM\ControlSet001\Control\CrashControl`)
		if !ok || !strings.Contains(out, "CrashDumpEnabled    REG_DWORD    0x2") {
			t.Errorf("%s: CrashControl (through ControlSet001): %v %q", when, ok, out)
		}
	}
	check(r, "right after the import")
	m, err = Load(vol)
	if err != nil {
		t.Fatal(err)
	}
	if m.Driver(hid.I8042prt).Armed || m.Imported != 0 {
		t.Fatal("armed on disk before Save")
	}
	if err := r.Save(context.Background(), ntfscp, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	again, err := OpenRegistry(vol)
	if err != nil {
		t.Fatal(err)
	}
	check(again, "read back from the volume")

	// The next boot.
	m, err = Load(vol)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []hid.Driver{hid.I8042prt, hid.Kbdhid} {
		if c := m.Driver(d); !c.Armed || c.Source != "CrashOnCtrlScroll" {
			t.Errorf("next boot: %s armed=%t source=%q reason=%q", d, c.Armed, c.Source, c.Reason)
		}
	}
	if m.Crash.Type != registry.DumpKernel || m.Imported == 0 || m.Pagefile == nil {
		t.Errorf("next boot: dump %s, imported %d, pagefile %v", m.Crash.Type, m.Imported, m.Pagefile)
	}
	if !strings.Contains(strings.Join(m.Lines(), "\n"), "imported=") {
		t.Errorf("lines: %q", m.Lines())
	}
}
