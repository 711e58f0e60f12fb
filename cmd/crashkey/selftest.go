package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/internal/progress"
	"github.com/crashkey/crashkey/qemuboot"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/selftest"
)

func init() { register(newSelftestCmd) }

func newSelftestCmd() *cobra.Command {
	var (
		keyboards, triggers   []string
		qemu, junit           string
		ovmfCode, ovmfVars    string
		kernel, initrd, appnd string
		memory, cpus, par     int
		timeout, agentTO      time.Duration
		noArm, asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "selftest IMAGE [--keyboards ps2,usb,virtio] [--triggers keys,nmi] [--junit FILE] [--json]",
		Short: "Certify that a guest image produces good crash dumps: every keyboard × trigger, on throw-away overlays",
		Long: `selftest certifies a golden Windows image before a test suite relies on it. For each keyboard
(--keyboards) and trigger (--triggers) it boots a throw-away qcow2 overlay of IMAGE in QEMU (the
image itself is never written; KVM when /dev/kvm is usable, else TCG with a warning) with a QMP
socket, a guest agent channel, pvpanic and vmcoreinfo; waits for the QEMU guest agent; arms the
guest for that keyboard through the agent and reboots it (--no-arm: certify the image as it is);
crashes it, pulls the dump from the overlay and checks it (as crashkey run does). It prints a
matrix of outcomes with timings, --json the whole result, --junit FILE one JUnit test case per
cell. Every QEMU and file it made is removed at the end, also on Ctrl-C.

A guest without an agent cannot be armed or certified: selftest stops with the fix (install
virtio-win's guest tools in the image).

Exit codes: 0 certified (every cell crashed with the trigger's bug check and a valid dump); 1 not
certified (a cell failed), or no guest agent answers; 2 bad input; 3 QEMU or the disk could not
be used; 130 interrupted.`,
		Example: `  crashkey selftest /var/lib/images/win2022.qcow2 --junit selftest.xml
  crashkey selftest win11.qcow2 --ovmf /usr/share/OVMF/OVMF_CODE_4M.ms.fd,/usr/share/OVMF/OVMF_VARS_4M.ms.fd --memory 4096 --cpus 2
  crashkey selftest win.qcow2 --keyboards usb --triggers keys --timeout 20m --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := selftest.Options{
				Image: args[0], Timeout: timeout, AgentTimeout: agentTO, Parallel: par,
				Boot: qemuboot.Config{QEMU: qemu, MemoryMiB: memory, CPUs: cpus, Kernel: kernel, Initrd: initrd, Append: appnd},
			}
			for _, k := range splitList(keyboards) {
				kb, err := qemuboot.ParseKeyboard(k)
				if err != nil {
					return usageErr(fmt.Errorf("--keyboards: %w", err))
				}
				opts.Keyboards = append(opts.Keyboards, kb)
			}
			for _, t := range splitList(triggers) {
				tr, err := run.ParseTrigger(t)
				if err != nil || (tr.Kind != run.TriggerKeys && tr.Kind != run.TriggerNMI) {
					return usageErr(fmt.Errorf("--triggers: %q: use keys or nmi", t))
				}
				opts.Triggers = append(opts.Triggers, tr)
			}
			if ovmfCode != "" || ovmfVars != "" {
				if ovmfCode == "" || ovmfVars == "" {
					return usageErr(errors.New("--ovmf: give the firmware code and vars template as CODE,VARS (e.g. /usr/share/OVMF/OVMF_CODE_4M.ms.fd,/usr/share/OVMF/OVMF_VARS_4M.ms.fd)"))
				}
				opts.Boot.OVMF = &qemuboot.OVMF{Code: ovmfCode, Vars: ovmfVars}
			}
			if !noArm {
				opts.Arm = selftest.AgentArmer(timeout)
			}
			cells := len(qemuboot.Keyboards) * 2
			if len(opts.Keyboards) > 0 || len(opts.Triggers) > 0 {
				cells = max(len(opts.Keyboards), 1) * max(len(opts.Triggers), 1)
			}
			bar := progress.NewCount(cmd.ErrOrStderr(), int64(cells), "selftest")
			bar.Update(0, int64(cells))
			var done int64
			opts.OnCell = func(c selftest.Cell) {
				done++
				bar.Update(done, int64(cells))
			}
			opts.Warn = func(msg string) {
				bar.Clear()
				fmt.Fprintln(cmd.ErrOrStderr(), "crashkey: warning: "+msg)
			}
			res, err := selftest.Run(cmd.Context(), opts)
			bar.Finish()
			if res != nil && junit != "" {
				if werr := selftest.WriteJUnit(junit, res); werr != nil {
					return failedErr(werr)
				}
			}
			if res != nil && (err == nil || len(res.Cells) > 0 || asJSON) {
				w := cmd.OutOrStdout()
				var perr error
				if asJSON {
					perr = writeJSON(w, res)
				} else {
					perr = selftest.WriteText(w, res)
				}
				if perr != nil {
					return failedErr(perr)
				}
			}
			switch {
			case errors.Is(err, selftest.ErrBadConfig), errors.Is(err, qemuboot.ErrBadConfig):
				return usageErr(err)
			case errors.Is(err, selftest.ErrNoAgent):
				return noErr(err)
			case err != nil:
				return err
			case !res.Passed:
				return quietError{ExitNo}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&keyboards, "keyboards", nil, "keyboards to certify: ps2, usb, virtio (default all three)")
	f.StringSliceVar(&triggers, "triggers", nil, "triggers to certify: keys, nmi (default both)")
	f.StringVar(&junit, "junit", "", "write the matrix as JUnit XML to FILE (one test case per cell), atomically")
	f.StringVar(&qemu, "qemu", "", "the QEMU emulator (default qemu-system-x86_64 on PATH)")
	f.IntVar(&memory, "memory", 4096, "guest RAM in MiB (Windows 11 needs 4096)")
	f.IntVar(&cpus, "cpus", 2, "virtual CPUs")
	f.Var(&ovmfFlag{&ovmfCode, &ovmfVars}, "ovmf", "boot UEFI: OVMF firmware CODE,VARS (code attached read-only, a private copy of the vars; Windows 11 needs it)")
	f.DurationVar(&timeout, "timeout", 15*time.Minute, "deadline of each cell (boot, agent, arm, reboot, crash, dump)")
	f.DurationVar(&agentTO, "agent-timeout", 0, "how long to wait for the guest agent after a boot (default: --timeout)")
	f.IntVar(&par, "parallel", 1, "cells run at once (each one a QEMU with --memory)")
	f.BoolVar(&noArm, "no-arm", false, "do not arm through the agent: certify the image as it is armed")
	f.StringVar(&kernel, "kernel", "", "boot this kernel directly (Linux stand-in guests; not for Windows)")
	f.StringVar(&initrd, "initrd", "", "the initramfs for --kernel")
	f.StringVar(&appnd, "append", "", "the kernel command line for --kernel")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// ovmfFlag reads --ovmf CODE,VARS.
type ovmfFlag struct{ code, vars *string }

func (o *ovmfFlag) String() string {
	if o.code == nil || *o.code == "" {
		return ""
	}
	return *o.code + "," + *o.vars
}

func (o *ovmfFlag) Set(s string) error {
	code, vars, ok := strings.Cut(s, ",")
	if !ok || code == "" || vars == "" {
		return fmt.Errorf("want CODE,VARS (e.g. /usr/share/OVMF/OVMF_CODE_4M.ms.fd,/usr/share/OVMF/OVMF_VARS_4M.ms.fd)")
	}
	*o.code, *o.vars = code, vars
	return nil
}

func (o *ovmfFlag) Type() string { return "CODE,VARS" }

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
