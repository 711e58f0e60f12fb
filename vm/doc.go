// Package vm talks to the hypervisor that runs a Windows guest: it delivers a planned key
// sequence (package hid) with true hold/release control, injects an NMI, streams the crash
// events and prepares the panic action so that Windows can finish writing its dump.
//
// One small interface, Target, has two backends:
//
//   - QMP (DialQMP): a QEMU monitor socket, "unix:/path" or "tcp:host:port". The transport is
//     crashkey's own client (vm/internal/qmpconn), which implements go-qemu's qmp.Monitor so
//     that go-qemu's typed API runs over it; go-qemu's own SocketMonitor cannot be given
//     deadlines, loses the reply order when an event arrives during the handshake and dies on
//     replies over 64 KiB. Version-dependent commands (set-action, qom-list, query-status) are
//     sent as JSON and decoded into crashkey's own structs, because go-qemu's schema is QEMU
//     2.11's and rejects newer enum values.
//   - libvirt (DialLibvirt): github.com/digitalocean/go-libvirt over a local socket or a remote
//     URI (qemu+ssh, qemu+tls, qemu+tcp). Precise sequences go through the QEMU monitor
//     passthrough (virDomainQemuMonitorCommand, which marks the domain "tainted: custom
//     monitor"); DomainSendKey, a chord, only through SendChord.
//
// Every call takes a context and has a deadline (Options.Timeout, or the context's if earlier):
// a QEMU or libvirtd that stops answering yields an error, never a hang. go-libvirt has no
// contexts, so its calls run in a goroutine and a timeout closes the connection.
//
// Send checks first that the guest runs (a paused guest silently drops send-key) and which
// keyboard QEMU routes keys to (the last one activated: a USB or virtio keyboard wins over the
// built-in PS/2 one, so the Windows driver to arm is then kbdhid). It paces the batches of
// hid.QMPBatches by the plan's delays and always releases what it pressed: when a call fails,
// the context is cancelled, a deadline passes or the connection breaks midway, it sends
// hid.Releases of what was sent with a fresh short deadline, reconnecting once if needed, and
// reports which keys it released or which may be stuck.
//
// For `crashkey run`, Target also resumes a guest, sets QEMU's other run-state actions and
// reaches the QEMU guest agent (Agent: guest-ping and guest-exec through the agent's own socket
// for QMP targets, QEMUDomainAgentCommand for libvirt), whose silence tells that a guest has
// crashed.
package vm
