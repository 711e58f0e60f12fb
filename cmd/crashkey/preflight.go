package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/live"
	"github.com/crashkey/crashkey/registry"
)

func init() { register(newPreflightCmd) }

func newPreflightCmd() *cobra.Command {
	var (
		hk         hotkeyFlags
		asJSON     bool
		forceShare bool
		partition  int
		memory     uint64
		img        imageFlags
		dom        domainDiskFlags
		liveRun    bool
		target     agentFlags
	)
	cmd := &cobra.Command{
		Use:   "preflight (IMAGE | --libvirt URI --domain NAME) [hotkey flags] [--json]",
		Short: "Check a Windows guest's crash-dump configuration offline, from its disk image",
		Long: `preflight reads the SYSTEM hive out of a Windows guest's disk image (raw or qcow2; never
written to) and reports, before you try to crash the guest, what would stop a dump:

  - per keyboard driver (i8042prt for PS/2, kbdhid for USB/virtio, hyperkbd): whether the
    service is installed, its start type, and the hotkey that fires (CrashOnCtrlScroll,
    crashdump\Dump1Keys/Dump2Key, or the built-in default of client Windows);
  - CrashControl: dump type, DumpFile, MinidumpDir, AutoReboot, Overwrite, DedicatedDumpFile, NMI;
  - the paging files, and whether the dump fits (give --memory for a definite answer);
  - the Windows version (SOFTWARE hive): the built-in default hotkey exists only on client
    Windows 10 and later, and an NMI needs CrashControl\NMICrashDump before Windows 8;
  - a dirty hive whose logs cannot be replayed (values possibly stale), and changes made
    after the last clean shutdown.

With hotkey flags it says whether that hotkey would fire on a PS/2 and on a USB keyboard.
With --layout it also says what a person at the guest's keyboard must press for each armed
hotkey (the labels on that layout) and reads --hotkey's character keys as labels there.
Every problem comes with its fix, usually a crashkey arm command. IMAGE may also be a SYSTEM
hive file. --libvirt URI --domain NAME reads a libvirt domain's disk instead (through the
storage API when the daemon is remote; a running domain needs --force-share).

--live reads the running guest's registry through its QEMU guest agent instead (reg.exe query;
--qmp with --agent, or --libvirt with --domain) and adds "armed after the last boot: reboot
needed" when crashkey arm --apply wrote the settings after the guest's last boot (boot time
from the guest's uptime: PowerShell Win32_OperatingSystem on Windows, /proc/uptime elsewhere).

A dirty hive is replayed from its transaction logs (SYSTEM.LOG1/LOG2, in memory only); the
Windows version comes from the SOFTWARE hive beside SYSTEM. A damaged part of the hive makes
only what lies under it unknown (a warning, or an error for a keyboard driver or CrashControl).

Exit status: 0 no problem (warnings may be printed), 1 problems found, the hotkey would not
fire, or no volume holds \Windows; 2 bad input; 3 the image could not be read (or the hive is
so damaged that nothing useful can be read).`,
		Example: `  crashkey preflight win10.qcow2
  crashkey preflight win10.qcow2 --hotkey lshift+rshift+d --memory 4096
  crashkey preflight win10.qcow2 --layout fr --hotkey rctrl+a
  crashkey preflight --json --force-share /var/lib/libvirt/images/win.qcow2
  crashkey preflight --libvirt qemu+ssh://admin@host7/system --domain win11 --force-share
  crashkey preflight --live --qmp unix:/run/win.qmp --agent unix:/run/win.qga
  crashkey preflight --live --libvirt qemu:///system --domain win11 --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if liveRun {
				return preflightLive(cmd, args, &hk, &target, memory, asJSON)
			}
			if target.qmp != "" {
				return usageErr(errors.New("--qmp and --agent: only with --live"))
			}
			image, err := dom.image(args)
			if err != nil {
				return err
			}
			if image != "" {
				if _, err := os.Stat(image); err != nil {
					return usageErr(fmt.Errorf("preflight: %w", err))
				}
			}
			opts := registry.PreflightOptions{ForceShare: forceShare, Partition: partition, MemoryMiB: memory, AllowBacking: img.policy()}
			if hk.set(cmd) {
				h, err := hk.hotkey(cmd)
				if err != nil {
					return err
				}
				opts.Hotkey = &h
			}
			if cmd.Flags().Changed("layout") {
				l, err := keyboardLayout(hk.layout)
				if err != nil {
					return err
				}
				opts.Layout = l
			}
			if partition < 0 {
				return usageErr(fmt.Errorf("--partition %d: use a partition index from 1, or 0 to find the Windows volume", partition))
			}
			var rep *registry.Report
			if image == "" {
				img, _, closeAll, err := dom.open(cmd.Context(), cmd.ErrOrStderr(), forceShare, disk.Options{ForceShare: forceShare, Partition: partition, AllowBacking: opts.AllowBacking, Context: cmd.Context()})
				if err != nil {
					var ee *exitError
					if errors.As(err, &ee) {
						return err
					}
					return failedErr(err)
				}
				defer closeAll()
				rep, err = registry.PreflightImage(cmd.Context(), img, opts)
			} else {
				rep, err = registry.Preflight(cmd.Context(), image, opts)
			}
			switch {
			case err == nil:
			case errors.Is(err, context.Canceled):
				return err
			case errors.Is(err, disk.ErrNoVolume) && partition == 0:
				// no volume holds \Windows: the answer is no, as for pull --list
				return noErr(err)
			case registry.IsBadInput(err):
				return usageErr(err)
			default:
				return failedErr(err)
			}
			return writePreflight(cmd, rep, asJSON)
		},
	}
	hk.add(cmd)
	addImageFlags(cmd, &img)
	dom.add(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&forceShare, "force-share", false, "read the image even while a running QEMU holds it (the result may be inconsistent)")
	fs.IntVar(&partition, "partition", 0, "read the Windows volume from this partition index (default: find it)")
	fs.Uint64Var(&memory, "memory", 0, "the guest's memory in MiB, to judge whether the dump fits in a fixed-size paging file")
	fs.BoolVar(&liveRun, "live", false, "read the running guest's registry through its QEMU guest agent (reg.exe query) instead of a disk image: --qmp unix:PATH --agent unix:PATH, or --libvirt URI --domain NAME")
	target.libvirt, target.domain, target.rpcTimeout = &dom.libvirt, &dom.domain, &dom.rpcTimeout
	target.add(cmd, false)
	return cmd
}

// preflightLive judges the running guest's settings read through its agent.
func preflightLive(cmd *cobra.Command, args []string, hk *hotkeyFlags, target *agentFlags, memory uint64, asJSON bool) error {
	if len(args) > 0 {
		return usageErr(errors.New("--live reads the running guest: give no IMAGE"))
	}
	opts := live.PreflightOptions{Check: registry.CheckOptions{MemoryMiB: memory}}
	if hk.set(cmd) {
		h, err := hk.hotkey(cmd)
		if err != nil {
			return err
		}
		opts.Check.Hotkey = &h
	}
	if cmd.Flags().Changed("layout") {
		l, err := keyboardLayout(hk.layout)
		if err != nil {
			return err
		}
		opts.Check.Layout = l
	}
	ag, closeAll, err := target.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer closeAll()
	rep, err := live.Preflight(cmd.Context(), ag, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return failedErr(err)
	}
	return writePreflight(cmd, rep, asJSON)
}

// writePreflight prints a preflight report; problems found exit 1.
func writePreflight(cmd *cobra.Command, rep *registry.Report, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		if err := writeJSON(out, rep); err != nil {
			return failedErr(err)
		}
	} else if err := rep.WriteText(out); err != nil {
		return failedErr(err)
	}
	if !rep.OK {
		return quietError{ExitNo}
	}
	return nil
}
