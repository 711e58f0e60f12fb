package hid

import (
	"fmt"
	"strings"
)

// Renderers for the command-line tools of hypervisor managers.

// FormatQM is Proxmox VE's "qm sendkey VMID KEYS" (a chord).
const FormatQM Format = "qm"

// QMSendKey is the Proxmox VE command line that comes closest to h: "qm sendkey VMID
// ctrl_r-scroll_lock-scroll_lock". qemu-server passes KEYS to QEMU's HMP sendkey (QKeyCode
// names joined by '-', QEMU's default hold time of 100 ms), so a guest receives what HMP
// sendkey gives it: see [ChordWarning].
func QMSendKey(h Hotkey) string {
	var names []string
	for _, k := range chordKeys(h) {
		names = append(names, k.QCode)
	}
	return "qm sendkey VMID " + strings.Join(names, "-")
}

// unsupportedFormats are formats people ask for that no tool can express, with the reason.
var unsupportedFormats = map[string]string{
	"incus": "Incus has no command or API call that sends keys to a VM (incus console only attaches a console): send the exact sequence over the VM's QMP socket with crashkey send --incus NAME",
	"lxd":   "LXD has no command or API call that sends keys to a VM (lxc console only attaches a console): send the exact sequence over the VM's QMP socket with crashkey send --lxd NAME",
}

// unsupportedFormat returns the error for a format no tool can express, or nil.
func unsupportedFormat(s string) error {
	if why, ok := unsupportedFormats[strings.ToLower(s)]; ok {
		return fmt.Errorf("format %q: %s", s, why)
	}
	return nil
}
