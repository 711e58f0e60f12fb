// Package run is crashkey's whole job in one call: preflight a Windows guest's disk, make sure
// the dump gets written, trigger the crash (the exact key sequence, an NMI, or a command run by
// the QEMU guest agent), watch the hypervisor's events, pull the dump out of the disk image and
// check it. Every step is reported with its timing and outcome.
//
//	rep, err := run.Run(ctx, run.Config{
//		Target: vm.Address{QMP: "unix:/run/win11.qmp"},
//		Disk:   "/var/lib/images/win11.qcow2",
//		Trigger: run.Trigger{Kind: run.TriggerKeys},
//		Hotkey: hid.CrashOnCtrlScroll(),
//		ExpectBugCheck: &code,
//	})
//	// rep.Outcome, rep.ExitCode(), rep.Steps, rep.Dump, rep.Check
//
// The flow: (1) preflight the disk when given, and stop early with the fix when the hotkey
// cannot fire on the keyboard QEMU routes keys to; (2) set the panic action to none (so a
// guest that announces its crash is not stopped before it writes the dump) or report what a
// libvirt domain's on_crash will do; with StopAfterCrash also make the guest's reboot pause the
// VM, so the dump stays in pagefile.sys; (3) trigger; (4) watch GUEST_PANICKED,
// GUEST_CRASHLOADED, RESET, SHUTDOWN, STOP and the guest agent; (5) once the guest rebooted, poll
// the disk (read-only) until a complete dump newer than the trigger is there, or, with
// StopAfterCrash, read it from pagefile.sys of the stopped guest; (6) check it.
package run
