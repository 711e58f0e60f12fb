// Package selftest certifies that a guest image produces good crash dumps: for each keyboard
// and trigger it boots a throw-away overlay of the image in QEMU (package qemuboot), waits for
// the guest agent, arms the guest through it and reboots it, crashes it with run.Run, which
// pulls the dump from the overlay and checks it, and records the outcome and timings of each
// cell of the matrix. The image itself is never written.
package selftest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/qemuboot"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/vm"
)

// ErrNoAgent is returned when no guest agent answers in a booted image: nothing can be armed
// or certified without one.
var ErrNoAgent = errors.New("no guest agent answers")

// ErrBadConfig marks configuration errors.
var ErrBadConfig = errors.New("bad configuration")

// NoAgentFix is the fix ErrNoAgent's message names.
const NoAgentFix = "install the QEMU guest agent in the image (Windows: virtio-win's guest tools, virtio-win-guest-tools.exe, which also install the vioserial driver its channel needs; Linux: the qemu-guest-agent package) and make sure its service starts at boot"

// Armer arms the running guest whose QMP monitor and guest agent are at qmp and agent
// ("unix:/path") for keyboard through the agent, reboots it and returns once the agent answers
// again.
type Armer func(ctx context.Context, qmp, agent string, keyboard qemuboot.Keyboard) error

// Options say what to certify and how.
type Options struct {
	// Image is the guest image (raw or qcow2); it is only ever read.
	Image string
	// Keyboards and Triggers span the matrix (default: ps2, usb, virtio × keys, nmi).
	Keyboards []qemuboot.Keyboard
	Triggers  []run.Trigger
	// Boot is the QEMU configuration of each cell's guest; Image and Keyboard are set per cell.
	Boot qemuboot.Config
	// Arm arms a booted guest through its agent and reboots it; nil certifies the image as it
	// is armed.
	Arm Armer
	// Timeout bounds each cell (default 15 minutes); AgentTimeout bounds the wait for the
	// agent after a boot (default: Timeout).
	Timeout, AgentTimeout time.Duration
	// Parallel is how many cells run at once (default 1).
	Parallel int
	// OnCell, when set, is called as each cell ends (for progress).
	OnCell func(Cell)
	// Warn receives warnings (TCG instead of KVM); default: Logger.Warn.
	Warn func(msg string)
	// Logger receives debug lines (default slog.Default()).
	Logger *slog.Logger
}

// Timings are how long each phase of a cell took.
type Timings struct {
	Boot  time.Duration `json:"boot"`  // QEMU start to the first agent answer
	Arm   time.Duration `json:"arm"`   // arming through the agent and the reboot
	Crash time.Duration `json:"crash"` // run.Run: trigger, crash, dump pulled and checked
	Total time.Duration `json:"total"`
}

// Cell is one keyboard × trigger of the matrix.
type Cell struct {
	Keyboard qemuboot.Keyboard `json:"keyboard"`
	Trigger  string            `json:"trigger"`
	// Passed is true when the guest crashed with the trigger's bug check and its dump is valid.
	Passed bool `json:"passed"`
	// Outcome is run's outcome, or "boot-failed", "no-agent", "arm-failed", "timeout" for a
	// cell that did not get as far as the trigger.
	Outcome string `json:"outcome"`
	// Summary says the outcome in one sentence.
	Summary string      `json:"summary"`
	Timings Timings     `json:"timings"`
	Report  *run.Report `json:"report,omitempty"`
}

// Result is the certification of an image.
type Result struct {
	Image  string `json:"image"`
	Accel  string `json:"accel"`
	Passed bool   `json:"passed"`
	Cells  []Cell `json:"cells"`
	// Error is why the matrix stopped before every cell ran (no agent, interrupted).
	Error string `json:"error,omitempty"`
	// Duration is the wall time of the whole matrix.
	Duration time.Duration `json:"-"`
}

// Outcomes of cells that did not reach run.Run.
const (
	OutcomeBootFailed = "boot-failed"
	OutcomeNoAgent    = "no-agent"
	OutcomeArmFailed  = "arm-failed"
)

func (o *Options) defaults() error {
	if o.Image == "" {
		return fmt.Errorf("selftest: %w: no image: give the golden image to certify", ErrBadConfig)
	}
	if _, err := os.Stat(o.Image); err != nil {
		return fmt.Errorf("selftest: %w: image: %v", ErrBadConfig, err)
	}
	if len(o.Keyboards) == 0 {
		o.Keyboards = qemuboot.Keyboards
	}
	if len(o.Triggers) == 0 {
		o.Triggers = []run.Trigger{{Kind: run.TriggerKeys}, {Kind: run.TriggerNMI}}
	}
	for _, t := range o.Triggers {
		if t.Kind != run.TriggerKeys && t.Kind != run.TriggerNMI {
			return fmt.Errorf("selftest: %w: trigger %q: use keys or nmi", ErrBadConfig, t)
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	if o.AgentTimeout <= 0 {
		o.AgentTimeout = o.Timeout
	}
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Boot.Logger == nil {
		o.Boot.Logger = o.Logger
	}
	if o.Warn == nil {
		o.Warn = func(msg string) { o.Logger.Warn(msg) }
	}
	b := o.Boot
	b.Image = o.Image
	if err := b.Validate(); err != nil {
		return fmt.Errorf("selftest: %w: %w", ErrBadConfig, err)
	}
	return nil
}

// Run certifies opts.Image: every cell of the matrix, opts.Parallel at a time. It returns the
// result with every cell that ran, and an error wrapping ErrNoAgent (with the fix) when a
// booted guest has no agent: the remaining cells are then not run. A cell that fails is not
// an error: see Result.Passed.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if opts.Boot.Accel == "" {
		opts.Boot.Accel = "tcg"
		if qemuboot.KVMUsable() {
			opts.Boot.Accel = "kvm"
		} else {
			opts.Warn("/dev/kvm is not usable: emulating the CPU with TCG (slow: a Windows boot takes many minutes); give this user access to /dev/kvm (group kvm)")
		}
	}
	return runCells(ctx, opts, runCell)
}

type cellFunc func(ctx context.Context, opts Options, kbd qemuboot.Keyboard, trig run.Trigger) (Cell, error)

func runCells(parent context.Context, opts Options, fn cellFunc) (*Result, error) {
	start := time.Now()
	res := &Result{Image: opts.Image, Accel: opts.Boot.Accel}
	type job struct {
		i   int
		kbd qemuboot.Keyboard
		trg run.Trigger
	}
	var jobs []job
	for _, k := range opts.Keyboards {
		for _, t := range opts.Triggers {
			jobs = append(jobs, job{len(jobs), k, t})
		}
	}
	cells := make([]*Cell, len(jobs))
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		mu    sync.Mutex
		fatal error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, opts.Parallel)
	)
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := fn(ctx, opts, j.kbd, j.trg)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if fatal == nil && ctx.Err() == nil {
					fatal = err
				}
				cancel()
				return
			}
			cells[j.i] = &c
			if opts.OnCell != nil {
				opts.OnCell(c)
			}
		}(j)
	}
	wg.Wait()
	res.Passed = true
	for _, c := range cells {
		if c == nil {
			res.Passed = false
			continue
		}
		res.Cells = append(res.Cells, *c)
		res.Passed = res.Passed && c.Passed
	}
	res.Duration = time.Since(start)
	if fatal == nil && parent.Err() != nil {
		fatal = fmt.Errorf("selftest: stopped after %d of %d cells: %w", len(res.Cells), len(jobs), parent.Err())
	}
	if fatal != nil {
		res.Passed, res.Error = false, fatal.Error()
	}
	return res, fatal
}

// runCell boots one guest, waits for its agent, arms it, reboots it and crashes it.
func runCell(ctx context.Context, opts Options, kbd qemuboot.Keyboard, trig run.Trigger) (Cell, error) {
	c := Cell{Keyboard: kbd, Trigger: trig.String()}
	start := time.Now()
	defer func() { c.Timings.Total = time.Since(start) }()
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	fail := func(outcome, format string, a ...any) (Cell, error) {
		c.Outcome, c.Summary = outcome, fmt.Sprintf(format, a...)
		c.Timings.Total = time.Since(start)
		return c, nil
	}

	bc := opts.Boot
	bc.Image, bc.Keyboard = opts.Image, kbd
	m, err := qemuboot.Start(ctx, bc)
	if err != nil {
		if outer.Err() != nil {
			return c, err
		}
		return fail(OutcomeBootFailed, "%v", err)
	}
	defer m.Close()

	if err := WaitAgent(ctx, m.QMP(), m.Agent(), opts.AgentTimeout); err != nil {
		if errors.Is(err, ErrNoAgent) {
			return c, err
		}
		return fail(OutcomeNoAgent, "%v", err)
	}
	c.Timings.Boot = time.Since(start)

	t := time.Now()
	if opts.Arm != nil {
		if err := opts.Arm(ctx, m.QMP(), m.Agent(), kbd); err != nil {
			return fail(OutcomeArmFailed, "arm through the agent: %v", err)
		}
	}
	c.Timings.Arm = time.Since(t)

	out, err := os.MkdirTemp(m.Dir(), "dump-")
	if err != nil {
		return fail(string(run.OutcomeFailed), "%v", err)
	}
	imgDir, _ := filepath.Abs(filepath.Dir(opts.Image))
	t = time.Now()
	deadline, _ := ctx.Deadline()
	rep, err := run.Run(ctx, run.Config{
		Target:       vm.Address{QMP: m.QMP()},
		Agent:        m.Agent(),
		Disk:         m.Overlay(),
		AllowBacking: disk.BackingPolicy{Dirs: []string{imgDir}},
		Trigger:      trig,
		Timeout:      time.Until(deadline),
		OutDir:       out,
	})
	c.Timings.Crash = time.Since(t)
	if rep == nil {
		return fail(string(run.OutcomeFailed), "run: %v", err)
	}
	c.Report = rep
	c.Outcome, c.Summary = string(rep.Outcome), rep.Summary
	c.Passed = rep.Outcome == run.OutcomeDumpOK
	return c, nil
}

// WaitAgent waits until the guest agent at agent answers guest-ping, trying again every few
// seconds, for at most timeout. When none answers it returns an error wrapping ErrNoAgent that
// names the fix.
func WaitAgent(ctx context.Context, qmp, agent string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t, err := vm.Dial(wctx, vm.Address{QMP: qmp}, vm.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("selftest: qmp: %w", err)
	}
	defer t.Close()
	var last error
	for {
		last = ping(wctx, t, agent)
		if last == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("selftest: waiting for the guest agent: %w", ctx.Err())
			}
			return fmt.Errorf("selftest: %w within %s on the org.qemu.guest_agent.0 channel (last: %v): %s", ErrNoAgent, timeout.Round(time.Second), last, NoAgentFix)
		case <-time.After(2 * time.Second):
		}
	}
}

func ping(ctx context.Context, t vm.Target, addr string) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	a, err := t.Agent(pctx, addr)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Ping(pctx)
}
