package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/crashkey/crashkey/qemuboot"
)

// Guest is a running test guest: a QEMU process started by Start, or a libvirt domain started by
// StartLibvirt. Its methods are safe for concurrent use.
type Guest struct {
	cfg    Config
	paths  Paths
	dir    string
	ownDir bool

	proc     *qemuboot.Process
	exited   <-chan struct{} // closed when QEMU exits (nil channel for libvirt domains)
	stream   *stream
	stopTail chan struct{}
	tailOnce sync.Once
	tailDone chan struct{}

	stopOnce sync.Once
	stopErr  error

	// libvirt
	domain string
	uri    string
	virsh  string
}

// Start boots cfg's guest under QEMU (run by qemuboot.Launch) and returns once the QMP socket
// answers, so that QMPAddr can be dialled at once. ctx bounds only the start; the guest runs
// until Stop. Call WaitReady before injecting keys.
func Start(ctx context.Context, cfg Config) (*Guest, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	g, err := newGuest(cfg)
	if err != nil {
		return nil, err
	}
	args := cfg.QEMUArgs(g.paths)
	if err := os.WriteFile(filepath.Join(g.dir, "qemu.args"), []byte(strings.Join(append([]string{cfg.QEMU}, args...), "\n")+"\n"), 0o644); err != nil {
		g.cleanupDir()
		return nil, fmt.Errorf("start: %w", err)
	}
	proc, err := qemuboot.Launch(ctx, qemuboot.ProcessConfig{QEMU: cfg.QEMU, Args: args, Dir: g.dir, Stderr: cfg.Stderr, QMP: g.paths.QMP})
	if err != nil {
		g.cleanupDir()
		return nil, fmt.Errorf("start: %w", err)
	}
	g.proc, g.exited = proc, proc.Exited()
	g.startTail()
	return g, nil
}

func newGuest(cfg Config) (*Guest, error) {
	g := &Guest{cfg: cfg, dir: cfg.Dir, stream: newStream()}
	if g.dir == "" {
		d, err := os.MkdirTemp("", "crashkey-guest-")
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		g.dir, g.ownDir = d, true
	} else if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	g.paths = Paths{
		QMP:     filepath.Join(g.dir, "qmp.sock"),
		Console: filepath.Join(g.dir, "console.log"),
		Data:    filepath.Join(g.dir, "data.log"),
		Agent:   filepath.Join(g.dir, "qga.sock"),
	}
	if len(g.paths.QMP) > 100 {
		g.cleanupDir()
		return nil, fmt.Errorf("start: socket path %q is too long for a unix socket: use a shorter Config.Dir", g.paths.QMP)
	}
	return g, nil
}

func (g *Guest) startTail() {
	g.stopTail = make(chan struct{})
	g.tailDone = make(chan struct{})
	go func() {
		defer close(g.tailDone)
		g.stream.follow(g.paths.Data, g.stopTail)
	}()
	if g.exited != nil {
		// When QEMU exits, read what is left and end the stream.
		go func() {
			select {
			case <-g.exited:
				g.stopTailOnce()
			case <-g.tailDone:
			}
		}()
	}
}

func (g *Guest) stopTailOnce() {
	g.tailOnce.Do(func() { close(g.stopTail) })
}

func (g *Guest) cleanupDir() {
	if g.ownDir {
		os.RemoveAll(g.dir)
	}
}

// QMPAddr is the QMP monitor's address as "unix:/path" (empty for a libvirt domain, whose
// monitor belongs to libvirtd: use Virsh("qemu-monitor-command", …) there).
func (g *Guest) QMPAddr() string {
	if g.domain != "" {
		return ""
	}
	return "unix:" + g.paths.QMP
}

// AgentAddr is the guest agent's socket as "unix:/path" (Config.Agent; empty otherwise, and
// empty for a libvirt domain, whose agent channel belongs to libvirtd: reach the agent through
// libvirt, e.g. vm.Dial with the domain's libvirt address).
func (g *Guest) AgentAddr() string {
	if g.domain != "" || !g.cfg.Agent {
		return ""
	}
	return "unix:" + g.paths.Agent
}

// QMPPath is the QMP unix socket's path (empty for a libvirt domain).
func (g *Guest) QMPPath() string {
	if g.domain != "" {
		return ""
	}
	return g.paths.QMP
}

// Paths returns the guest's socket and log files.
func (g *Guest) Paths() Paths { return g.paths }

// Dir is the guest's working directory.
func (g *Guest) Dir() string { return g.dir }

// Config is the configuration the guest was started with (defaults filled in).
func (g *Guest) Config() Config { return g.cfg }

// Domain is the libvirt domain name (empty for a guest started by Start).
func (g *Guest) Domain() string { return g.domain }

// Exited is closed when the QEMU process exits (for example after a pvpanic with the default
// panic action, or a guest reset under -no-reboot). It is never closed for a libvirt domain.
func (g *Guest) Exited() <-chan struct{} { return g.exited }

// ExitErr is QEMU's exit status once Exited is closed.
func (g *Guest) ExitErr() error {
	if g.proc == nil {
		return nil
	}
	return g.proc.ExitErr()
}

// Console returns what the guest has written on ttyS0 (kernel messages, /init's diagnostics).
func (g *Guest) Console() string {
	b, _ := os.ReadFile(g.paths.Console)
	return string(b)
}

func (g *Guest) consoleTail(n int) string {
	lines := strings.Split(strings.TrimRight(g.Console(), "\r\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Mark returns the index the next observation will get; pass it as "from" to the waiting
// helpers to look only at what happens after this point.
func (g *Guest) Mark() int { return g.stream.len() }

// Observations returns every observation from index from on.
func (g *Guest) Observations(from int) []Observation {
	obs, _, _, _ := g.stream.snapshot(from)
	return obs
}

// ErrStreamEnded is returned by the waiting helpers when the guest's output ended (QEMU exited
// or Stop was called) before the wait was satisfied.
var ErrStreamEnded = errors.New("guest output ended")

// WaitFor returns the first observation from index from on that pred accepts. It fails when ctx
// ends or the guest's output ends first.
func (g *Guest) WaitFor(ctx context.Context, from int, pred func(Observation) bool) (Observation, error) {
	for {
		obs, changed, ended, endErr := g.stream.snapshot(from)
		for _, o := range obs {
			if pred(o) {
				return o, nil
			}
		}
		from += len(obs)
		if ended {
			if endErr != nil {
				return Observation{}, fmt.Errorf("wait: %w: %v", ErrStreamEnded, endErr)
			}
			return Observation{}, fmt.Errorf("wait: %w (qemu: %v)", ErrStreamEnded, g.ExitErr())
		}
		select {
		case <-ctx.Done():
			return Observation{}, fmt.Errorf("wait: %w", ctx.Err())
		case <-changed:
		}
	}
}

// WaitKind waits for the next observation of kind from index from on.
func (g *Guest) WaitKind(ctx context.Context, from int, kind string) (Observation, error) {
	return g.WaitFor(ctx, from, func(o Observation) bool { return o.Kind == kind })
}

// WaitReady waits for the guest's "ready" line: every keyboard of the configuration is open. It
// fails if the guest reported an error before, or when QEMU exits or ctx ends; the error then
// carries the end of the console log.
func (g *Guest) WaitReady(ctx context.Context) error {
	o, err := g.WaitFor(ctx, 0, func(o Observation) bool { return o.Kind == KindReady || o.Kind == KindError })
	if err != nil {
		return fmt.Errorf("wait ready: %w\nconsole:\n%s", err, g.consoleTail(30))
	}
	if o.Kind == KindError {
		return fmt.Errorf("wait ready: guest error: %s\nconsole:\n%s", strings.Join(o.Fields, " "), g.consoleTail(30))
	}
	return nil
}

// Collect waits until at least one observation of kind has arrived from index from on and then
// until none arrived for quiet, and returns all observations of kind from index from on. Use it
// to capture an exact stream: a quiet period long enough (a few hundred milliseconds under TCG)
// also catches unwanted extras. When ctx ends first, it returns what it has with the error.
func (g *Guest) Collect(ctx context.Context, from int, kind string, quiet time.Duration) ([]Observation, error) {
	return g.CollectN(ctx, from, kind, 1, quiet)
}

// CollectN is Collect that starts the quiet period only once at least n observations of kind
// have arrived. When the expected length of a stream is known, it keeps a guest that stalls in
// the middle of a stream (a loaded host, TCG) from cutting the stream short.
func (g *Guest) CollectN(ctx context.Context, from int, kind string, n int, quiet time.Duration) ([]Observation, error) {
	return g.collect(ctx, from, func(o Observation) bool { return o.Kind == kind }, kind, n, quiet)
}

func (g *Guest) collect(ctx context.Context, from int, pred func(Observation) bool, what string, n int, quiet time.Duration) ([]Observation, error) {
	if n < 1 {
		n = 1
	}
	var got []Observation
	next := from
	var timer <-chan time.Time
	for {
		obs, changed, ended, _ := g.stream.snapshot(next)
		for _, o := range obs {
			if pred(o) {
				got = append(got, o)
				if len(got) >= n {
					timer = time.After(quiet) // (re)start the quiet period
				}
			}
		}
		next += len(obs)
		if ended {
			if len(got) < n {
				return got, fmt.Errorf("collect %s: got %d of %d: %w (qemu: %v)", what, len(got), n, ErrStreamEnded, g.ExitErr())
			}
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("collect %s: got %d (waiting for %d), then %w", what, len(got), n, ctx.Err())
		case <-timer:
			return got, nil
		case <-changed:
		}
	}
}

// PS2Bytes collects the PS/2 byte stream from index from on (see Collect).
func (g *Guest) PS2Bytes(ctx context.Context, from int, quiet time.Duration) ([]byte, error) {
	return g.PS2BytesN(ctx, from, 1, quiet)
}

// PS2BytesN collects at least n PS/2 bytes, then until quiet (see CollectN).
func (g *Guest) PS2BytesN(ctx context.Context, from, n int, quiet time.Duration) ([]byte, error) {
	obs, err := g.CollectN(ctx, from, KindPS2, n, quiet)
	out := make([]byte, 0, len(obs))
	for _, o := range obs {
		if b, ok := o.PS2Byte(); ok {
			out = append(out, b)
		}
	}
	return out, err
}

// USBReports collects HID reports from index from on (see Collect).
func (g *Guest) USBReports(ctx context.Context, from int, quiet time.Duration) ([][]byte, error) {
	return g.USBReportsN(ctx, from, 1, quiet)
}

// USBReportsN collects at least n HID reports, then until quiet (see CollectN).
func (g *Guest) USBReportsN(ctx context.Context, from, n int, quiet time.Duration) ([][]byte, error) {
	obs, err := g.CollectN(ctx, from, KindUSB, n, quiet)
	out := make([][]byte, 0, len(obs))
	for _, o := range obs {
		if r, ok := o.USBReport(); ok {
			out = append(out, r)
		}
	}
	return out, err
}

// EvdevEvents collects evdev events from index from on (see Collect); bus ("virtio", "usb", …)
// selects one bus, empty means all.
func (g *Guest) EvdevEvents(ctx context.Context, from int, bus string, quiet time.Duration) ([]EvdevEvent, error) {
	return g.EvdevEventsN(ctx, from, bus, 1, quiet)
}

// EvdevEventsN collects at least n evdev events of bus (empty: any), then until quiet (see
// CollectN).
func (g *Guest) EvdevEventsN(ctx context.Context, from int, bus string, n int, quiet time.Duration) ([]EvdevEvent, error) {
	obs, err := g.collect(ctx, from, func(o Observation) bool {
		e, ok := o.Evdev()
		return ok && (bus == "" || e.Bus == bus)
	}, KindEvdev, n, quiet)
	out := make([]EvdevEvent, 0, len(obs))
	for _, o := range obs {
		if e, ok := o.Evdev(); ok {
			out = append(out, e)
		}
	}
	return out, err
}

// Stop ends the guest: it kills QEMU (or destroys and undefines the libvirt domain), stops
// following its output and removes the working directory if Start created it. It is idempotent.
func (g *Guest) Stop() error {
	g.stopOnce.Do(func() {
		var errs []error
		if g.proc != nil {
			errs = append(errs, g.proc.Stop())
		}
		if g.domain != "" {
			errs = append(errs, g.stopDomain())
		}
		if g.stopTail != nil {
			g.stopTailOnce()
			<-g.tailDone
		}
		g.cleanupDir()
		g.stopErr = errors.Join(errs...)
	})
	return g.stopErr
}
