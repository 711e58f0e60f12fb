package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp/raw"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/vm/internal/qmpconn"
)

// qmpTarget is a guest behind a QEMU monitor socket.
type qmpTarget struct {
	addr            string
	network, socket string
	opts            Options

	mu        sync.Mutex
	conn      *qmpconn.Conn
	panicNone bool
}

// DialQMP connects to a QEMU monitor socket: "unix:/path" (or a bare path) or "tcp:host:port".
// QEMU serves one QMP client per socket at a time: while another client (another crashkey, or
// a management tool) holds it, the dial waits and then times out.
func DialQMP(ctx context.Context, addr string, opts Options) (Target, error) {
	network, socket, err := ParseQMPAddress(addr)
	if err != nil {
		return nil, err
	}
	t := &qmpTarget{addr: addr, network: network, socket: socket, opts: opts.withDefaults()}
	c, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	t.conn = c
	return t, nil
}

func (t *qmpTarget) dial(ctx context.Context) (*qmpconn.Conn, error) {
	c, err := qmpconn.Dial(ctx, t.network, t.socket, qmpconn.Options{Timeout: t.opts.Timeout})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w (is QEMU running with -qmp %s,server=on,wait=off, and no other client connected?)", t.addr, err, t.addr)
	}
	return c, nil
}

func (t *qmpTarget) Backend() Backend { return QMP }
func (t *qmpTarget) Describe() string { return "qmp " + t.addr }

func (t *qmpTarget) current() *qmpconn.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn
}

// execute runs a command, bounded by ctx and Options.Timeout.
func (t *qmpTarget) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	return t.current().Execute(ctx, command, args)
}

// run implements monitor.
func (t *qmpTarget) run(ctx context.Context, cmd []byte) error {
	_, err := t.current().Run(ctx, cmd)
	return err
}

func (t *qmpTarget) callTimeout() time.Duration { return t.opts.Timeout }

// reconnect implements monitor.
func (t *qmpTarget) reconnect(ctx context.Context) error {
	t.mu.Lock()
	old := t.conn
	t.mu.Unlock()
	old.Close()
	c, err := t.dial(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.conn = c
	t.mu.Unlock()
	return nil
}

func (t *qmpTarget) Close() error {
	return t.current().Close()
}

// qomEntry is one qom-list entry.
type qomEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// QOM containers that hold devices: -device with an id, -device without one, and the
// machine's built-in devices.
var qomContainers = []string{"/machine/peripheral", "/machine/peripheral-anon", "/machine/unattached"}

func (t *qmpTarget) Status(ctx context.Context) (Status, error) {
	st := Status{Backend: QMP, Keyboards: []Keyboard{}, PanicDevices: []string{}}
	b, err := t.execute(ctx, "query-status", nil)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	var qs struct {
		Status  string `json:"status"`
		Running bool   `json:"running"`
	}
	if err := json.Unmarshal(b, &qs); err != nil {
		return st, fmt.Errorf("status: query-status reply: %w", err)
	}
	st.State, st.Running = qs.Status, qs.Running
	for _, c := range qomContainers {
		b, err := t.execute(ctx, "qom-list", map[string]string{"path": c})
		if err != nil {
			if refused(err) {
				continue // a machine without this container
			}
			return st, fmt.Errorf("status: listing devices: %w", err)
		}
		var list []qomEntry
		if err := json.Unmarshal(b, &list); err != nil {
			return st, fmt.Errorf("status: qom-list reply: %w", err)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		for _, e := range list {
			typ, ok := strings.CutPrefix(e.Type, "child<")
			if !ok {
				continue
			}
			typ = strings.TrimSuffix(typ, ">")
			path := c + "/" + e.Name
			if bus := keyboardBus(typ); bus != "" {
				st.Keyboards = append(st.Keyboards, Keyboard{Bus: bus, Device: typ, Path: path, Driver: driverFor(bus)})
			}
			switch typ {
			case "pvpanic", "pvpanic-isa":
				st.PanicDevices = append(st.PanicDevices, "pvpanic")
			case "pvpanic-pci":
				st.PanicDevices = append(st.PanicDevices, "pvpanic-pci")
			}
		}
	}
	sort.SliceStable(st.Keyboards, func(i, j int) bool {
		return st.Keyboards[i].Bus == "ps2" && st.Keyboards[j].Bus != "ps2"
	})
	if t.hvCrash(ctx) {
		st.PanicDevices = append(st.PanicDevices, "hyperv")
	}
	var warn []string
	st.Receiver, warn = chooseReceiver(st.Keyboards)
	st.Warnings = append(st.Warnings, warn...)
	t.mu.Lock()
	none := t.panicNone
	t.mu.Unlock()
	if none {
		st.PanicAction = "none"
	} else {
		st.PanicAction = "unknown"
		if len(st.PanicDevices) > 0 {
			st.Warnings = append(st.Warnings, fmt.Sprintf("the guest has a panic device (%s) and QEMU cannot report its panic action: unless QEMU runs with -action panic=none, a Windows crash stops the guest before its dump is written (crashkey send and nmi set panic=none first)", strings.Join(st.PanicDevices, ", ")))
		}
	}
	if !st.Running {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the guest is not running (%s): injected keys are lost; resume it with QMP cont", st.State))
	}
	return st, nil
}

// keyboardBus maps a QEMU device type to its keyboard bus, or "".
func keyboardBus(typ string) string {
	switch typ {
	case "i8042", "i8042-mmio":
		return "ps2"
	case "usb-kbd":
		return "usb"
	case "virtio-keyboard-pci", "virtio-keyboard-device", "virtio-keyboard-ccw":
		return "virtio"
	}
	return ""
}

// hvCrash reports whether the first CPU has the hv-crash enlightenment (which turns a Windows
// bug check into GUEST_PANICKED with the code).
func (t *qmpTarget) hvCrash(ctx context.Context) bool {
	b, err := t.execute(ctx, "query-cpus-fast", nil)
	if err != nil {
		return false
	}
	var cpus []struct {
		QOMPath string `json:"qom-path"`
	}
	if json.Unmarshal(b, &cpus) != nil || len(cpus) == 0 {
		return false
	}
	b, err = t.execute(ctx, "qom-get", map[string]string{"path": cpus[0].QOMPath, "property": "hv-crash"})
	if err != nil {
		return false
	}
	var on bool
	return json.Unmarshal(b, &on) == nil && on
}

// checkRunning fetches the status for Send and refuses a guest that is not running.
func checkRunning(ctx context.Context, t Target, opts SendOptions, res *SendResult) error {
	st, err := t.Status(ctx)
	if err != nil {
		return fmt.Errorf("send: checking the guest first: %w", err)
	}
	res.Status = &st
	res.Warnings = append(res.Warnings, st.Warnings...)
	if !st.Running && !opts.Force {
		fix := "resume it first (QMP cont)"
		if t.Backend() == Libvirt {
			fix = "resume it first (virsh resume)"
		}
		return fmt.Errorf("send: %w (state %q): a paused guest drops injected keys; %s, or pass --force", ErrNotRunning, st.State, fix)
	}
	return nil
}

func (t *qmpTarget) Send(ctx context.Context, seq hid.Sequence, opts SendOptions) (*SendResult, error) {
	res := &SendResult{Method: "events", Calls: []Call{}}
	if err := checkRunning(ctx, t, opts, res); err != nil {
		return res, err
	}
	return res, sendSequence(ctx, t, seq, opts, res)
}

func (t *qmpTarget) SendChord(ctx context.Context, h hid.Hotkey, holdMs int, opts SendOptions) (*SendResult, error) {
	res := &SendResult{Method: "chord", Calls: []Call{}}
	if err := checkRunning(ctx, t, opts, res); err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, hid.ChordWarning(h))
	cmd := hid.SendKeyCommand(h, holdMs)
	call := Call{Command: string(cmd), Events: hid.ChordSequence(h).String()}
	err := t.run(ctx, cmd)
	if err != nil {
		call.Error = err.Error()
		res.Calls = append(res.Calls, call)
		return res, fmt.Errorf("send-key: %w", err)
	}
	res.Calls = append(res.Calls, call)
	res.Sent, res.Complete = call.Events, true
	return res, nil
}

func (t *qmpTarget) InjectNMI(ctx context.Context) error {
	// go-qemu's typed API over crashkey's connection: inject-nmi has had the same form since
	// QEMU 0.14.
	if err := raw.NewMonitor(t.current().Monitor(ctx)).InjectNmi(); err != nil {
		return fmt.Errorf("inject-nmi: %w", err)
	}
	return nil
}

func (t *qmpTarget) Events(ctx context.Context) (<-chan Event, error) {
	c := t.current()
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		for {
			select {
			case e, ok := <-c.Events():
				if !ok {
					return
				}
				ev, err := DecodeQMPEvent(e.Name, e.Data, e.Time)
				if err != nil {
					ev = Event{Time: e.Time, Source: QMP, Kind: e.Name, Data: e.Data}
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (t *qmpTarget) PreparePanic(ctx context.Context) (PanicReport, error) {
	rep := PanicReport{Backend: QMP, Devices: []string{}}
	st, err := t.Status(ctx)
	if err != nil {
		return rep, fmt.Errorf("panic action: %w", err)
	}
	rep.Devices = st.PanicDevices
	_, err = t.execute(ctx, "set-action", map[string]string{"panic": "none"})
	var qerr *QMPError
	switch {
	case err == nil:
		t.mu.Lock()
		t.panicNone = true
		t.mu.Unlock()
		rep.Action, rep.Changed = "none", true
		rep.Effect = "a guest that announces a crash keeps running, so Windows writes its dump and reboots (GUEST_PANICKED arrives with action \"run\")"
	case errors.As(err, &qerr) && qerr.Class == "CommandNotFound":
		rep.Action = "unknown"
		rep.Effect = "QEMU is older than 6.0 and has no set-action"
		if len(st.PanicDevices) > 0 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("this QEMU cannot change its panic action and the guest has %s: the guest is stopped when Windows announces the crash, before the dump is written; remove the panic device or upgrade QEMU", strings.Join(st.PanicDevices, ", ")))
		}
	default:
		return rep, fmt.Errorf("panic action: set-action: %w", err)
	}
	return rep, nil
}
