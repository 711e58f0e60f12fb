package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/internal/atomicfile"
	"github.com/crashkey/crashkey/live"
	"github.com/crashkey/crashkey/registry"
)

func init() { register(newArmCmd) }

func newArmCmd() *cobra.Command {
	var (
		hk           hotkeyFlags
		drivers      []string
		dumpType     string
		noAutoReboot bool
		dedicated    string
		format       string
		asJSON       bool
		controlSet   int
		output       string
		apply        bool
		reboot       bool
		rebootWait   time.Duration
		target       agentFlags
	)
	cmd := &cobra.Command{
		Use:   "arm [hotkey flags] [--driver i8042prt,kbdhid,hyperkbd|all] [--dump-type TYPE] [--no-autoreboot] [--dedicated-dump-file PATH] [--format reg|ps1|json]",
		Short: "Print the registry settings that arm a Windows guest for a keyboard crash dump",
		Long: `arm prints the registry settings that arm a Windows guest: the crash hotkey for each keyboard
driver (Parameters\CrashOnCtrlScroll=1 for the default Right Ctrl + Scroll Lock, or
crashdump\Dump1Keys and Dump2Key with CrashOnCtrlScroll removed for a custom hotkey), the
CrashControl values of the dump type, and a reminder that Windows must be restarted.

The output is a .reg file (import it in the guest with "reg import FILE.reg"), a PowerShell
script (--format ps1) or JSON. crashkey never writes to a guest's disk image; to arm an
offline hive copy, use --control-set N (Select\Current of the hive) and merge the .reg file,
e.g. with "hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' HIVE FILE.reg".

--apply arms a running guest through its QEMU guest agent instead: the .reg file goes to the
guest's temp folder (guest-file-write), reg.exe import runs it, reg.exe query reads every value
back, and the file is removed, also on errors. --reboot then restarts the guest and waits for
its agent. Exit status with --apply: 0 armed, 1 a value read back differs, 2 bad input, 3 the
agent failed (none answers, too old for guest-exec, command denied, reg.exe failed).`,
		Example: `  crashkey arm > arm.reg
  crashkey arm --hotkey lshift+rshift+d --driver all --dump-type complete --format ps1 > arm.ps1
  crashkey arm --no-autoreboot --dedicated-dump-file 'C:\DedicatedDump.sys' -o arm.reg
  crashkey arm --apply --reboot --qmp unix:/run/win.qmp --agent unix:/run/win.qga
  crashkey arm --apply --libvirt qemu:///system --domain win11 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := hk.hotkey(cmd)
			if err != nil {
				return err
			}
			opts := registry.ArmOptions{Hotkey: &h, NoAutoReboot: noAutoReboot, DedicatedDumpFile: dedicated, ControlSet: controlSet}
			if opts.Drivers, err = parseDrivers(drivers); err != nil {
				return usageErr(fmt.Errorf("--driver: %w", err))
			}
			if opts.DumpType, err = registry.ParseDumpType(dumpType); err != nil {
				return usageErr(fmt.Errorf("--dump-type: %w", err))
			}
			if cmd.Flags().Changed("control-set") && (controlSet < 1 || controlSet > 999) {
				return usageErr(fmt.Errorf("--control-set %d: use 1..999, the N of ControlSet00N (Select\\Current in the hive)", controlSet))
			}
			plan, err := registry.Arm(opts)
			if err != nil {
				return usageErr(err)
			}
			if apply {
				if controlSet != 0 || output != "" || cmd.Flags().Changed("format") {
					return usageErr(errors.New("--apply writes the settings into the running guest: drop --control-set, --format and -o"))
				}
				return armApply(cmd, &target, plan, live.Options{Reboot: reboot, RebootTimeout: rebootWait}, asJSON)
			}
			if reboot {
				return usageErr(errors.New("--reboot: only with --apply"))
			}
			if asJSON {
				format = "json"
			}
			var out []byte
			switch strings.ToLower(format) {
			case "reg":
				out = plan.Reg()
			case "ps1", "powershell":
				out = plan.PowerShell()
			case "json":
				out = plan.JSON()
			default:
				return usageErr(fmt.Errorf("--format %q: use reg, ps1 or json", format))
			}
			if output == "" || output == "-" {
				_, err := cmd.OutOrStdout().Write(out)
				return err
			}
			if err := atomicfile.WriteFile(output, out, 0o644); err != nil {
				return failedErr(fmt.Errorf("arm: %w", err))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "arm: wrote %s (%s for %s); %s\n", output, plan.Hotkey, strings.Join(driverNames(plan.Drivers), ", "), plan.Reboot)
			return nil
		},
	}
	hk.add(cmd)
	fs := cmd.Flags()
	fs.StringSliceVar(&drivers, "driver", []string{"i8042prt", "kbdhid"}, "keyboard drivers to arm: i8042prt (PS/2), kbdhid (USB/HID, virtio), hyperkbd (Hyper-V), or all")
	fs.StringVar(&dumpType, "dump-type", string(registry.DefaultDumpType), "dump type: kernel, complete, automatic, active or small")
	fs.BoolVar(&noAutoReboot, "no-autoreboot", false, "keep the guest at the blue screen after the dump is written (AutoReboot=0)")
	fs.StringVar(&dedicated, "dedicated-dump-file", "", `write the dump at crash time to this file instead of the boot volume's pagefile (e.g. C:\DedicatedDump.sys)`)
	fs.StringVar(&format, "format", "reg", "output format: reg, ps1 or json")
	fs.BoolVar(&asJSON, "json", false, "same as --format json")
	fs.IntVar(&controlSet, "control-set", 0, "write ControlSet00N paths instead of CurrentControlSet, for merging into an offline hive")
	fs.StringVarP(&output, "output", "o", "", "write to this file (atomically) instead of stdout")
	fs.BoolVar(&apply, "apply", false, "write the settings into the running guest through its QEMU guest agent (reg.exe import), read them back, and remove the temporary file")
	fs.BoolVar(&reboot, "reboot", false, "with --apply: restart the guest (guest-shutdown reboot) and wait until its agent answers again")
	fs.DurationVar(&rebootWait, "reboot-timeout", 10*time.Minute, "with --reboot: how long to wait for the agent after the restart")
	target.add(cmd, true)
	cmd.MarkFlagsMutuallyExclusive("json", "format")
	return cmd
}

// armApply arms the running guest through its agent and reports what it did.
func armApply(cmd *cobra.Command, target *agentFlags, plan *registry.Plan, opts live.Options, asJSON bool) error {
	ag, closeAll, err := target.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer closeAll()
	res, err := live.Apply(cmd.Context(), ag, plan, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		if errors.Is(err, live.ErrVerify) {
			return noErr(err)
		}
		return failedErr(err)
	}
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, res)
	}
	fmt.Fprintf(out, "armed %s for %s (%d values read back)\n", plan.Hotkey, strings.Join(driverNames(plan.Drivers), ", "), len(res.Checks))
	if res.Rebooted {
		fmt.Fprintln(out, "rebooted: the guest agent answers again; the settings are in effect")
	} else {
		fmt.Fprintln(out, "reboot needed: the settings take effect at the next boot (crashkey arm --apply --reboot does it)")
	}
	return nil
}

// parseDrivers reads --driver values: names, comma lists, or "all".
func parseDrivers(names []string) ([]hid.Driver, error) {
	var out []hid.Driver
	for _, n := range names {
		n = strings.TrimSpace(n)
		if strings.EqualFold(n, "all") {
			return append([]hid.Driver(nil), hid.Drivers...), nil
		}
		d, err := hid.ParseDriver(n)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no driver given: use i8042prt, kbdhid, hyperkbd or all")
	}
	return out, nil
}

func driverNames(ds []hid.Driver) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d)
	}
	return out
}
