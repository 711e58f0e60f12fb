package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/internal/progress"
	"github.com/crashkey/crashkey/internal/termsafe"
)

// oneTarget runs a command on one target, writes its usual output (text or JSON) to out and
// returns a one-line summary and the command's error (its exit code).
type oneTarget func(ctx context.Context, t fleet.Target, out io.Writer) (summary string, err error)

// runTargets runs one on the single target the flags name (the command's usual output), or,
// for a fleet, on every target: a line per target as it finishes, then a summary table
// (--json: one object per target per line, then {"summary": …}). The exit code is the worst
// target's. defTimeout is each target's deadline unless --target-timeout is given.
func runTargets(cmd *cobra.Command, tf *targetFlags, asJSON bool, defTimeout time.Duration, one oneTarget) error {
	ctx := cmd.Context()
	if !tf.isFleet() {
		a, err := tf.address()
		if err != nil {
			return err
		}
		_, err = one(ctx, fleet.Target{Addr: a, Name: fleet.NameOf(a)}, cmd.OutOrStdout())
		return err
	}
	ts, err := tf.targets(ctx)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	timeout := tf.targetTimeout
	if timeout == 0 {
		timeout = defTimeout
	}
	job := func(ctx context.Context, t fleet.Target) fleet.Result {
		var buf bytes.Buffer
		summary, err := one(ctx, t, &buf)
		r := fleet.Result{Summary: summary}
		if err != nil {
			r.Code = exitCode(err)
			if msg := err.Error(); msg != "" {
				r.Error = oneLine(msg)
				if r.Summary == "" {
					r.Summary = r.Error
				}
			}
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				r.Code, r.Summary = ExitFailed, fmt.Sprintf("no result within --target-timeout %v", timeout)
			}
		}
		if asJSON {
			r.Report = jsonReport(buf.Bytes())
		}
		return r
	}
	// A bar of targets finished on a terminal's stderr; each target's line clears it first.
	bar := progress.NewCount(cmd.ErrOrStderr(), int64(len(ts)), cmd.Name())
	bar.Update(0, int64(len(ts)))
	var finished int64
	done := func(r fleet.Result) {
		bar.Clear()
		if asJSON {
			writeFleetLine(w, r)
		} else {
			fmt.Fprintf(w, "%-7s %s: %s\n", resultMark(r.Code), termsafe.String(r.Target), oneLine(r.Summary))
		}
		finished++
		bar.Update(finished, int64(len(ts)))
	}
	results := fleet.Run(ctx, ts, fleet.Options{Parallel: tf.parallel, Timeout: timeout, Failed: ExitFailed}, job, done)
	bar.Finish()
	sum := fleet.Summarize(results)
	if asJSON {
		writeFleetLine(w, struct {
			Summary fleet.Summary `json:"summary"`
		}{sum})
	} else {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TARGET\tEXIT\tTIME\tSUMMARY")
		for _, r := range results {
			fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%s\n", termsafe.String(r.Target), r.Code, float64(r.DurationMS)/1000, oneLine(r.Summary))
		}
		tw.Flush()
		var parts []string
		for _, c := range sum.Codes() {
			parts = append(parts, fmt.Sprintf("%d× exit %d", sum.ByCode[c], c))
		}
		fmt.Fprintf(w, "%d targets: %d ok, %d not (%s); exit %d\n", sum.Targets, sum.OK, sum.Failed, strings.Join(parts, ", "), sum.Code)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sum.Code != 0 {
		return quietError{sum.Code}
	}
	return nil
}

func resultMark(code int) string {
	if code == 0 {
		return "[ok]"
	}
	return fmt.Sprintf("[exit %d]", code)
}

// jsonReport is a target's --json output: one JSON value as it is, several (watch's one per
// line) as an array; nil when it is not JSON.
func jsonReport(b []byte) any {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	var vals []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return nil
		}
		vals = append(vals, v)
	}
	return vals
}

// writeFleetLine writes v as one line of JSON, HTML characters as they are.
func writeFleetLine(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// fleetHelp is the fleet paragraph of the help of every command that takes targets.
const fleetHelp = `Several targets at once: repeat --domain (shell-style globs such as 'win-ci-*' match the
daemon's domains), --libvirt (every domain on every host) or --qmp, or list them in --targets
FILE; --parallel N of them run at once, each within --target-timeout. A line is printed per
target as it finishes, then a summary table (--json: an object per target per line, then a
summary object); the exit code is the worst target's (0 < 1 < 4 < 5 < 6 < 3 < 2 < 130).`
