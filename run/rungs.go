package run

import (
	"context"
	"fmt"
	"strings"

	"github.com/crashkey/crashkey/vm"
)

// RungCheck says whether one rung of the escalation ladder can work on a running guest, as
// far as the hypervisor shows it. Whether the Windows keyboard driver is armed and whether
// the FwCfg driver is installed are on the guest's disk: crashkey preflight IMAGE says.
type RungCheck struct {
	Rung string `json:"rung"`
	// Ready is "yes", "no" or "unknown".
	Ready  string `json:"ready"`
	Detail string `json:"detail"`
}

// CheckRungs reports the ladder's rungs for t, whose status is st.
func CheckRungs(ctx context.Context, t vm.Target, st vm.Status) []RungCheck {
	var out []RungCheck
	keys := RungCheck{Rung: "keys", Ready: "unknown"}
	switch {
	case !st.Running:
		keys.Ready, keys.Detail = "no", "the guest is not running: injected keys are lost"
	case st.Receiver == nil:
		keys.Ready, keys.Detail = "no", "the guest has no keyboard"
	default:
		keys.Detail = fmt.Sprintf("keys go to the %s keyboard: Windows' %s must be armed (crashkey preflight IMAGE)", st.Receiver.Bus, st.Receiver.Driver)
	}
	out = append(out, keys)
	nmi := RungCheck{Rung: "nmi", Ready: "yes", Detail: "inject-nmi: Windows 8 / 2012 and later bug-check with 0x80 unless hung with NMIs blocked"}
	if !st.Running {
		nmi.Ready, nmi.Detail = "no", "the guest is not running"
	}
	out = append(out, nmi)
	dump := RungCheck{Rung: "dump", Ready: "unknown"}
	d, ok := vm.AsHostDumper(t)
	if !ok {
		dump.Ready, dump.Detail = "no", "this target cannot write host-side dumps"
		return append(out, dump)
	}
	info, err := d.HostDumpInfo(ctx)
	switch {
	case err != nil:
		dump.Detail = err.Error()
	case !info.VMCoreInfo:
		fix := "-device vmcoreinfo"
		if t.Backend() == vm.Libvirt {
			fix = "<vmcoreinfo state='on'/> in <features>"
		}
		dump.Ready, dump.Detail = "no", "no vmcoreinfo device ("+fix+"): only an ELF core (crashkey dump --format elf)"
	case !info.Local:
		dump.Ready, dump.Detail = "no", "the hypervisor is on another host: run crashkey there"
	default:
		dump.Detail = fmt.Sprintf("vmcoreinfo device present; needs %d MiB free in --out; whether the guest published its header (virtio-win FwCfg driver) shows only when dumping: QEMU has no query for it", info.MemoryBytes>>20)
	}
	return append(out, dump)
}

// PanicNote says what the panic devices mean for the ladder's crash detection.
func PanicNote(st vm.Status) string {
	if len(st.PanicDevices) == 0 {
		return "no panic device: a crash shows only as the guest's reboot (add pvpanic or hv-crash to see it at once)"
	}
	return "crashes are announced by " + strings.Join(st.PanicDevices, ", ")
}
