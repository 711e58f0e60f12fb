package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/hid"
)

func init() { register(newPlanCmd) }

func newPlanCmd() *cobra.Command {
	var (
		hk     hotkeyFlags
		format string
		step   time.Duration
		settle time.Duration
		burst  bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print the exact key sequence of a hotkey in any format",
		Long: `Print the exact key sequence that fires a crash hotkey: every modifier down, the crash key
down/up twice, the modifiers up in reverse. The default hotkey is CrashOnCtrlScroll
(Right Ctrl held, Scroll Lock twice).

Formats: set1 (PS/2 bytes), usb (boot reports), evdev (Linux events), qmp (input-send-event
calls, none over QEMU's 16-scancode queue), json (everything), and the chord-only forms
sendkey (QMP send-key), hmp (HMP sendkey), virsh (virsh send-key), qm (Proxmox VE
qm sendkey), vbox (VirtualBox
keyboardputscancode). For chord forms a warning on stderr says what PS/2 and USB guests
really receive and whether the driver model says they crash.

Default timing: 50 ms after every event, 100 ms after the last modifier goes down.

With --layout, character keys are labels on that layout (--layout fr --hotkey rctrl+a is
the key labelled A on a French keyboard, the US Q position), and stderr says both readings.`,
		Example: `  crashkey plan --format set1
  crashkey plan --hotkey lshift+rshift+d --format usb
  crashkey plan --dump1keys 0x02 --dump2key 0x3d --format json
  crashkey plan --layout de --hotkey rctrl+z`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := hk.hotkey(cmd)
			if err != nil {
				return err
			}
			if asJSON {
				format = string(hid.FormatJSON)
			}
			f, err := hid.ParseFormat(format)
			if err != nil {
				return usageErr(fmt.Errorf("--format: %w", err))
			}
			timing := hid.DefaultTiming
			if burst {
				timing = hid.BurstTiming
			}
			if cmd.Flags().Changed("step") {
				timing.Step = step
			}
			if cmd.Flags().Changed("settle") {
				timing.Settle = settle
			}
			if timing.Step < 0 || timing.Settle < 0 {
				return usageErr(fmt.Errorf("--step and --settle must not be negative"))
			}
			text, warning, err := hid.Render(h, timing, f)
			if err != nil {
				return err
			}
			if hk.layoutSet(cmd) && f != hid.FormatJSON {
				// Both readings, on stderr: stdout stays the stream scripts read.
				fmt.Fprintf(cmd.ErrOrStderr(), "hotkey: %s; at the keyboard: %s\n", h.Describe(), h.Press())
			}
			if warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), warning)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), text)
			return err
		},
	}
	hk.add(cmd)
	cmd.Flags().StringVar(&format, "format", "set1", "set1, usb, evdev, qmp, sendkey, hmp, virsh, qm, vbox or json")
	cmd.Flags().BoolVar(&asJSON, "json", false, "same as --format json")
	cmd.Flags().BoolVar(&burst, "burst", false, "no delays: events back to back (QMP calls then group up to 16 scancodes)")
	cmd.Flags().DurationVar(&step, "step", hid.DefaultTiming.Step, "pause after each event")
	cmd.Flags().DurationVar(&settle, "settle", hid.DefaultTiming.Settle, "pause after the last modifier goes down")
	return cmd
}
