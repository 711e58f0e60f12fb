package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/vm"
)

func init() { register(newStatusCmd) }

type statusReport struct {
	Target string `json:"target"`
	vm.Status
	// Rungs say whether each rung of run's escalation ladder can work (run.CheckRungs).
	Rungs     []run.RungCheck `json:"rungs"`
	PanicNote string          `json:"panic_note"`
}

func newStatusCmd() *cobra.Command {
	var (
		tf     targetFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status (--qmp unix:PATH|tcp:HOST:PORT | --libvirt URI --domain NAME)",
		Short: "Show the guest's run state, its keyboards (and which one receives keys), panic devices and action",
		Long: `status shows what decides whether a crash hotkey or NMI can produce a dump: the run state (a
paused guest drops injected keys), the keyboards and the one QEMU routes injected keys to (the
Windows driver to arm follows from it: i8042prt for PS/2, kbdhid for USB and virtio), the
panic devices (pvpanic, pvpanic-pci, hv-crash) and the panic action (QEMU cannot report it
unless crashkey set it; on libvirt it is the domain's <on_crash>), and whether each rung of run's
escalation ladder (keys, nmi, dump) can work: the dump rung needs the vmcoreinfo device. It
changes nothing.

` + fleetHelp + `

Exit codes: 0 shown; 2 bad input; 3 connection or call failed.`,
		Example: `  crashkey status --qmp unix:/run/win11.qmp
  crashkey status --libvirt qemu:///system --domain win11 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTargets(cmd, &tf, asJSON, 2*time.Minute, func(ctx context.Context, ft fleet.Target, out io.Writer) (string, error) {
				t, err := tf.dialAddr(ctx, ft.Addr)
				if err != nil {
					return "", err
				}
				defer t.Close()
				st, err := t.Status(ctx)
				if err != nil {
					return "", failedErr(err)
				}
				rep := statusReport{Target: t.Describe(), Status: st, Rungs: run.CheckRungs(ctx, t, st), PanicNote: run.PanicNote(st)}
				if asJSON {
					if err := writeJSON(out, rep); err != nil {
						return "", failedErr(err)
					}
				} else {
					printStatus(out, rep)
				}
				return statusSummary(st), nil
			})
		},
	}
	tf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// statusSummary is a status in one line (fleet reports).
func statusSummary(st vm.Status) string {
	s := stateText(st)
	if st.Receiver != nil {
		s += fmt.Sprintf("; keys go to %s %s (%s)", st.Receiver.Bus, st.Receiver.Device, st.Receiver.Driver)
	} else {
		s += "; no keyboard"
	}
	if len(st.PanicDevices) > 0 {
		s += "; panic devices " + joinComma(st.PanicDevices)
	}
	return s + "; panic action " + st.PanicAction
}

func printStatus(w io.Writer, rep statusReport) {
	st := rep.Status
	fmt.Fprintf(w, "target: %s\n", termsafe.String(rep.Target))
	fmt.Fprintf(w, "state: %s\n", stateText(st))
	if len(st.Keyboards) == 0 {
		fmt.Fprintln(w, "keyboards: none")
	}
	for _, k := range st.Keyboards {
		mark := ""
		if st.Receiver != nil && *st.Receiver == k {
			mark = "  <- receives injected keys"
		}
		path := ""
		if k.Path != "" {
			path = " " + k.Path
		}
		fmt.Fprintf(w, "keyboard: %-6s %s%s (Windows driver %s)%s\n", termsafe.String(k.Bus), termsafe.String(k.Device), termsafe.String(path), k.Driver, mark)
	}
	if len(st.PanicDevices) == 0 {
		fmt.Fprintln(w, "panic devices: none")
	} else {
		fmt.Fprintf(w, "panic devices: %s\n", termsafe.String(joinComma(st.PanicDevices)))
	}
	fmt.Fprintf(w, "panic action: %s\n", termsafe.String(st.PanicAction))
	for _, r := range rep.Rungs {
		fmt.Fprintf(w, "rung %-5s %-7s %s\n", r.Rung, r.Ready, termsafe.String(r.Detail))
	}
	if rep.PanicNote != "" {
		fmt.Fprintf(w, "crash detection: %s\n", termsafe.String(rep.PanicNote))
	}
	for _, wn := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", oneLine(wn))
	}
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
