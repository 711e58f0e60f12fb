package selftest

import (
	"context"
	"fmt"
	"time"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/live"
	"github.com/crashkey/crashkey/qemuboot"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// Driver is the Windows keyboard driver that receives a keyboard's keys: i8042prt for PS/2,
// kbdhid for USB and virtio (vioinput hands virtio keys to kbdhid).
func Driver(k qemuboot.Keyboard) hid.Driver {
	if k == qemuboot.PS2 {
		return hid.I8042prt
	}
	return hid.Kbdhid
}

// AgentArmer returns the Armer selftest uses by default: it arms the keyboard's driver for
// Right Ctrl + Scroll Lock (CrashOnCtrlScroll, and the default dump settings) through the
// guest agent with live.Apply, which reads the values back, removes its file from the guest
// and reboots the guest, waiting at most rebootTimeout for the agent to answer again.
func AgentArmer(rebootTimeout time.Duration) Armer {
	return func(ctx context.Context, qmp, agent string, k qemuboot.Keyboard) error {
		plan, err := registry.Arm(registry.ArmOptions{Drivers: []hid.Driver{Driver(k)}})
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		t, err := vm.Dial(ctx, vm.Address{QMP: qmp}, vm.Options{})
		if err != nil {
			return err
		}
		defer t.Close()
		ag, err := t.Agent(ctx, agent)
		if err != nil {
			return err
		}
		defer ag.Close()
		_, err = live.Apply(ctx, ag, plan, live.Options{Reboot: true, RebootTimeout: rebootTimeout})
		return err
	}
}
