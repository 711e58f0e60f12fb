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
// StartLibvirt runs the same guest as a libvirt domain (see scripts/guest/libvirtd.sh for a
// daemon without systemd). Nothing in this package runs at import time or in `go test ./...`'s
// unit tests beyond pure functions: booting needs QEMU and is done by the e2e tests (build tag
// e2e).
//
// Every call that waits takes a context; a hung QEMU never hangs the caller past its deadline.
package harness
