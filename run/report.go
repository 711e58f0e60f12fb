package run

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/dump/analyze"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/pull"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// StepStatus is the outcome of one step.
type StepStatus string

// Step outcomes.
const (
	StepOK      StepStatus = "ok"
	StepWarning StepStatus = "warning" // done, with something to tell
	StepFailed  StepStatus = "failed"
	StepSkipped StepStatus = "skipped"
)

// Step is one step of the job with its timing and outcome.
type Step struct {
	Name     string        `json:"name"`
	Status   StepStatus    `json:"status"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"-"`
	// DurationMS is Duration in milliseconds (for JSON).
	DurationMS int64 `json:"duration_ms"`
	// Detail says what happened, in one line.
	Detail string `json:"detail"`
	// Notes are further lines (warnings, fixes).
	Notes []string `json:"notes,omitempty"`
}

// Outcome is the job's verdict.
type Outcome string

// The outcomes, each with its exit code (see [Outcome.ExitCode]).
const (
	OutcomeDumpOK         Outcome = "dump-ok"          // 0: crashed, dump pulled, valid, expected bug check
	OutcomePreflight      Outcome = "preflight-failed" // 1: the guest is not armed for this trigger; nothing was sent
	OutcomeFailed         Outcome = "failed"           // 3: the hypervisor or the disk could not be used
	OutcomeNoCrash        Outcome = "no-crash"         // 4: no crash seen before the timeout
	OutcomeNoDump         Outcome = "no-dump"          // 5: the guest crashed but no dump was found
	OutcomeDumpBad        Outcome = "dump-invalid"     // 6: the dump is corrupt or truncated
	OutcomeWrongBugCheck  Outcome = "wrong-bugcheck"   // 6: the dump holds another bug check than expected
	OutcomeCrashedNoCheck Outcome = "crashed"          // 0: crashed; no disk given, so no dump was pulled
)

// ExitCode maps an outcome to crashkey run's exit code.
func (o Outcome) ExitCode() int {
	switch o {
	case OutcomeDumpOK, OutcomeCrashedNoCheck:
		return 0
	case OutcomePreflight:
		return 1
	case OutcomeNoCrash:
		return 4
	case OutcomeNoDump:
		return 5
	case OutcomeDumpBad, OutcomeWrongBugCheck:
		return 6
	}
	return 3
}

// Report is everything Run did and found.
type Report struct {
	Target  string  `json:"target"`
	Trigger string  `json:"trigger"`
	Hotkey  string  `json:"hotkey,omitempty"`
	Outcome Outcome `json:"outcome"`
	// Code is crashkey run's exit code for Outcome (see Outcome.ExitCode).
	Code int `json:"exit_code"`
	// Summary says the outcome in one sentence, with the reason when it is not dump-ok.
	Summary string `json:"summary"`
	Steps   []Step `json:"steps"`
	// Events are every hypervisor event seen after the trigger.
	Events []vm.Event `json:"events"`
	// Seen and NotSeen list the milestones observed and missed (crash announced, dump I/O
	// started, guest reset, guest stopped, agent gone, dump found).
	Seen    []string `json:"seen"`
	NotSeen []string `json:"not_seen,omitempty"`
	// BugCheck is the crash's code, from GUEST_PANICKED (hyper-v) or the dump header.
	BugCheck     *uint32 `json:"bugcheck,omitempty"`
	BugCheckName string  `json:"bugcheck_name,omitempty"`
	// Preflight, Send, Panic, Dump and Check are the detailed results of those steps.
	Preflight *registry.Report `json:"preflight,omitempty"`
	Send      *vm.SendResult   `json:"send,omitempty"`
	Panic     *vm.PanicReport  `json:"panic,omitempty"`
	Dump      *pull.Result     `json:"dump,omitempty"`
	Check     *dump.Report     `json:"check,omitempty"`
	// Culprit is the probable cause named from the pulled dump (nil when none can be named).
	Culprit *analyze.Culprit `json:"culprit,omitempty"`
	// Rungs are what each rung of an escalation ladder (--trigger keys,nmi,dump) saw, and
	// Rung the one that worked; HostDump is the dump rung's result.
	Rungs    []Rung          `json:"rungs,omitempty"`
	Rung     string          `json:"rung,omitempty"`
	HostDump *HostDumpReport `json:"host_dump,omitempty"`
	// DomainDisk is the libvirt domain's disk that was read when no Disk was given.
	DomainDisk *DomainImage `json:"domain_disk,omitempty"`
	// DurationMS is the whole job's duration.
	DurationMS int64 `json:"duration_ms"`
}

// ExitCode is the process exit code for the report's outcome.
func (r *Report) ExitCode() int { return r.Outcome.ExitCode() }

// WriteText prints the report for people: one line per step, then the outcome.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target:  %s\ntrigger: %s", r.Target, r.Trigger)
	if r.Hotkey != "" {
		fmt.Fprintf(&b, " (%s)", r.Hotkey)
	}
	b.WriteString("\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "%-8s %-13s %7.1fs  %s\n", "["+string(s.Status)+"]", s.Name, s.Duration.Seconds(), termsafe.String(s.Detail))
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "%32s%s\n", "", termsafe.String(n))
		}
	}
	if len(r.Seen) > 0 {
		fmt.Fprintf(&b, "seen:     %s\n", termsafe.String(strings.Join(r.Seen, ", ")))
	}
	if len(r.NotSeen) > 0 {
		fmt.Fprintf(&b, "not seen: %s\n", termsafe.String(strings.Join(r.NotSeen, ", ")))
	}
	for _, g := range r.Rungs {
		fmt.Fprintf(&b, "rung:     %-8s %s: %s\n", g.Trigger, g.Result, termsafe.String(g.Detail))
	}
	if r.HostDump != nil && r.HostDump.Output != "" {
		fmt.Fprintf(&b, "dump:     %s (%d bytes, sha256 %s) written by the hypervisor\n", termsafe.String(r.HostDump.Output), r.HostDump.Size, r.HostDump.SHA256)
	}
	if r.Dump != nil {
		fmt.Fprintf(&b, "dump:     %s (%d bytes, sha256 %s) from %s\n", termsafe.String(r.Dump.Output), r.Dump.Size, r.Dump.SHA256, termsafe.String(r.Dump.Source))
	}
	if r.BugCheck != nil {
		fmt.Fprintf(&b, "bugcheck: %s\n", dump.FormatBugCheck(*r.BugCheck))
	}
	if c := r.Culprit; c != nil {
		loc := c.Module
		if c.Offset != nil {
			loc = fmt.Sprintf("%s+0x%X", c.Module, uint64(*c.Offset))
		}
		fmt.Fprintf(&b, "culprit:  probably caused by %s (%s)\n", termsafe.String(c.Module), termsafe.String(loc))
	}
	fmt.Fprintf(&b, "outcome:  %s: %s (%.1fs)\n", r.Outcome, termsafe.String(r.Summary), float64(r.DurationMS)/1000)
	_, err := io.WriteString(w, b.String())
	return err
}
