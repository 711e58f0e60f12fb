// Command guest is the e2e test guest's /init: a static Linux PID 1 that prepares a minimal
// system (devtmpfs, proc, sysfs, kernel modules) and then runs one mode, chosen with the kernel
// command-line parameter crashkey.mode= (default "recorder").
//
// The recorder mode writes one line per observation on the second serial port (ttyS1): the raw
// bytes of the PS/2 keyboard (serio_raw), USB HID reports (hidraw), evdev key events of grabbed
// keyboards, NMIs the kernel reports, and "ready" once every expected keyboard is open. The line
// format is parsed by package github.com/crashkey/crashkey/e2e/harness.
//
// The windows mode (windows.go) is the stand-in Windows guest: it reads its crash settings from
// the SYSTEM hive on its disk, runs the Windows keyboard drivers' crash-hotkey model on the same
// raw input, and on a hotkey or an NMI bug-checks: pvpanic, a dump written into pagefile.sys's
// sectors, a reboot, and at the next boot the dump moved to Windows\MEMORY.DMP (package
// github.com/crashkey/crashkey/e2e/standin).
//
// Kernel parameters read by /init:
//
//	crashkey.mode=recorder        the mode to run (see modes)
//	crashkey.expect=ps2,usb,virtio keyboards that must be open before "ready"
//	crashkey.panic_on_nmi=1       sysctl kernel.unknown_nmi_panic=1 (an NMI panics; with pvpanic,
//	                              QEMU reports GUEST_PANICKED)
//	crashkey.out=/dev/ttyS1       where observation lines go
//	crashkey.vmcoreinfo=1         publish a Windows dump header through QEMU's vmcoreinfo device
//	                              (vmcoreinfo.go), for dump-guest-memory's win-dmp format
//	crashkey.ignore=keys,nmi      windows mode: a hung Windows that ignores its keyboard, NMIs
//	                              or both
//	crashkey.disk=/dev/vda        windows mode: the stand-in Windows disk
//	crashkey.ntfscp=/bin/ntfscp   windows mode: ntfs-3g's ntfscp (harness.Build puts it there)
//	crashkey.agent=auto|off       run qemu-ga on the virtio-serial port org.qemu.guest_agent.0
//	                              when there is one (auto, the default); off plays an image
//	                              without the agent installed
//
// /init never exits: PID 1 exiting panics the kernel.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// mode is one behaviour of the guest after the common setup.
type mode func(env *env) error

// modes maps crashkey.mode values to their implementation. Files add entries in init functions,
// so later issues can link more modes into the same /init.
var modes = map[string]mode{}

// env is what every mode gets: the parsed command line and the observation output.
type env struct {
	params params
	out    *output
}

func main() {
	start := time.Now()
	logf("crashkey guest starting")
	if err := mountBase(); err != nil {
		fail(nil, fmt.Errorf("mount: %w", err))
	}
	p, err := readParams("/proc/cmdline")
	if err != nil {
		fail(nil, fmt.Errorf("cmdline: %w", err))
	}
	out, err := openOutput(p.get("crashkey.out", "/dev/ttyS1"))
	if err != nil {
		fail(nil, fmt.Errorf("output: %w", err))
	}
	e := &env{params: p, out: out}
	name := p.get("crashkey.mode", "recorder")
	out.emit("boot", name)
	if err := loadModules("/lib/modules/crashkey", "/lib/modules/crashkey/modules.order"); err != nil {
		fail(out, fmt.Errorf("modules: %w", err))
	}
	if err := applySysctls(p); err != nil {
		fail(out, fmt.Errorf("sysctl: %w", err))
	}
	publishFromParams(e)
	if name != "windows" {
		// Windows starts its agent (a service) late in the boot, after the keyboard drivers:
		// windowsMode starts it once its keyboards are open.
		startAgent(e)
	}
	m, ok := modes[name]
	if !ok {
		fail(out, fmt.Errorf("unknown crashkey.mode %q (known: %s)", name, strings.Join(modeNames(), ", ")))
	}
	logf("setup done in %v, running mode %s", time.Since(start).Round(time.Millisecond), name)
	if err := m(e); err != nil {
		fail(out, fmt.Errorf("%s: %w", name, err))
	}
	hang()
}

func modeNames() []string {
	var names []string
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// logf writes a diagnostic line on the console (ttyS0).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crashkey-guest: "+format+"\n", args...)
}

// fail reports a fatal error on the console and, when open, as an "error" observation, then
// parks PID 1 forever.
func fail(out *output, err error) {
	logf("fatal: %v", err)
	if out != nil {
		out.emit("error", err.Error())
	}
	hang()
}

// hang blocks forever without exiting PID 1.
func hang() {
	select {}
}
