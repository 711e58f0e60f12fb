// Package standin is the logic of the e2e test guest's stand-in for Windows: the parts of
// Windows that crashkey depends on, built from the project's own libraries so that a small
// Linux guest can play a Windows guest end to end.
//
// At boot the guest calls Load on its disk (a raw block device such as /dev/vda, or an image
// file): it finds the Windows volume (package disk), reads Windows\System32\config\SYSTEM
// (package registry, CurrentControlSet through Select\Current) and derives what Windows
// would: each keyboard driver's crash hotkey (hid.Effective), the CrashControl settings, and
// where the paging file lies on the disk (disk.File.Extents).
//
// NewDetector runs the keyboard drivers' crash-hotkey state machine (hid.Model) on the raw
// bytes the guest's keyboards deliver: set-1 bytes from serio_raw for PS/2 (i8042prt's
// settings), 8-byte boot reports from hidraw for USB (kbdhid's settings).
//
// When the hotkey fires, or an NMI shows in the kernel log, BugCheck does what the Windows
// crash-dump stack does: it builds a 64-bit dump with dump.Write (DumpType per
// CrashDumpEnabled, processors and memory runs from the running system, scaled down so the
// dump fits a small paging file), announces it through pvpanic (SignalPanic) and writes it
// straight into the sectors the paging file occupies, bypassing the file system. At the next
// boot MoveDumpAtBoot does what SMSS does: it finds the dump at offset 0 of pagefile.sys,
// creates Windows\MEMORY.DMP (or the Minidump file) with ntfs-3g's ntfscp, since the guest's
// kernel has no NTFS driver, and wipes the dump header in the paging file.
//
// A typical /init mode:
//
//	m, err := standin.Load("/dev/vda")
//	...
//	if mv, err := standin.MoveDumpAtBoot(m, "/dev/vda", "/bin/ntfscp"); err == nil && mv.Moved { ... }
//	d := standin.NewDetector(m)
//	for b := range ps2Bytes { // an NMI in /dev/kmsg: dump.BugCheckNMIHardwareFailure, standin.NMIParams
//		if d.FeedPS2(b) {
//			res, err := standin.BugCheck(m, "/dev/vda", dump.BugCheckManuallyInitiated, [4]uint64{},
//				time.Now(), standin.DefaultPVPanic, standin.DumpOptions{})
//			...
//			if m.Crash.AutoReboot { reboot(2) }
//		}
//	}
//
// The package never writes to an image through a file system and refuses to write into
// anything but a raw disk (a qcow2 file's bytes are not the guest's sectors).
package standin
