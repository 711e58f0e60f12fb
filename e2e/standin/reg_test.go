package standin

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/registry"
)

func TestRegStateImportQuery(t *testing.T) {
	plan, err := registry.Arm(registry.ArmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := LoadRegState(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Import(plan.Reg()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "reg.json")
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadRegState(path)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := back.Query(`HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control\CrashControl`)
	want := "\r\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl\r\n" +
		"    AlwaysKeepMemoryDump    REG_DWORD    0x1\r\n    AutoReboot    REG_DWORD    0x1\r\n" +
		"    CrashDumpEnabled    REG_DWORD    0x2\r\n    DumpFile    REG_EXPAND_SZ    %SystemRoot%\\MEMORY.DMP\r\n" +
		"    MinidumpDir    REG_EXPAND_SZ    %SystemRoot%\\Minidump\r\n    Overwrite    REG_DWORD    0x1\r\n\r\n"
	if !ok || out != want {
		t.Errorf("query:\n%q\nwant\n%q", out, want)
	}
	if _, ok := back.Query(`hklm\system\nothing`); ok {
		t.Error("a missing key was found")
	}
	// Deleting a value and a whole key, as reg import does.
	del := "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl]\r\n\"AutoReboot\"=-\r\n\r\n[-HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services]\r\n"
	if err := back.Import([]byte(del)); err != nil {
		t.Fatal(err)
	}
	if out, _ := back.Query(`HKLM\SYSTEM\CurrentControlSet\Control\CrashControl`); strings.Contains(out, "AutoReboot") {
		t.Errorf("AutoReboot not deleted: %q", out)
	}
	if _, ok := back.Query(`HKLM\SYSTEM\CurrentControlSet\Services\i8042prt\Parameters`); ok {
		t.Error("subkey of a deleted key still there")
	}
	if err := back.Import([]byte("not a reg file")); err == nil {
		t.Error("garbage imported")
	}
}
