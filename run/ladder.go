package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/pull"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// TriggerDump is the last rung of the escalation ladder: no crash at all, the hypervisor
// writes the guest's memory as a Windows dump (HostDumpWith).
const TriggerDump TriggerKind = "dump"

// DefaultStepTimeout is how long a rung of the ladder waits for a crash, and then for its
// dump, before the next rung is tried.
const DefaultStepTimeout = time.Minute

// ParseLadder reads --trigger: one trigger, or several separated by commas, tried in turn
// ("keys,nmi,dump"). exec:CMD takes the rest of the list as its command.
func ParseLadder(s string) ([]Trigger, error) {
	var out []Trigger
	seen := map[TriggerKind]bool{}
	for rest := s; ; {
		part, tail, more := strings.Cut(rest, ",")
		part = strings.TrimSpace(part)
		var tr Trigger
		var err error
		switch {
		case part == "":
			err = fmt.Errorf("trigger %q: an empty rung: use keys, nmi, exec:COMMAND and dump, separated by commas", s)
		case strings.HasPrefix(part, "exec:"):
			tr, err = ParseTrigger(strings.TrimSpace(rest))
			more = false
		case part == string(TriggerDump):
			tr = Trigger{Kind: TriggerDump}
		default:
			tr, err = ParseTrigger(part)
		}
		if err != nil {
			return nil, err
		}
		if seen[tr.Kind] {
			return nil, fmt.Errorf("trigger %q: %s is listed twice", s, tr.Kind)
		}
		seen[tr.Kind] = true
		out = append(out, tr)
		if !more {
			break
		}
		rest = tail
	}
	for i, tr := range out {
		if tr.Kind == TriggerDump && i != len(out)-1 {
			return nil, fmt.Errorf("trigger %q: dump must be the last rung (after it the guest has not crashed, and nothing more can be tried)", s)
		}
	}
	return out, nil
}

// ladderString is the ladder as ParseLadder reads it.
func ladderString(l []Trigger) string {
	parts := make([]string, len(l))
	for i, t := range l {
		parts[i] = t.String()
	}
	return strings.Join(parts, ",")
}

// Rung is what one rung of the ladder saw.
type Rung struct {
	Trigger string `json:"trigger"`
	// Result is "dumped" (the rung worked), "crashed" (without --disk), "no crash",
	// "crashed, no dump", "skipped" or "failed".
	Result string `json:"result"`
	Detail string `json:"detail"`
	Worked bool   `json:"worked"`
}

// runLadder tries each rung in turn after the common steps (connect, preflight, prepare).
func (j *job) runLadder(ctx context.Context) error {
	crashedBefore := false
	j.crashTimeout = j.cfg.CrashTimeout
	for i, tr := range j.cfg.Ladder {
		last := i == len(j.cfg.Ladder)-1
		r := Rung{Trigger: tr.String()}
		done, err := j.rung(ctx, tr, last, crashedBefore, &r)
		j.rep.Rungs = append(j.rep.Rungs, r)
		if r.Worked {
			j.rep.Rung = r.Trigger
		}
		if r.Result == "crashed, no dump" {
			crashedBefore = true
		}
		if done {
			return err
		}
	}
	return nil
}

// rung runs one rung; done says the job is over (it worked, or it failed for good).
func (j *job) rung(ctx context.Context, tr Trigger, last, crashedBefore bool, r *Rung) (done bool, err error) {
	if tr.Kind == TriggerDump {
		return j.hostDumpRung(ctx, last, crashedBefore, r)
	}
	if tr.Kind == TriggerKeys && j.keysBlocked != "" && !last {
		r.Result, r.Detail = "skipped", "preflight: "+j.keysBlocked
		j.skip("trigger:"+tr.String(), r.Detail)
		return false, nil
	}
	j.cfg.Trigger = tr
	if !j.expectSet {
		j.cfg.ExpectBugCheck = nil
		if code := tr.ExpectedBugCheck(); code != 0 {
			j.cfg.ExpectBugCheck = &code
		}
	}
	triggered := time.Now()
	if err := j.step("trigger:"+tr.String(), func(s *Step) error { return j.trigger(ctx, s) }); err != nil {
		r.Result, r.Detail = "failed", err.Error()
		if last {
			j.conclude(OutcomeFailed, err.Error())
			return true, err
		}
		return false, nil
	}
	if !last {
		j.cfg.CrashTimeout = j.cfg.StepTimeout
	} else {
		j.cfg.CrashTimeout = j.crashTimeout
	}
	var crashed bool
	var why string
	_ = j.step("crash", func(s *Step) error {
		crashed = j.waitCrash(ctx, s)
		if !crashed {
			s.Status = StepFailed
		}
		why = s.Detail
		return nil
	})
	if !crashed {
		r.Result, r.Detail = "no crash", why
		if last {
			j.conclude(OutcomeNoCrash, j.noCrashReason())
			return true, nil
		}
		return false, nil
	}
	if j.cfg.Disk == "" {
		r.Result, r.Detail, r.Worked = "crashed", why, true
		j.skip("dump", "no --disk: nothing to pull")
		j.conclude(OutcomeCrashedNoCheck, fmt.Sprintf("the guest crashed on rung %s; give --disk IMAGE to pull and check the dump", tr))
		return true, nil
	}
	dctx, cancel := ctx, context.CancelFunc(func() {})
	if !last {
		dctx, cancel = context.WithTimeout(ctx, j.cfg.StepTimeout)
	}
	var res *pull.Result
	err = j.step("dump", func(s *Step) error {
		var err error
		res, err = j.waitDump(dctx, s, triggered)
		return err
	})
	cancel()
	if err != nil {
		if errors.Is(err, pull.ErrNoDump) || errors.Is(err, context.DeadlineExceeded) {
			r.Result, r.Detail = "crashed, no dump", err.Error()
			if last {
				j.conclude(OutcomeNoDump, "the guest crashed but no new dump appeared on its disk: "+err.Error())
				return true, nil
			}
			return false, nil
		}
		r.Result, r.Detail = "failed", err.Error()
		j.conclude(OutcomeFailed, err.Error())
		return true, err
	}
	j.rep.Dump = res
	j.seen["dump found"] = true
	err = j.step("check", func(s *Step) error { return j.check(ctx, s, res) })
	r.Result, r.Detail, r.Worked = "dumped", describePull(res), true
	return true, err
}

// hostDumpRung has the hypervisor write the guest's memory (HostDumpWith).
func (j *job) hostDumpRung(ctx context.Context, last, crashedBefore bool, r *Rung) (bool, error) {
	var hd *HostDumpReport
	err := j.step("host dump", func(s *Step) error {
		var err error
		hd, err = HostDumpWith(ctx, j.t, HostDumpConfig{Target: j.cfg.Target, OutDir: j.cfg.OutDir, Deep: j.cfg.Deep})
		if err != nil {
			return err
		}
		s.Detail = fmt.Sprintf("%s wrote %s (%d bytes, %s)", j.t.Backend(), hd.Output, hd.Size, hd.Format)
		return nil
	})
	j.rep.HostDump = hd
	if err != nil {
		r.Result, r.Detail = "failed", err.Error()
		switch {
		case !last:
			return false, nil
		case errors.Is(err, vm.ErrNoVMCoreInfo), errors.Is(err, vm.ErrNoDumpHeader), errors.Is(err, vm.ErrBadDumpHeader), errors.Is(err, vm.Err32BitGuest):
			o := OutcomeNoCrash
			if crashedBefore {
				o = OutcomeNoDump
			}
			j.conclude(o, "no rung worked; the host-side dump: "+err.Error())
			return true, nil
		}
		j.conclude(OutcomeFailed, err.Error())
		return true, err
	}
	r.Result, r.Detail, r.Worked = "dumped", fmt.Sprintf("%s (%s)", hd.Output, hd.Format), true
	j.rep.Check = hd.Check
	code := hd.Check.BugCheck.Code.Value
	j.rep.BugCheck = &code
	summary := fmt.Sprintf("the hypervisor dumped the guest's memory (%s)", dump.FormatBugCheck(code))
	if hd.Live {
		summary += ": the guest had not crashed, a live dump"
	}
	if j.expectSet && code != *j.cfg.ExpectBugCheck {
		j.conclude(OutcomeWrongBugCheck, fmt.Sprintf("the host-side dump holds bug check %s, not the expected %s", dump.FormatBugCheck(code), dump.FormatBugCheck(*j.cfg.ExpectBugCheck)))
		return true, nil
	}
	j.conclude(OutcomeDumpOK, summary)
	return true, nil
}

// dumpsBlocked reports that the guest writes no dump at all (so no rung's crash gives one).
func (j *job) dumpsBlocked(pre *registry.Report) bool {
	for _, p := range pre.Problems {
		if p.Severity == registry.SeverityError && (p.ID == "dump-disabled" || p.ID == "dump-type") {
			return true
		}
	}
	return false
}

// ladderGoesOn reports whether a ladder still has a rung that can work when preflight says
// the first cannot: the host dump needs nothing from the guest's settings.
func (j *job) ladderGoesOn(pre *registry.Report) bool {
	for _, t := range j.cfg.Ladder {
		if t.Kind == TriggerDump {
			return true
		}
	}
	return len(j.cfg.Ladder) > 1 && j.cfg.Trigger.Kind == TriggerKeys && !j.dumpsBlocked(pre)
}
