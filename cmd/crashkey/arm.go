package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/internal/atomicfile"
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
e.g. with "hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' HIVE FILE.reg".`,
		Example: `  crashkey arm > arm.reg
  crashkey arm --hotkey lshift+rshift+d --driver all --dump-type complete --format ps1 > arm.ps1
  crashkey arm --no-autoreboot --dedicated-dump-file 'C:\DedicatedDump.sys' -o arm.reg`,
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
	cmd.MarkFlagsMutuallyExclusive("json", "format")
	return cmd
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
