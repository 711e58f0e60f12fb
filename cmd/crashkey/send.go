package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/vm"
)

func init() { register(newSendCmd) }

type sendReport struct {
	Target string          `json:"target"`
	Hotkey string          `json:"hotkey,omitempty"`
	Plan   string          `json:"plan"`
	Panic  *vm.PanicReport `json:"panic,omitempty"`
	Result *vm.SendResult  `json:"result"`
	Error  string          `json:"error,omitempty"`
}

func newSendCmd() *cobra.Command {
	var (
		tf                targetFlags
		hk                hotkeyFlags
		method            string
		sequence          string
		force, asJSON     bool
		keepPanicAction   bool
		holdMs            int
		step, settle      time.Duration
		callTO, releaseTO time.Duration
	)
	cmd := &cobra.Command{
		Use:   "send (--qmp unix:PATH|tcp:HOST:PORT | --libvirt URI --domain NAME) [hotkey flags]",
		Short: "Type the crash hotkey into a running guest, releasing every key even on failure",
		Long: `send delivers the crash hotkey into a running guest as explicit key down/up events (QMP
input-send-event; on libvirt through the QEMU monitor passthrough), paced so that no call
overflows QEMU's 16-scancode keyboard queue. If a call fails, the connection breaks, a
deadline passes or you press Ctrl-C midway, it releases every key still down (reconnecting
once if needed) and says so; if it cannot, it names the keys that may be stuck.

Before sending it checks that the guest runs (a paused guest drops injected keys: refused
unless --force), warns which keyboard receives the keys when the VM has more than one, and
sets QEMU's panic action to none so that a guest announcing its crash keeps running while
Windows writes the dump (on libvirt it reports what <on_crash> will do).

--method chord sends one send-key chord instead (libvirt: DomainSendKey); chords cannot hold
a modifier across two taps, see the warning it prints.

` + fleetHelp + `

Exit codes: 0 sent; 1 refused (guest not running); 2 bad input; 3 connection or call failed;
130 interrupted (after releasing the keys).`,
		Example: `  crashkey send --qmp unix:/run/win11.qmp
  crashkey send --libvirt qemu:///system --domain win11 --hotkey lshift+rshift+d
  crashkey send --qmp tcp:127.0.0.1:4444 --dump1keys 0x11 --dump2key 0x22 --json
  crashkey send --libvirt 'qemu+ssh://admin@host7/system' --domain 'win-ci-*' --parallel 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !tf.isFleet() {
				if _, err := tf.address(); err != nil {
					return err
				}
			}
			if method != "events" && method != "chord" {
				return usageErr(fmt.Errorf("--method %q: want events or chord", method))
			}
			if step < 0 || settle < 0 || holdMs < 0 || callTO < 0 || releaseTO < 0 {
				return usageErr(errors.New("--step, --settle, --hold-ms, --call-timeout and --release-timeout must not be negative"))
			}
			rep := sendReport{}
			var seq hid.Sequence
			var h hid.Hotkey
			if cmd.Flags().Changed("sequence") {
				if hk.set(cmd) {
					return usageErr(errors.New("--sequence and a hotkey flag exclude each other"))
				}
				if method == "chord" {
					return usageErr(errors.New("--sequence needs --method events"))
				}
				var err error
				if seq, err = hid.ParseSequence(sequence); err != nil {
					return usageErr(fmt.Errorf("--sequence: %w", err))
				}
				for i := range seq {
					seq[i].Delay = step
				}
			} else {
				var err error
				if h, err = hk.hotkey(cmd); err != nil {
					return err
				}
				seq = hid.Plan(h, hid.Timing{Settle: settle, Step: step})
				rep.Hotkey = h.String()
			}
			if method == "chord" {
				rep.Plan = hid.ChordSequence(h).String()
			} else {
				rep.Plan = seq.String()
			}

			return runTargets(cmd, &tf, asJSON, 2*time.Minute, func(ctx context.Context, ft fleet.Target, out io.Writer) (string, error) {
				rep := rep
				t, err := tf.dialAddr(ctx, ft.Addr)
				if err != nil {
					return "", err
				}
				defer t.Close()
				rep.Target = t.Describe()

				if !keepPanicAction {
					pr, err := t.PreparePanic(ctx)
					if err != nil {
						return "", failedErr(err)
					}
					rep.Panic = &pr
				}
				opts := vm.SendOptions{Force: force, CallTimeout: callTO, ReleaseTimeout: releaseTO}
				var res *vm.SendResult
				if method == "chord" {
					res, err = t.SendChord(ctx, h, holdMs, opts)
				} else {
					res, err = t.Send(ctx, seq, opts)
				}
				rep.Result = res
				if err != nil {
					rep.Error = err.Error()
				}
				if asJSON {
					if werr := writeJSON(out, rep); werr != nil {
						return "", failedErr(werr)
					}
				} else {
					printSend(out, rep)
				}
				summary := sendSummary(rep)
				switch {
				case err == nil:
					return summary, nil
				case errors.Is(err, vm.ErrNotRunning):
					return summary, noErr(err)
				case ctx.Err() != nil:
					return summary, err // interrupted: exit 130
				}
				return summary, failedErr(err)
			})
		},
	}
	tf.add(cmd)
	hk.add(cmd)
	fs := cmd.Flags()
	fs.StringVar(&method, "method", "events", "events: exact down/up events (input-send-event); chord: one send-key chord (libvirt DomainSendKey)")
	fs.StringVar(&sequence, "sequence", "", `send these events instead of a hotkey ("+ctrl_r -ctrl_r"; QKeyCode names), e.g. to release a stuck key`)
	fs.BoolVar(&force, "force", false, "send even when the guest is not running (the keys are then usually lost)")
	fs.BoolVar(&keepPanicAction, "keep-panic-action", false, "do not set QEMU's panic action to none before sending")
	fs.IntVar(&holdMs, "hold-ms", hid.DefaultHoldTime, "chord hold time per key in milliseconds (--method chord)")
	fs.DurationVar(&step, "step", hid.DefaultTiming.Step, "pause after every event")
	fs.DurationVar(&settle, "settle", hid.DefaultTiming.Settle, "pause after the last modifier goes down")
	fs.DurationVar(&callTO, "call-timeout", 0, "deadline of each key call (default: --rpc-timeout)")
	fs.DurationVar(&releaseTO, "release-timeout", 5*time.Second, "deadline of the release after a failure, reconnecting included")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// sendSummary says in one line what was sent, released or left stuck (fleet reports).
func sendSummary(rep sendReport) string {
	res := rep.Result
	what := rep.Plan
	if rep.Hotkey != "" {
		what = rep.Hotkey
	}
	switch {
	case res == nil || len(res.Calls) == 0:
		return "not sent: " + what
	case res.Complete:
		return fmt.Sprintf("sent (%s): %s", res.Method, what)
	case len(res.Stuck) > 0:
		return fmt.Sprintf("incomplete: %s; keys may be stuck: %s", what, strings.Join(res.Stuck, " "))
	case res.Released != "":
		return fmt.Sprintf("incomplete: %s; released %s", what, res.Released)
	}
	return "incomplete: " + what
}

func printSend(w io.Writer, rep sendReport) {
	fmt.Fprintf(w, "target: %s\n", termsafe.String(rep.Target))
	res := rep.Result
	if res != nil && res.Status != nil {
		printReceiver(w, *res.Status)
	}
	seen := map[string]bool{}
	if rep.Panic != nil {
		printPanic(w, *rep.Panic, seen)
	}
	if res != nil {
		for _, wn := range res.Warnings {
			printWarning(w, wn, seen)
		}
	}
	what := rep.Plan
	if rep.Hotkey != "" {
		what = rep.Hotkey + ": " + rep.Plan
	}
	if res == nil || (len(res.Calls) == 0 && rep.Error != "") {
		fmt.Fprintf(w, "not sent: %s\n", what)
		return
	}
	calls := 0
	for _, c := range res.Calls {
		if !c.Release {
			calls++
		}
	}
	if res.Complete {
		fmt.Fprintf(w, "sent (%s, %d %s): %s\n", res.Method, calls, plural(calls, "call"), what)
		return
	}
	fmt.Fprintf(w, "incomplete (%s): planned %s\n", res.Method, what)
	fmt.Fprintf(w, "sent: %s\n", orNone(res.Sent))
	if res.Uncertain != "" {
		fmt.Fprintf(w, "may have been sent: %s\n", res.Uncertain)
	}
	if res.Released != "" {
		how := ""
		if res.Reconnected {
			how = " (after reconnecting)"
		}
		fmt.Fprintf(w, "released%s: %s\n", how, res.Released)
	}
	if len(res.Stuck) > 0 {
		fmt.Fprintf(w, "may be stuck: %s\n", strings.Join(res.Stuck, " "))
		fmt.Fprintf(w, "release them with: %s\n", termsafe.String(releaseCommand(rep.Target, res.Stuck)))
	}
}

// releaseCommand is the crashkey send command that releases keys, for target (as
// vm.Target.Describe gives it: "qmp ADDR" or "libvirt URI domain NAME").
func releaseCommand(target string, keys []string) string {
	flags := "TARGET"
	if f := strings.Fields(target); len(f) == 2 && f[0] == "qmp" {
		flags = "--qmp " + f[1]
	} else if len(f) == 4 && f[0] == "libvirt" && f[2] == "domain" {
		flags = "--libvirt " + f[1] + " --domain " + f[3]
	}
	seq := make([]string, len(keys))
	for i, k := range keys {
		seq[i] = "-" + k
	}
	return fmt.Sprintf("crashkey send %s --sequence %q", flags, strings.Join(seq, " "))
}

func printReceiver(w io.Writer, st vm.Status) {
	fmt.Fprintf(w, "state: %s\n", stateText(st))
	if st.Receiver != nil {
		fmt.Fprintf(w, "keys go to: %s keyboard (%s): Windows driver %s\n", termsafe.String(st.Receiver.Bus), termsafe.String(st.Receiver.Device), st.Receiver.Driver)
	}
}

// printWarning prints a warning once.
func printWarning(w io.Writer, wn string, seen map[string]bool) {
	wn = oneLine(strings.TrimPrefix(wn, "warning: "))
	if seen[wn] {
		return
	}
	seen[wn] = true
	fmt.Fprintf(w, "warning: %s\n", wn)
}

func printPanic(w io.Writer, pr vm.PanicReport, seen map[string]bool) {
	changed := ""
	if pr.Changed {
		changed = " (set by crashkey)"
	}
	fmt.Fprintf(w, "panic action: %s%s: %s\n", termsafe.String(pr.Action), changed, termsafe.String(pr.Effect))
	for _, wn := range pr.Warnings {
		printWarning(w, wn, seen)
	}
}

func stateText(st vm.Status) string {
	if st.Reason != "" {
		return termsafe.String(st.State + " (" + st.Reason + ")")
	}
	return termsafe.String(st.State)
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
