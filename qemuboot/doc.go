// Package qemuboot starts QEMU for a guest that crashkey is to crash: a throw-away qcow2
// overlay of the guest's image in a private temporary directory (the image itself is never
// written), KVM when /dev/kvm is usable and TCG otherwise, a QMP socket, a QEMU guest agent
// channel (virtio-serial port org.qemu.guest_agent.0), a pvpanic device, QEMU's vmcoreinfo
// device, one keyboard (PS/2, USB or virtio), optional UEFI firmware (OVMF code read-only and a
// private copy of its variables) and optional direct kernel boot.
//
// [Start] returns a [Machine]; [Machine.Close] stops QEMU and removes every file Start made,
// and so does cancelling the context given to Start. [Args] is the command line, a pure
// function of a [Config] and the [Paths] (golden-tested).
//
// [Launch] is the process part alone, for callers with a command line of their own (the e2e
// test harness): it runs QEMU so that it dies with its starter, waits for its QMP socket to
// answer and keeps its standard error for error messages; [Process.Stop] kills it.
package qemuboot
