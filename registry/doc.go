// Package registry arms a Windows guest for a keyboard crash dump and checks, offline, whether
// a guest is armed.
//
// Arming (Arm) produces the registry changes as a Plan, rendered as a .reg file
// (Plan.Reg), a PowerShell script (Plan.PowerShell) or JSON (Plan.JSON): the crash hotkey per
// keyboard driver (Parameters\CrashOnCtrlScroll=1 for Right Ctrl + Scroll Lock, or
// crashdump\Dump1Keys and Dump2Key with CrashOnCtrlScroll removed for any other hotkey), the
// CrashControl values of the dump type, and the reminder that Windows must restart. crashkey
// never writes to a guest's disk image; ArmOptions.ControlSet writes ControlSet00N paths for
// merging into an offline hive copy.
//
// Checking reads the SYSTEM hive: ReadHive (from any io.ReaderAt) or ReadHiveFile returns the
// Settings (CurrentControlSet resolved through Select\Current). A dirty hive is replayed from
// its transaction logs (LogSource: the Windows 8.1+ HvLE format and the older DIRT format) in
// memory first, as Windows does at boot; a damaged part of the hive makes only the items under
// it unknown (Settings.Damage). ReadVersion reads the Windows version from the SOFTWARE hive,
// which decides where the drivers' built-in default hotkey can exist and what an NMI does.
// Check judges the settings, and Preflight does all of it for a guest's disk image (via
// package disk) or a hive file:
//
//	r, err := registry.Preflight(ctx, "win10.qcow2", registry.PreflightOptions{Hotkey: &h})
//	if err != nil { … }
//	if !r.OK { fmt.Println(r.Fix) }      // the crashkey arm command that fixes every error
//	r.Hotkey.PS2.Fires, r.Hotkey.USB.Fires // would h fire on a PS/2 / USB keyboard?
//
// The hotkey precedence (CrashOnCtrlScroll over crashdump values, the built-in default of
// client Windows) and the "would it fire" answers come from package hid's driver model.
//
// The hive is parsed with www.velocidex.com/golang/regparser's cell layouts, but every offset,
// count and size is checked here before it is followed: a damaged or hostile hive gives an
// error wrapping ErrCorruptHive (or, for damage away from the root and the control set, a
// Damage entry), never a panic, and memory stays bounded (at most 16 MiB of the hive is
// cached, a value's data is capped at 1 MiB, the cells one read visits are capped, and a log
// is read only up to 64 MiB).
package registry
