package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/vm"
)

func init() { register(newWatchCmd) }

// watchEvent is one line of `watch --json`.
type watchEvent struct {
	vm.Event
	// BugCheckName names a hyper-v GUEST_PANICKED's bug check code.
	BugCheckName string `json:"bugcheck_name,omitempty"`
}

func newWatchCmd() *cobra.Command {
	var (
		tf      targetFlags
		timeout time.Duration
		until   string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "watch (--qmp unix:PATH|tcp:HOST:PORT | --libvirt URI --domain NAME) [--timeout D]",
		Short: "Stream the guest's crash, reset, shutdown, stop and resume events as they happen",
		Long: `watch prints the guest's events, each with the hypervisor's time: GUEST_PANICKED (with the bug
check code and parameters when the guest has hv-crash), GUEST_CRASHLOADED (Windows is writing
its dump through pvpanic), RESET, SHUTDOWN, STOP, RESUME and every other QMP event, and on
libvirt also the lifecycle events ("crashed panicked", "stopped destroyed", …). With --json it
prints one JSON object per line.

It ends after --timeout, after the first event named by --until, or when the connection ends
(QEMU exited). It changes nothing in the guest. A QMP socket serves one client at a time: to
watch while another crashkey sends, give QEMU a second -qmp socket.

` + fleetHelp + `

Exit codes: 0 events seen; 1 nothing seen before --timeout; 2 bad input; 3 connection failed
(or lost before any event); 130 interrupted.`,
		Example: `  crashkey watch --qmp unix:/run/win11-events.qmp --until crash --timeout 10m
  crashkey watch --libvirt qemu:///system --domain win11 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout < 0 {
				return usageErr(fmt.Errorf("--timeout %v: must not be negative", timeout))
			}
			stop, err := parseUntil(until)
			if err != nil {
				return usageErr(err)
			}
			if !tf.isFleet() {
				if _, err := tf.address(); err != nil {
					return err
				}
			}
			def := time.Duration(0)
			if timeout > 0 {
				def = timeout + 30*time.Second
			}
			return runTargets(cmd, &tf, asJSON, def, func(ctx context.Context, ft fleet.Target, out io.Writer) (string, error) {
				t, err := tf.dialAddr(ctx, ft.Addr)
				if err != nil {
					return "", err
				}
				defer t.Close()
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				var deadline <-chan time.Time
				if timeout > 0 {
					tm := time.NewTimer(timeout)
					defer tm.Stop()
					deadline = tm.C
				}
				events, err := t.Events(wctx)
				if err != nil {
					return "", failedErr(err)
				}
				seen := 0
				last := ""
				summary := func() string {
					if seen == 0 {
						return "no event"
					}
					return fmt.Sprintf("%d %s, last %s", seen, plural(seen, "event"), last)
				}
				for {
					select {
					case e, ok := <-events:
						if !ok {
							if ctx.Err() != nil {
								return summary(), ctx.Err()
							}
							if seen == 0 {
								return summary(), failedErr(errors.New("watch: the connection ended before any event (QEMU exited or libvirtd closed the connection)"))
							}
							return summary(), nil
						}
						seen++
						last = strings.TrimSpace(e.Kind + " " + e.Lifecycle + " " + e.Detail)
						if err := printEvent(out, e, asJSON); err != nil {
							return summary(), failedErr(err)
						}
						if stop(e) {
							return summary(), nil
						}
					case <-deadline:
						if seen == 0 {
							return summary(), noErr(fmt.Errorf("watch: no event within %v", timeout))
						}
						return summary(), nil
					case <-ctx.Done():
						return summary(), ctx.Err()
					}
				}
			})
		},
	}
	tf.add(cmd)
	fs := cmd.Flags()
	fs.DurationVar(&timeout, "timeout", 0, "stop after this long (0: until interrupted or the connection ends)")
	fs.StringVar(&until, "until", "", `stop after the first of these events, comma-separated: QMP names (GUEST_PANICKED, SHUTDOWN, …), libvirt lifecycle names (crashed, stopped), "crash" (GUEST_PANICKED, GUEST_CRASHLOADED, libvirt crashed) or "any"`)
	fs.BoolVar(&asJSON, "json", false, "print one JSON object per line per event")
	return cmd
}

// parseUntil turns --until into a predicate.
func parseUntil(s string) (func(vm.Event) bool, error) {
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return func(vm.Event) bool { return false }, nil
	}
	for _, n := range names {
		if strings.ContainsAny(n, " \t") {
			return nil, fmt.Errorf("--until %q: event names have no spaces", n)
		}
	}
	return func(e vm.Event) bool {
		for _, n := range names {
			switch {
			case strings.EqualFold(n, "any"):
				return true
			case strings.EqualFold(n, "crash"):
				if e.IsCrash() {
					return true
				}
			case strings.EqualFold(n, e.Kind), e.Lifecycle != "" && strings.EqualFold(n, e.Lifecycle):
				return true
			}
		}
		return false
	}, nil
}

func printEvent(w io.Writer, e vm.Event, asJSON bool) error {
	we := watchEvent{Event: e}
	if e.Panic != nil && e.Panic.BugCheck != nil {
		we.BugCheckName = dump.BugCheckName(uint32(*e.Panic.BugCheck))
	}
	if asJSON {
		return writeJSONLine(w, we)
	}
	var sb strings.Builder
	sb.WriteString(e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"))
	sb.WriteString(" ")
	sb.WriteString(string(e.Source))
	sb.WriteString(" ")
	if e.Kind == vm.EventLifecycle {
		sb.WriteString("lifecycle " + e.Lifecycle + " " + e.Detail)
	} else {
		sb.WriteString(e.Kind)
	}
	if e.Action != "" {
		sb.WriteString(" action=" + e.Action)
	}
	if e.Reason != "" {
		sb.WriteString(" reason=" + e.Reason)
	}
	if e.Guest != nil {
		fmt.Fprintf(&sb, " guest=%v", *e.Guest)
	}
	if p := e.Panic; p != nil {
		sb.WriteString(" info=" + p.Type)
		if p.BugCheck != nil {
			sb.WriteString(" bugcheck=" + dump.FormatBugCheck(uint32(*p.BugCheck)))
			var ps []string
			for _, v := range p.Params {
				ps = append(ps, fmt.Sprintf("0x%x", uint64(v)))
			}
			sb.WriteString(" params=" + strings.Join(ps, ","))
		}
		if p.Message != "" {
			fmt.Fprintf(&sb, " message=%q", p.Message)
		}
	}
	if len(e.Data) > 0 && e.Kind != vm.EventLifecycle {
		sb.WriteString(" data=" + oneLine(string(e.Data)))
	}
	_, err := io.WriteString(w, termsafe.String(sb.String())+"\n")
	return err
}

// writeJSONLine writes v as one line of compact JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
