// Package harness builds, boots and drives crashkey's e2e test guest: a small Linux guest whose
// static Go /init (package github.com/crashkey/crashkey/e2e/guest) records the raw bytes its
// keyboards deliver and reports them, one line per observation, on its second serial port.
//
// Lifecycle:
//
//	art, err := harness.Build(ctx, harness.BuildOptions{})          // kernel + initramfs, cached
//	g, err := harness.Start(ctx, harness.Config{Artifacts: art, Keyboards: []harness.Keyboard{harness.USBXHCI}})
//	defer g.Stop()
//	err = g.WaitReady(ctx)                                           // every keyboard open
//	m := g.Mark()
//	… inject keys through the QMP socket g.QMPPath() …
//	reports, err := g.USBReports(ctx, m, 300*time.Millisecond)       // exact report stream
//
// The same guest plays a Windows guest in its "windows" mode (Config.Mode): boot it with the
// stand-in disk from scripts/guest/standin-disk.sh as its first disk, PVPanic and AllowReboot
// (it reboots after writing its dump, in the same QEMU process, so the observation stream goes
// on across the reboot). Build puts ntfs-3g's ntfscp and its libraries into the initramfs for
// its SMSS step:
//
//	g, err := harness.Start(ctx, harness.Config{Artifacts: art, Mode: "windows", PVPanic: true,
//		AllowReboot: true, Disks: []harness.Disk{{Path: "win.qcow2", Format: "qcow2"}}})
//
// StartLibvirt runs the same guest as a libvirt domain (see scripts/guest/libvirtd.sh for a
// daemon without systemd). Nothing in this package runs at import time or in `go test ./...`'s
// unit tests beyond pure functions and packing archives: booting needs QEMU and is done by the e2e tests (build tag
// e2e).
//
// Every call that waits takes a context; a hung QEMU never hangs the caller past its deadline.
package harness
