package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt"

	"github.com/crashkey/crashkey/vm/internal/qmpconn"
)

// agentRunner runs one guest agent command and returns its "return" member.
type agentRunner interface {
	run(ctx context.Context, command string, args any) (json.RawMessage, error)
	// reconnect opens a fresh channel to the agent (after a reboot); a no-op where the
	// channel is not ours (libvirt).
	reconnect(ctx context.Context) error
	// reboot asks the agent to restart the guest, without waiting for it.
	reboot(ctx context.Context) error
	close() error
}

// agent implements Agent over a runner.
type agent struct {
	r    agentRunner
	once sync.Once
	win  bool
	oerr error
}

func (a *agent) Ping(ctx context.Context) error {
	if _, err := a.r.run(ctx, "guest-ping", nil); err != nil {
		return fmt.Errorf("guest agent: ping: %w", classify("guest-ping", err))
	}
	return nil
}

// windows asks the agent once which OS the guest runs (guest-get-osinfo); agents too old to
// say are taken for Windows, crashkey's target.
func (a *agent) windows(ctx context.Context) bool {
	a.once.Do(func() {
		a.win = true
		ret, err := a.r.run(ctx, "guest-get-osinfo", nil)
		if err != nil {
			a.oerr = err
			return
		}
		var info struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(ret, &info) == nil && info.ID != "" {
			a.win = info.ID == "mswindows"
		}
	})
	return a.win
}

func (a *agent) Exec(ctx context.Context, command string) (int, error) {
	if strings.TrimSpace(command) == "" {
		return 0, errors.New("guest agent: exec: empty command line")
	}
	path, args := "/bin/sh", []string{"-c", command}
	if a.windows(ctx) {
		path, args = "cmd.exe", []string{"/c", command}
	}
	ret, err := a.r.run(ctx, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": false})
	if err != nil {
		return 0, fmt.Errorf("guest agent: exec %q: %w", command, classify("guest-exec", err))
	}
	var r struct {
		PID *int `json:"pid"`
	}
	if err := json.Unmarshal(ret, &r); err != nil || r.PID == nil {
		return 0, fmt.Errorf("guest agent: exec %q: reply %s has no pid", command, ret)
	}
	return *r.PID, nil
}

func (a *agent) Close() error { return a.r.close() }

// qgaRunner talks to an agent socket with crashkey's QMP client in agent mode.
type qgaRunner struct {
	mu               sync.Mutex
	c                *qmpconn.Conn
	network, address string
	opts             qmpconn.Options
}

func (q *qgaRunner) conn() *qmpconn.Conn {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.c
}

func (q *qgaRunner) run(ctx context.Context, command string, args any) (json.RawMessage, error) {
	return q.conn().Execute(ctx, command, args)
}

// reconnect closes the connection first: the agent's chardev serves one client at a time.
func (q *qgaRunner) reconnect(ctx context.Context) error {
	q.conn().Close()
	c, err := qmpconn.Dial(ctx, q.network, q.address, q.opts)
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.c = c
	q.mu.Unlock()
	return nil
}

// reboot sends guest-shutdown mode reboot, which the agent does not answer when it works: a
// short deadline without a reply is success.
func (q *qgaRunner) reboot(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	_, err := q.run(sctx, "guest-shutdown", map[string]any{"mode": "reboot"})
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && !isClosed(err) {
		return classify("guest-shutdown", err)
	}
	return nil
}

func (q *qgaRunner) close() error { return q.conn().Close() }

func (t *qmpTarget) Agent(ctx context.Context, addr string) (Agent, error) {
	if addr == "" {
		return nil, errors.New("guest agent: no agent socket: give its address (unix:PATH), as QEMU was started with -chardev socket,path=PATH,server=on,wait=off,id=qga0 -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0")
	}
	network, a, err := ParseQMPAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("guest agent: %w", err)
	}
	o := qmpconn.Options{Timeout: t.opts.Timeout, Agent: true}
	c, err := qmpconn.Dial(ctx, network, a, o)
	if err != nil {
		return nil, fmt.Errorf("guest agent at %s: %w: %w", addr, ErrNoAgent, err)
	}
	return &agent{r: traceAgent(&qgaRunner{c: c, network: network, address: a, opts: o}, "qga "+addr)}, nil
}

func (t *qmpTarget) SetActions(ctx context.Context, a Actions) error {
	if a == (Actions{}) {
		return nil
	}
	if _, err := t.execute(ctx, "set-action", a); err != nil {
		return fmt.Errorf("set-action: %w", err)
	}
	if a.Panic == "none" {
		t.mu.Lock()
		t.panicNone = true
		t.mu.Unlock()
	}
	return nil
}

func (t *qmpTarget) Resume(ctx context.Context) error {
	if _, err := t.execute(ctx, "cont", nil); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}

// libvirtAgentRunner runs agent commands through libvirt.
type libvirtAgentRunner struct{ t *libvirtTarget }

func (r libvirtAgentRunner) run(ctx context.Context, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var reply []string
	timeout := agentTimeout(ctx, r.t.opts.Timeout)
	err = r.t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		reply, err = api.QEMUDomainAgentCommand(dom, string(b), timeout, 0)
		return err
	})
	if err != nil {
		return nil, domainError{err, r.t.uri, r.t.domain}
	}
	if len(reply) == 0 {
		return json.RawMessage("{}"), nil
	}
	var m struct {
		Return json.RawMessage `json:"return"`
		Error  *QMPError       `json:"error"`
	}
	if err := json.Unmarshal([]byte(reply[0]), &m); err != nil {
		return nil, fmt.Errorf("agent reply: %w", err)
	}
	if m.Error != nil {
		return nil, m.Error
	}
	return m.Return, nil
}

// agentTimeout is the seconds libvirtd waits for the agent's reply: the call's timeout, or
// less when ctx ends sooner, so that libvirtd gives up (and answers) before crashkey's own
// deadline drops the connection; at least 1.
func agentTimeout(ctx context.Context, d time.Duration) int32 {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = left
		}
	}
	if s := int32(d / time.Second); s > 1 {
		return s
	}
	return 1
}

// reconnect makes a new libvirt connection when a deadline dropped the last one (an agent
// that did not answer while the guest rebooted); the agent's channel itself is libvirtd's.
func (r libvirtAgentRunner) reconnect(ctx context.Context) error {
	if !r.t.dropped.Load() {
		return nil
	}
	return r.t.reconnect(ctx)
}

// reboot has libvirt restart the guest through its agent (virDomainReboot with
// VIR_DOMAIN_REBOOT_GUEST_AGENT), which knows that guest-shutdown gets no reply.
func (r libvirtAgentRunner) reboot(ctx context.Context) error {
	err := r.t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		return api.DomainReboot(dom, libvirt.DomainRebootGuestAgent)
	})
	if err != nil {
		err = domainError{err, r.t.uri, r.t.domain}
	}
	return classify("reboot", err)
}
func (r libvirtAgentRunner) close() error { return nil }

func (t *libvirtTarget) Agent(ctx context.Context, addr string) (Agent, error) {
	if addr != "" {
		return nil, errors.New("guest agent: a libvirt domain's agent is reached through libvirt: give no agent socket")
	}
	return &agent{r: traceAgent(libvirtAgentRunner{t}, "libvirt "+t.uri)}, nil
}

// SetActions sends QMP set-action through libvirt's monitor passthrough (libvirt marks the
// domain tainted).
func (t *libvirtTarget) SetActions(ctx context.Context, a Actions) error {
	if a == (Actions{}) {
		return nil
	}
	b, err := json.Marshal(map[string]any{"execute": "set-action", "arguments": a})
	if err != nil {
		return err
	}
	if err := t.run(ctx, b); err != nil {
		return fmt.Errorf("set-action: %w", err)
	}
	return nil
}

func (t *libvirtTarget) Resume(ctx context.Context) error {
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error { return api.DomainResume(dom) })
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	return nil
}
