package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/dump/analyze"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/pull"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// Config says what Run does.
type Config struct {
	// Target is the guest's hypervisor connection.
	Target vm.Address
	// VM tunes the connection (per-call timeout).
	VM vm.Options
	// Agent is the QEMU guest agent's socket for QMP targets ("unix:/path"), needed by the exec
	// trigger; libvirt targets reach the domain's agent through libvirt.
	Agent string
	// Disk is the guest's disk image (raw or qcow2). For a libvirt target it may be left
	// empty: the disk holding \Windows is then found in the domain's XML and read as a local
	// file or, from a remote daemon, through libvirt's storage API (OpenDomainImage). For a QMP
	// target without it nothing is preflighted or pulled.
	Disk string
	// NoDomainDisk keeps a libvirt target without Disk from using the domain's disk.
	NoDomainDisk bool
	// Partition selects the Windows volume (0: found by itself).
	Partition int
	// AllowBacking widens which backing files of Disk are followed (see disk.BackingPolicy).
	AllowBacking disk.BackingPolicy
	// Trigger is how the crash is caused.
	Trigger Trigger
	// Hotkey is the hotkey for TriggerKeys (CrashOnCtrlScroll when zero).
	Hotkey hid.Hotkey
	// Chord sends the hotkey as one send-key chord instead of exact events (for testing what a
	// chord does; see hid.ChordWarning).
	Chord bool
	// Force sends keys to a guest that is not running and skips the preflight's stop.
	Force bool
	// ExpectBugCheck, when set, makes any other bug check a failure (a base code also
	// accepts its "_M" variant: see dump.BugCheckMatches). Zero means: the trigger's own code
	// (0xE2 for keys, 0x80 for an NMI) when the trigger has one.
	ExpectBugCheck *uint32
	// StopAfterCrash makes the guest's reboot after the dump pause the VM instead, and pulls
	// the dump from pagefile.sys of the stopped guest.
	StopAfterCrash bool
	// Timeout bounds the whole job (default 10 minutes); CrashTimeout bounds the wait for the
	// crash after the trigger (default 2 minutes).
	Timeout, CrashTimeout time.Duration
	// Poll is how often the disk is read while waiting for the dump (default 2 s).
	Poll time.Duration
	// OutDir receives the dump (default: the current directory); Force overwrites it.
	OutDir    string
	Overwrite bool
	// Deep reads every page of the dump when checking it.
	Deep bool
	// OnStep, when set, is called as each step ends (for live progress).
	OnStep func(Step)
	// Ladder, when set, replaces Trigger: each trigger is tried in turn (ladder.go), the next
	// one when no crash arrives within StepTimeout (default DefaultStepTimeout) or, after a
	// crash, no dump.
	Ladder      []Trigger
	StepTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.CrashTimeout <= 0 {
		c.CrashTimeout = 2 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = 2 * time.Second
	}
	if c.Hotkey.Key == nil {
		c.Hotkey = hid.CrashOnCtrlScroll()
	}
	if c.StepTimeout <= 0 {
		c.StepTimeout = DefaultStepTimeout
	}
}

// ErrBadConfig marks configuration errors (bad input).
var ErrBadConfig = errors.New("bad configuration")

// job is one Run in progress.
type job struct {
	cfg      Config
	rep      *Report
	start    time.Time
	t        vm.Target
	events   <-chan vm.Event
	seen     map[string]bool
	sources  pull.Sources
	baseline map[string]bool
	status   vm.Status
	// expectSet: the caller gave ExpectBugCheck; keysBlocked: why the keys rung cannot fire.
	expectSet    bool
	keysBlocked  string
	crashTimeout time.Duration  // CrashTimeout as configured (a ladder's rungs wait StepTimeout)
	domDisk      *vm.DomainDisk // the domain's disk found by the first openDisk
}

// hasDisk is true when the job can read the guest's disk.
func (c *Config) hasDisk() bool {
	return c.Disk != "" || c.Target.LibvirtURI != "" && !c.NoDomainDisk
}

// openDisk opens the guest's disk: Disk, or the libvirt domain's disk (found once).
func (j *job) openDisk(ctx context.Context) (*disk.Image, error) {
	// ctx ends every read and directory walk on the image (Ctrl-C during the search).
	opts := disk.Options{ForceShare: true, Partition: j.cfg.Partition, AllowBacking: j.cfg.AllowBacking, Context: ctx}
	if j.cfg.Disk != "" {
		return disk.Open(j.cfg.Disk, opts)
	}
	img, di, err := OpenDomainImage(ctx, j.t, opts)
	if err != nil {
		return nil, err
	}
	if j.domDisk == nil {
		j.domDisk = &di.Disk
		j.rep.DomainDisk = di
	}
	return img, nil
}

// milestones in the order they are reported.
var milestones = []string{"crash announced", "dump I/O started", "guest reset", "guest stopped", "agent gone", "dump found"}

// Run does the whole job. The returned report is complete even when err is not nil; err is
// set only for bad configuration (wrapping ErrBadConfig) and for failures of the job itself
// (connection, disk), in which case the report's outcome is OutcomeFailed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := cfg.Target.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if len(cfg.Ladder) > 0 {
		cfg.Trigger = cfg.Ladder[0]
	}
	if cfg.Trigger.Kind == "" {
		cfg.Trigger.Kind = TriggerKeys
	}
	expectSet := cfg.ExpectBugCheck != nil
	if cfg.ExpectBugCheck == nil {
		if code := cfg.Trigger.ExpectedBugCheck(); code != 0 {
			cfg.ExpectBugCheck = &code
		}
	}
	if cfg.StopAfterCrash && !cfg.hasDisk() {
		return nil, fmt.Errorf("%w: --stop-after-crash keeps the dump in pagefile.sys, which only --disk IMAGE can reach", ErrBadConfig)
	}
	j := &job{cfg: cfg, start: time.Now(), seen: map[string]bool{}, baseline: map[string]bool{}, expectSet: expectSet}
	j.rep = &Report{Target: describeAddress(cfg.Target), Trigger: cfg.Trigger.String(), Events: []vm.Event{}}
	if len(cfg.Ladder) > 0 {
		j.rep.Trigger = ladderString(cfg.Ladder)
	}
	for _, t := range append([]Trigger{cfg.Trigger}, cfg.Ladder...) {
		if t.Kind == TriggerKeys {
			j.rep.Hotkey = cfg.Hotkey.String()
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	err := j.run(ctx)
	j.finish()
	return j.rep, err
}

func describeAddress(a vm.Address) string {
	if a.QMP != "" {
		return "qmp " + a.QMP
	}
	return "libvirt " + a.LibvirtURI + " domain " + a.Domain
}

// step runs fn as a named step and records it.
func (j *job) step(name string, fn func(s *Step) error) error {
	s := Step{Name: name, Status: StepOK, Start: time.Now()}
	err := fn(&s)
	if err != nil && s.Status == StepOK {
		s.Status = StepFailed
	}
	if err != nil && s.Detail == "" {
		s.Detail = err.Error()
	}
	s.Duration = time.Since(s.Start)
	s.DurationMS = s.Duration.Milliseconds()
	j.rep.Steps = append(j.rep.Steps, s)
	if j.cfg.OnStep != nil {
		j.cfg.OnStep(s)
	}
	return err
}

func (j *job) skip(name, why string) {
	_ = j.step(name, func(s *Step) error { s.Status, s.Detail = StepSkipped, why; return nil })
}

func (j *job) conclude(o Outcome, summary string) {
	j.rep.Outcome, j.rep.Summary = o, summary
}

func (j *job) finish() {
	if j.t != nil {
		j.t.Close()
	}
	for _, m := range milestones {
		if j.seen[m] {
			j.rep.Seen = append(j.rep.Seen, m)
		} else {
			j.rep.NotSeen = append(j.rep.NotSeen, m)
		}
	}
	if j.rep.Outcome == "" {
		j.conclude(OutcomeFailed, "the job stopped before it could finish")
	}
	if j.rep.BugCheck != nil {
		j.rep.BugCheckName = dump.BugCheckName(*j.rep.BugCheck)
	}
	j.rep.Code = j.rep.Outcome.ExitCode()
	j.rep.DurationMS = time.Since(j.start).Milliseconds()
}

func (j *job) run(ctx context.Context) error {
	// connect
	if err := j.step("connect", func(s *Step) error {
		t, err := vm.Dial(ctx, j.cfg.Target, j.cfg.VM)
		if err != nil {
			return err
		}
		j.t = t
		st, err := t.Status(ctx)
		if err != nil {
			return err
		}
		j.status = st
		s.Detail = fmt.Sprintf("%s: %s", t.Describe(), st.State)
		if st.Receiver != nil {
			s.Detail += fmt.Sprintf("; keys go to the %s keyboard", st.Receiver.Bus)
		}
		for _, w := range st.Warnings {
			if !strings.Contains(w, "panic action") { // the prepare step sets it
				s.Notes = append(s.Notes, w)
			}
		}
		if !st.Running && !j.cfg.Force {
			return fmt.Errorf("the guest is %s, not running: a stopped guest drops injected keys and cannot crash; resume it (QMP cont, virsh resume) or pass --force", st.State)
		}
		return nil
	}); err != nil {
		j.conclude(OutcomeFailed, err.Error())
		return err
	}

	// 1. preflight
	if !j.cfg.hasDisk() {
		j.skip("preflight", "no --disk: the guest's settings are not checked and the dump cannot be pulled")
	} else if stop, err := j.preflight(ctx); err != nil || stop {
		return err
	}

	// 2. make sure the dump gets written
	if err := j.step("prepare", func(s *Step) error { return j.prepare(ctx, s) }); err != nil {
		j.conclude(OutcomeFailed, err.Error())
		return err
	}
	events, err := j.t.Events(ctx)
	if err != nil {
		j.conclude(OutcomeFailed, err.Error())
		return fmt.Errorf("events: %w", err)
	}
	j.events = events
	if len(j.cfg.Ladder) > 0 {
		return j.runLadder(ctx)
	}

	// 3. trigger
	triggered := time.Now()
	if err := j.step("trigger", func(s *Step) error { return j.trigger(ctx, s) }); err != nil {
		j.conclude(OutcomeFailed, err.Error())
		return err
	}

	// 4. watch for the crash
	var crashed bool
	_ = j.step("crash", func(s *Step) error {
		crashed = j.waitCrash(ctx, s)
		if !crashed {
			s.Status = StepFailed
		}
		return nil
	})
	if !crashed {
		j.conclude(OutcomeNoCrash, j.noCrashReason())
		return nil
	}
	if !j.cfg.hasDisk() {
		j.skip("dump", "no --disk: nothing to pull")
		j.conclude(OutcomeCrashedNoCheck, "the guest crashed; give --disk IMAGE to pull and check the dump")
		return nil
	}

	// 5. pull the dump once it is written
	var res *pull.Result
	if err := j.step("dump", func(s *Step) error {
		var err error
		res, err = j.waitDump(ctx, s, triggered)
		return err
	}); err != nil {
		if errors.Is(err, pull.ErrNoDump) || errors.Is(err, context.DeadlineExceeded) {
			j.conclude(OutcomeNoDump, "the guest crashed but no new dump appeared on its disk: "+err.Error())
			return nil
		}
		j.conclude(OutcomeFailed, err.Error())
		return err
	}
	j.rep.Dump = res
	j.seen["dump found"] = true

	// 6. check it
	return j.step("check", func(s *Step) error { return j.check(ctx, s, res) })
}

func (j *job) preflight(ctx context.Context) (stop bool, err error) {
	err = j.step("preflight", func(s *Step) error {
		img, err := j.openDisk(ctx)
		if err != nil {
			return err
		}
		defer img.Close()
		opts := registry.PreflightOptions{ForceShare: true, Partition: j.cfg.Partition}
		if j.cfg.Trigger.Kind == TriggerKeys {
			h := j.cfg.Hotkey
			opts.Hotkey = &h
		}
		pre, err := registry.PreflightImage(ctx, img, opts)
		if err != nil {
			return err
		}
		j.rep.Preflight = pre
		if pre.Settings != nil {
			j.sources = pullSources(pre.Settings)
		}
		// remember the dumps already there, so that only a new one counts
		if cands, err := pull.List(img, j.sources); err == nil {
			for _, c := range cands {
				j.baseline[candidateKey(c)] = true
			}
		}
		reasons := j.blockingProblems(pre)
		for _, p := range pre.Problems {
			s.Notes = append(s.Notes, fmt.Sprintf("%s: %s", p.Severity, p.Message))
		}
		if len(reasons) == 0 {
			s.Detail = "the guest is armed for this trigger"
			if !pre.OK {
				s.Status = StepWarning
				s.Detail += " (other problems below)"
			}
			return nil
		}
		msg := strings.Join(reasons, "; ")
		if pre.Fix != "" {
			msg += "; fix: " + pre.Fix
		}
		if j.cfg.Force {
			s.Status, s.Detail = StepWarning, "going on despite --force: "+msg
			return nil
		}
		if j.ladderGoesOn(pre) {
			j.keysBlocked = msg
			s.Status, s.Detail = StepWarning, "the keys rung is skipped: "+msg
			return nil
		}
		s.Status, s.Detail = StepFailed, msg
		stop = true
		j.conclude(OutcomePreflight, msg)
		return nil
	})
	if err != nil {
		j.conclude(OutcomeFailed, err.Error())
	}
	return stop, err
}

// blockingProblems are the preflight findings that make this run pointless.
func (j *job) blockingProblems(pre *registry.Report) []string {
	var out []string
	if j.cfg.Trigger.Kind == TriggerKeys && pre.Hotkey != nil {
		bus := "ps2"
		if j.status.Receiver != nil {
			bus = j.status.Receiver.Bus
		}
		fires, reason, drv := pre.Hotkey.PS2.Fires, pre.Hotkey.PS2.Reason, "i8042prt"
		if bus != "ps2" {
			fires, reason, drv = pre.Hotkey.USB.Fires, pre.Hotkey.USB.Reason, "kbdhid"
		}
		if !fires {
			out = append(out, fmt.Sprintf("%s cannot fire on this guest: keys go to its %s keyboard (Windows driver %s): %s", j.cfg.Hotkey, bus, drv, reason))
		}
	}
	for _, p := range pre.Problems {
		if p.Severity == registry.SeverityError && (p.ID == "dump-disabled" || p.ID == "dump-type") {
			out = append(out, p.Message)
		}
	}
	return out
}

func pullSources(s *registry.Settings) pull.Sources {
	cc := s.CrashControl
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return pull.Sources{DumpFile: str(cc.DumpFile), MinidumpDir: str(cc.MinidumpDir), DedicatedDumpFile: str(cc.DedicatedDumpFile)}
}

func candidateKey(c pull.Candidate) string {
	return fmt.Sprintf("%s|%d|%s|%d|%d", c.Source, c.Volume, c.SystemTime.UTC().Format(time.RFC3339Nano), c.DumpSize, c.BugCheck)
}

func (j *job) prepare(ctx context.Context, s *Step) error {
	pr, err := j.t.PreparePanic(ctx)
	if err != nil {
		return err
	}
	j.rep.Panic = &pr
	s.Detail = fmt.Sprintf("panic action %s: %s", pr.Action, pr.Effect)
	s.Notes = append(s.Notes, pr.Warnings...)
	if len(pr.Warnings) > 0 {
		s.Status = StepWarning
	}
	if j.cfg.StopAfterCrash {
		if err := j.t.SetActions(ctx, vm.Actions{Reboot: "shutdown", Shutdown: "pause"}); err != nil {
			return fmt.Errorf("--stop-after-crash: %w", err)
		}
		s.Notes = append(s.Notes, "the guest's reboot after the dump will pause the VM: the dump stays in pagefile.sys")
	}
	return nil
}

func (j *job) trigger(ctx context.Context, s *Step) error {
	switch j.cfg.Trigger.Kind {
	case TriggerKeys:
		h := j.cfg.Hotkey
		opts := vm.SendOptions{Force: j.cfg.Force}
		var res *vm.SendResult
		var err error
		if j.cfg.Chord {
			res, err = j.t.SendChord(ctx, h, hid.DefaultHoldTime, opts)
		} else {
			res, err = j.t.Send(ctx, hid.Plan(h, hid.DefaultTiming), opts)
		}
		j.rep.Send = res
		if res != nil {
			s.Notes = append(s.Notes, res.Warnings...)
		}
		if err != nil {
			// The drivers fire on the second release of the crash key; the modifier releases
			// after it may fail when the crash stops the VM or its monitor. With every event
			// up to that release delivered, the crash can still come: watch for it.
			fires := len(h.Modifiers.Keys()) + 4
			if j.cfg.Chord || res == nil || len(strings.Fields(res.Sent)) < fires {
				return err
			}
			s.Status = StepWarning
			s.Notes = append(s.Notes, "the hotkey was delivered, but a later release failed: "+err.Error())
		}
		method := "exact events (input-send-event)"
		if j.cfg.Chord {
			method = "one send-key chord"
		}
		s.Detail = fmt.Sprintf("sent %s as %s: %s", h, method, res.Sent)
	case TriggerNMI:
		if err := j.t.InjectNMI(ctx); err != nil {
			return err
		}
		s.Detail = "injected an NMI"
	case TriggerExec:
		ag, err := j.t.Agent(ctx, j.cfg.Agent)
		if err != nil {
			return err
		}
		defer ag.Close()
		pid, err := ag.Exec(ctx, j.cfg.Trigger.Command)
		if err != nil {
			return err
		}
		s.Detail = fmt.Sprintf("guest agent started %q (pid %d)", j.cfg.Trigger.Command, pid)
	}
	return nil
}

// record notes an event and the milestones it stands for, and returns whether it says that
// the guest crashed.
func (j *job) record(ctx context.Context, s *Step, e vm.Event) (crash bool) {
	j.rep.Events = append(j.rep.Events, e)
	switch e.Kind {
	case vm.EventGuestPanicked:
		j.seen["crash announced"] = true
		if e.Panic != nil && e.Panic.BugCheck != nil {
			code := uint32(*e.Panic.BugCheck)
			j.rep.BugCheck = &code
		}
		if e.Action == "pause" || e.Action == "poweroff" {
			s.Notes = append(s.Notes, fmt.Sprintf("the panic action %q stopped the guest before Windows could write its dump", e.Action))
			if e.Action == "pause" && j.t.Resume(ctx) == nil {
				s.Notes = append(s.Notes, "resumed the guest so that it can write its dump")
			}
		}
		return true
	case vm.EventGuestCrashLoaded:
		j.seen["dump I/O started"] = true
		return true
	case vm.EventReset:
		j.seen["guest reset"] = true
		return true
	case vm.EventShutdown, vm.EventStop:
		j.seen["guest stopped"] = true
		return e.Kind == vm.EventShutdown || j.seen["crash announced"]
	case vm.EventLifecycle:
		if e.Lifecycle == "crashed" {
			j.seen["crash announced"] = true
			return true
		}
		if e.Lifecycle == "stopped" || e.Lifecycle == "suspended" || e.Lifecycle == "shutdown" {
			j.seen["guest stopped"] = true
		}
	}
	return false
}

// waitCrash waits for a sign of the crash.
func (j *job) waitCrash(ctx context.Context, s *Step) bool {
	ctx, cancel := context.WithTimeout(ctx, j.cfg.CrashTimeout)
	defer cancel()
	agentGone := j.watchAgent(ctx)
	for {
		select {
		case e, ok := <-j.events:
			if !ok {
				s.Detail = "the hypervisor connection closed before a crash was seen"
				return false
			}
			if j.record(ctx, s, e) {
				s.Detail = fmt.Sprintf("%s after %.1fs", describeEvent(e), time.Since(s.Start).Seconds())
				return true
			}
		case <-agentGone:
			j.seen["agent gone"] = true
			agentGone = nil
		case <-ctx.Done():
			s.Detail = fmt.Sprintf("no crash seen within %s", j.cfg.CrashTimeout)
			return false
		}
	}
}

// watchAgent pings the guest agent (exec trigger only) and closes the returned channel when
// it stops answering.
func (j *job) watchAgent(ctx context.Context) <-chan struct{} {
	if j.cfg.Trigger.Kind != TriggerExec {
		return nil
	}
	gone := make(chan struct{})
	go func() {
		ag, err := j.t.Agent(ctx, j.cfg.Agent)
		if err != nil {
			return
		}
		defer ag.Close()
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := ag.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				close(gone)
				return
			}
			time.Sleep(time.Second)
		}
	}()
	return gone
}

func describeEvent(e vm.Event) string {
	var b strings.Builder
	b.WriteString(e.Kind)
	if e.Kind == vm.EventLifecycle {
		fmt.Fprintf(&b, " %s/%s", e.Lifecycle, e.Detail)
	}
	if e.Action != "" {
		fmt.Fprintf(&b, " (action %s)", e.Action)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (reason %s)", e.Reason)
	}
	if e.Panic != nil && e.Panic.BugCheck != nil {
		fmt.Fprintf(&b, " bug check %s", dump.FormatBugCheck(uint32(*e.Panic.BugCheck)))
	}
	return b.String()
}

// noCrashReason explains a run that saw no crash.
func (j *job) noCrashReason() string {
	msg := fmt.Sprintf("no crash within %s of the trigger", j.cfg.CrashTimeout)
	if j.cfg.Trigger.Kind != TriggerKeys {
		return msg
	}
	bus := "ps2"
	if j.status.Receiver != nil {
		bus = j.status.Receiver.Bus
	}
	if j.cfg.Chord {
		c := hid.Chord(j.cfg.Hotkey)
		out := c.PS2
		if bus != "ps2" {
			out = c.USB
		}
		if !out.Verdict.Crash {
			return fmt.Sprintf("%s: the %s keyboard received the send-key chord as %s, which the Windows driver model says does not crash (a chord presses each key once: QEMU drops the repeated press of %s); send exact events instead (without --method chord)",
				msg, bus, out.Received, j.cfg.Hotkey.Key.Name())
		}
	}
	if j.rep.Preflight == nil {
		msg += "; give --disk IMAGE to check that the guest is armed for this hotkey"
	}
	return msg
}

// waitDump waits until the dump is complete on the disk and pulls it.
func (j *job) waitDump(ctx context.Context, s *Step, triggered time.Time) (*pull.Result, error) {
	noReboot := j.autoRebootOff()
	switch {
	case noReboot:
		// Windows stays at its bug check screen: the dump never moves out of pagefile.sys and
		// no reboot says that it is complete, so a dump that stops changing is taken.
		s.Notes = append(s.Notes, "AutoReboot is 0: Windows does not reboot after its dump, which stays in pagefile.sys; it is taken once it stops changing")
	case j.cfg.StopAfterCrash:
		if err := j.waitEvent(ctx, s, func() bool { return j.seen["guest stopped"] }); err != nil {
			return nil, fmt.Errorf("waiting for the guest to stop after writing its dump: %w", err)
		}
		res, err := j.pullNew(ctx)
		if err != nil {
			return nil, err
		}
		s.Detail = fmt.Sprintf("guest stopped; pulled %s", describePull(res))
		return res, nil
	}
	// Windows reboots once the dump is written, and MEMORY.DMP appears after the reboot; a dump
	// still in pagefile.sys counts only when the guest stopped or will not reboot. Either must
	// read the same twice in a row: a file still being written does not.
	var last, lastNote string
	for {
		c, err := j.newest(ctx)
		switch {
		case err != nil:
			if note := "reading the disk: " + err.Error(); note != lastNote {
				s.Notes, lastNote = append(s.Notes, note), note
			}
		case c != nil:
			key := candidateKey(*c) + fmt.Sprintf("|%d|%s", c.Size, c.ModTime)
			final := !c.FromPagefile || j.seen["guest stopped"] || noReboot
			if key == last && final {
				res, err := j.pullNew(ctx)
				if err != nil {
					return nil, err
				}
				s.Detail = fmt.Sprintf("pulled %s, %.1fs after the trigger", describePull(res), time.Since(triggered).Seconds())
				return res, nil
			}
			last = key
		}
		select {
		case e, ok := <-j.events:
			if !ok {
				j.events = nil // connection gone: keep polling the disk
				continue
			}
			j.record(ctx, s, e)
		case <-time.After(j.cfg.Poll):
		case <-ctx.Done():
			msg := "no complete new dump on the disk before the timeout"
			if !j.seen["guest reset"] && !j.seen["guest stopped"] {
				msg += "; the guest did not reboot: if Windows is still writing, or AutoReboot is 0, the dump is in pagefile.sys (crashkey pull --force-share IMAGE)"
			}
			return nil, fmt.Errorf("%w: %s", pull.ErrNoDump, msg)
		}
	}
}

// autoRebootOff reports that the guest's CrashControl\AutoReboot is 0 (known from preflight).
func (j *job) autoRebootOff() bool {
	pre := j.rep.Preflight
	if pre == nil || pre.Settings == nil {
		return false
	}
	ar := pre.Settings.CrashControl.AutoReboot
	return ar != nil && *ar == 0
}

// waitEvent consumes events until done() or the context ends.
func (j *job) waitEvent(ctx context.Context, s *Step, done func() bool) error {
	for !done() {
		select {
		case e, ok := <-j.events:
			if !ok {
				return errors.New("the hypervisor connection closed")
			}
			j.record(ctx, s, e)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// newest returns the newest valid dump on the disk that was not there before the trigger.
func (j *job) newest(ctx context.Context) (*pull.Candidate, error) {
	img, err := j.openDisk(ctx)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	cands, err := pull.List(img, j.sources)
	if err != nil {
		return nil, err
	}
	var best *pull.Candidate
	for i := range cands {
		c := &cands[i]
		if !c.Valid || c.Kind == pull.KindMinidump || j.baseline[candidateKey(*c)] {
			continue
		}
		if best == nil || c.SystemTime.After(best.SystemTime) || (!c.FromPagefile && best.FromPagefile && !c.SystemTime.Before(best.SystemTime)) {
			best = c
		}
	}
	return best, nil
}

// pullNew copies the newest dump out.
func (j *job) pullNew(ctx context.Context) (*pull.Result, error) {
	img, err := j.openDisk(ctx)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	out := j.cfg.OutDir
	if out == "" {
		out = "."
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	res, err := pull.Pull(ctx, img, pull.Options{OutDir: out, Force: j.cfg.Overwrite, Sources: j.sources})
	if err != nil {
		return nil, err
	}
	if res.Candidate != nil && j.baseline[candidateKey(*res.Candidate)] {
		os.Remove(res.Output) // an old dump is not this run's result: leave nothing behind
		return nil, fmt.Errorf("%w: the newest dump on the disk is the one that was there before the trigger", pull.ErrNoDump)
	}
	return res, nil
}

func describePull(r *pull.Result) string {
	where := r.Source
	if r.FromPagefile {
		where += " (cut from the pagefile: Windows had not rebooted)"
	}
	return fmt.Sprintf("%s → %s (%d bytes)", where, r.Output, r.Size)
}

func (j *job) check(ctx context.Context, s *Step, res *pull.Result) error {
	f, err := os.Open(res.Output)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	rep, err := dump.CheckFile(ctx, f, fi.Size(), dump.CheckOptions{Deep: j.cfg.Deep, ExpectBugCheck: j.cfg.ExpectBugCheck})
	if err != nil {
		return err
	}
	j.rep.Check = rep
	if rep.Header != nil {
		if res, err := analyze.AnalyzeFile(ctx, f, fi.Size(), analyze.Options{SkipIdentity: true}); err == nil {
			j.rep.Culprit = res.Culprit
			if res.Culprit != nil {
				s.Notes = append(s.Notes, "probably caused by "+res.Culprit.Module+": "+res.Culprit.Evidence)
			}
		} else if ctx.Err() == nil {
			s.Notes = append(s.Notes, "what crashed could not be analysed: "+err.Error())
		}
	}
	if rep.Header == nil {
		s.Status, s.Detail = StepFailed, rep.Problem()
		j.conclude(OutcomeDumpBad, "the pulled file is not a dump: "+rep.Problem())
		return nil
	}
	code := rep.Header.BugCheckCode.Value
	if rep.Header.BugCheckCode.Set {
		j.rep.BugCheck = &code
	}
	s.Detail = fmt.Sprintf("%s, bug check %s", rep.Verdict, dump.FormatBugCheck(code))
	switch {
	case j.cfg.ExpectBugCheck != nil && !dump.BugCheckMatches(*j.cfg.ExpectBugCheck, rep.Header.BugCheckCode.Value):
		s.Status = StepFailed
		j.conclude(OutcomeWrongBugCheck, fmt.Sprintf("the dump holds bug check %s, not the expected %s", dump.FormatBugCheck(code), dump.FormatBugCheck(*j.cfg.ExpectBugCheck)))
	case !rep.OK():
		s.Status = StepFailed
		j.conclude(OutcomeDumpBad, "the dump is not valid: "+rep.Problem())
	default:
		if rep.Verdict != dump.Valid {
			s.Status = StepWarning
		}
		j.conclude(OutcomeDumpOK, fmt.Sprintf("the guest crashed with %s and its dump is %s", dump.FormatBugCheck(code), strings.ToLower(rep.Verdict.String())))
	}
	return nil
}
