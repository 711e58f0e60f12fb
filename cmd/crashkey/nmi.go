package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/vm"
)

func init() { register(newNMICmd) }

type nmiReport struct {
	Target   string          `json:"target"`
	State    string          `json:"state"`
	Panic    *vm.PanicReport `json:"panic,omitempty"`
	Injected bool            `json:"injected"`
	Warnings []string        `json:"warnings,omitempty"`
	Error    string          `json:"error,omitempty"`
}

func newNMICmd() *cobra.Command {
	var (
		tf              targetFlags
		force, asJSON   bool
		keepPanicAction bool
	)
	cmd := &cobra.Command{
		Use:   "nmi (--qmp unix:PATH|tcp:HOST:PORT | --libvirt URI --domain NAME)",
		Short: "Inject an NMI: Windows 8 / Server 2012 and later bug-check with 0x80 NMI_HARDWARE_FAILURE",
		Long: `nmi injects a non-maskable interrupt (QMP inject-nmi, libvirt DomainInjectNmi). Windows 8 /
Server 2012 and later answer every NMI with bug check 0x80 and write a dump; older Windows needs
CrashControl\NMICrashDump=1. No keyboard driver or registry hotkey is involved, so it also works
on a guest that hangs with interrupts off.

Like send, it first checks that the guest runs (refused unless --force) and sets QEMU's panic
action to none (on libvirt it reports what <on_crash> will do).

` + fleetHelp + `

Exit codes: 0 injected; 1 refused (guest not running); 2 bad input; 3 connection or call failed.`,
		Example: `  crashkey nmi --qmp unix:/run/win11.qmp
  crashkey nmi --libvirt qemu+ssh://root@host/system --domain win11 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTargets(cmd, &tf, asJSON, 2*time.Minute, func(ctx context.Context, ft fleet.Target, out io.Writer) (string, error) {
				err := nmiOne(ctx, &tf, ft, out, asJSON, force, keepPanicAction)
				if err == nil {
					return "nmi injected", nil
				}
				return "", err
			})
		},
	}
	tf.add(cmd)
	fs := cmd.Flags()
	fs.BoolVar(&force, "force", false, "inject even when the guest is not running")
	fs.BoolVar(&keepPanicAction, "keep-panic-action", false, "do not set QEMU's panic action to none first")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// nmiOne injects an NMI into one target and prints the report to out.
func nmiOne(ctx context.Context, tf *targetFlags, ft fleet.Target, out io.Writer, asJSON, force, keepPanicAction bool) error {
	t, err := tf.dialAddr(ctx, ft.Addr)
	if err != nil {
		return err
	}
	defer t.Close()
	rep := nmiReport{Target: t.Describe()}
	finish := func(err error) error {
		if err != nil {
			rep.Error = err.Error()
		}
		if asJSON {
			if werr := writeJSON(out, rep); werr != nil {
				return failedErr(werr)
			}
		} else {
			fmt.Fprintf(out, "target: %s\nstate: %s\n", termsafe.String(rep.Target), termsafe.String(rep.State))
			seen := map[string]bool{}
			if rep.Panic != nil {
				printPanic(out, *rep.Panic, seen)
			}
			for _, w := range rep.Warnings {
				printWarning(out, w, seen)
			}
			if rep.Injected {
				fmt.Fprintln(out, "nmi: injected")
			} else {
				fmt.Fprintln(out, "nmi: not injected")
			}
		}
		return err
	}
	st, err := t.Status(ctx)
	if err != nil {
		return finish(failedErr(err))
	}
	rep.State = stateText(st)
	if !st.Running && !force {
		return finish(noErr(fmt.Errorf("nmi: %w (state %s): resume it first, or pass --force", vm.ErrNotRunning, rep.State)))
	}
	if !keepPanicAction {
		pr, err := t.PreparePanic(ctx)
		if err != nil {
			return finish(failedErr(err))
		}
		rep.Panic = &pr
	}
	if err := t.InjectNMI(ctx); err != nil {
		if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
			return finish(err)
		}
		return finish(failedErr(err))
	}
	rep.Injected = true
	return finish(nil)
}
