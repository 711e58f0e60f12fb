package vm

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitalocean/go-libvirt"

	"github.com/crashkey/crashkey/hid"
)

// libvirtAPI is the part of *libvirt.Libvirt crashkey uses; tests fake it.
type libvirtAPI interface {
	DomainLookupByName(name string) (libvirt.Domain, error)
	DomainGetState(dom libvirt.Domain, flags uint32) (int32, int32, error)
	DomainGetXMLDesc(dom libvirt.Domain, flags libvirt.DomainXMLFlags) (string, error)
	QEMUDomainMonitorCommand(dom libvirt.Domain, cmd string, flags uint32) (string, error)
	DomainSendKey(dom libvirt.Domain, codeset, holdtime uint32, keycodes []uint32, flags uint32) error
	DomainInjectNmi(dom libvirt.Domain, flags uint32) error
	DomainResume(dom libvirt.Domain) error
	DomainReboot(dom libvirt.Domain, flags libvirt.DomainRebootFlagValues) error
	QEMUDomainAgentCommand(dom libvirt.Domain, cmd string, timeout int32, flags uint32) (libvirt.OptString, error)
	LifecycleEvents(ctx context.Context) (<-chan libvirt.DomainEventLifecycleMsg, error)
	SubscribeQEMUEvents(ctx context.Context, dom string) (<-chan libvirt.DomainEvent, error)
	Disconnect() error
}

// libvirtTarget is a guest managed by libvirt.
type libvirtTarget struct {
	uri    string // without a password
	parsed LibvirtURI
	domain string
	opts   Options
	dial   func(ctx context.Context) (libvirtAPI, error)
	rx     *byteCounter // bytes received on the connection

	storage *Storage // OpenStorage's, closed with the target (under mu)

	mu  sync.Mutex
	api libvirtAPI
	dom libvirt.Domain
	// dropped is set when a deadline dropped the connection (call) and cleared by connect.
	dropped atomic.Bool
}

// DialLibvirt connects to libvirt at uri and looks up the domain by name. The URI may be
// local ("qemu:///system", "qemu:///session", "?socket=PATH" for a non-default socket such as
// a modular daemon's /run/libvirt/virtqemud-sock) or remote: "qemu+ssh://USER@HOST[:PORT]/system"
// (keyfile=, known_hosts=, no_verify=, socket=), "qemu+tls://HOST/system" (pkipath=,
// no_verify=), "qemu+tcp://HOST/system"; see ParseLibvirtURI. A URI crashkey cannot use is a
// *URIError; a failure to connect is a *ConnectError naming the step that failed and the fix.
func DialLibvirt(ctx context.Context, uri, domain string, opts Options) (Target, error) {
	u, err := ParseLibvirtURI(uri)
	if err != nil {
		return nil, err
	}
	if domain == "" {
		return nil, errors.New("libvirt: no domain name (--domain NAME)")
	}
	t := &libvirtTarget{uri: RedactURI(u.String()), parsed: u, domain: domain, opts: opts.withDefaults(), rx: &byteCounter{}}
	t.dial = func(ctx context.Context) (libvirtAPI, error) {
		ctx, cancel := withDefaultDeadline(ctx, t.opts.Timeout)
		defer cancel()
		var l *libvirt.Libvirt
		err := withDeadline(ctx, t.opts.Timeout, func() error {
			var err error
			l, err = dialLibvirt(ctx, u, t.rx)
			return err
		}, func() {})
		if err != nil {
			var ce *ConnectError
			if !errors.As(err, &ce) {
				err = &ConnectError{URI: u.String(), Step: StepLibvirtAuth, Err: err, Fix: "the daemon did not answer in time: is it overloaded or hung? (--rpc-timeout)"}
			}
			return nil, err
		}
		return traceLibvirt(l), nil
	}
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func newLibvirtTarget(ctx context.Context, uri, domain string, opts Options, dial func(ctx context.Context) (libvirtAPI, error)) (*libvirtTarget, error) {
	t := &libvirtTarget{uri: uri, domain: domain, opts: opts.withDefaults(), dial: dial}
	if err := t.connect(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *libvirtTarget) connect(ctx context.Context) error {
	api, err := t.dial(ctx)
	if err != nil {
		var ce *ConnectError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("connect to %s: %w (is libvirtd running, and may this user use it?)", t.uri, err)
	}
	var dom libvirt.Domain
	err = withDeadline(ctx, t.opts.Timeout, func() error {
		var err error
		dom, err = api.DomainLookupByName(t.domain)
		return err
	}, func() { go api.Disconnect() })
	if err != nil {
		go api.Disconnect()
		if libvirt.IsNotFound(err) {
			return &ConnectError{URI: t.uri, Step: StepDomain, Err: fmt.Errorf("no domain %q", t.domain), Fix: fmt.Sprintf("check the name: virsh -c '%s' list --all", t.uri)}
		}
		return &ConnectError{URI: t.uri, Step: StepDomain, Err: fmt.Errorf("looking up %q: %w", t.domain, err)}
	}
	t.mu.Lock()
	t.api, t.dom = api, dom
	t.dropped.Store(false)
	t.mu.Unlock()
	return nil
}

// withDeadline runs f and returns its error, or gives up when ctx ends or timeout passes: then it calls abort (which should unblock f) and returns the context's
// error. go-libvirt's calls take no context; this is how every one of them gets a deadline.
func withDeadline(ctx context.Context, timeout time.Duration, f func() error, abort func()) error {
	ctx, cancel := withDefaultDeadline(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		abort()
		return fmt.Errorf("no answer from libvirt: %w", ctx.Err())
	}
}

// withDefaultDeadline bounds ctx by d: the earlier of ctx's own deadline and d from now.
func withDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

func (t *libvirtTarget) current() (libvirtAPI, libvirt.Domain) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.api, t.dom
}

// call runs f against the current connection with a deadline; a deadline that passes drops
// the connection (the only way to unblock go-libvirt), and reconnect makes a new one. An
// error libvirtd answered becomes a refusal.
func (t *libvirtTarget) call(ctx context.Context, f func(api libvirtAPI, dom libvirt.Domain) error) error {
	api, dom := t.current()
	err := withDeadline(ctx, t.opts.Timeout, func() error { return f(api, dom) }, func() {
		t.dropped.Store(true)
		go api.Disconnect()
	})
	var lerr libvirt.Error
	if errors.As(err, &lerr) {
		return refusal{err}
	}
	return err
}

func (t *libvirtTarget) Backend() Backend { return Libvirt }
func (t *libvirtTarget) Describe() string {
	return fmt.Sprintf("libvirt %s domain %s", t.uri, t.domain)
}

// run implements monitor: the QMP command goes through libvirt's monitor passthrough.
func (t *libvirtTarget) run(ctx context.Context, cmd []byte) error {
	var reply string
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		reply, err = api.QEMUDomainMonitorCommand(dom, string(cmd), 0)
		return err
	})
	if err != nil {
		return err
	}
	var r struct {
		Error *QMPError `json:"error"`
	}
	if json.Unmarshal([]byte(reply), &r) == nil && r.Error != nil {
		return r.Error
	}
	return nil
}

func (t *libvirtTarget) callTimeout() time.Duration { return t.opts.Timeout }

func (t *libvirtTarget) reconnect(ctx context.Context) error {
	api, _ := t.current()
	go api.Disconnect()
	return t.connect(ctx)
}

func (t *libvirtTarget) Close() error {
	t.mu.Lock()
	st := t.storage
	t.mu.Unlock()
	if st != nil {
		st.Close()
	}
	api, _ := t.current()
	return withDeadline(context.Background(), t.opts.Timeout, api.Disconnect, func() {})
}

// domainXML is the part of a libvirt domain definition crashkey reads.
type domainXML struct {
	Name    string `xml:"name"`
	OnCrash string `xml:"on_crash"`
	Devices struct {
		Inputs []struct {
			Type  string `xml:"type,attr"`
			Bus   string `xml:"bus,attr"`
			Alias struct {
				Name string `xml:"name,attr"`
			} `xml:"alias"`
		} `xml:"input"`
		Panics []struct {
			Model string `xml:"model,attr"`
		} `xml:"panic"`
	} `xml:"devices"`
}

// maxDomainXML bounds the domain XML crashkey parses.
const maxDomainXML = 8 << 20

// ParseDomainXML reads the keyboards, panic devices and on_crash action from a libvirt domain
// definition. It returns exactly one of a result or an error and never panics.
func ParseDomainXML(doc []byte) (keyboards []Keyboard, panics []string, onCrash string, err error) {
	if len(doc) > maxDomainXML {
		return nil, nil, "", fmt.Errorf("domain xml: %d bytes, more than %d", len(doc), maxDomainXML)
	}
	var d domainXML
	if err := xml.Unmarshal(doc, &d); err != nil {
		return nil, nil, "", fmt.Errorf("domain xml: %w", err)
	}
	keyboards, panics = []Keyboard{}, []string{}
	for _, in := range d.Devices.Inputs {
		if in.Type != "keyboard" {
			continue
		}
		bus := in.Bus
		switch bus {
		case "ps2", "usb", "virtio":
		case "":
			bus = "ps2"
		default:
			continue // xen, parallels: not QEMU keyboards
		}
		keyboards = append(keyboards, Keyboard{Bus: bus, Device: fmt.Sprintf("<input type='keyboard' bus='%s'/>", bus), Path: in.Alias.Name, Driver: driverFor(bus)})
	}
	for _, p := range d.Devices.Panics {
		m := p.Model
		if m == "" {
			m = "isa"
		}
		panics = append(panics, m)
	}
	onCrash = strings.TrimSpace(d.OnCrash)
	if onCrash == "" {
		onCrash = "destroy"
	}
	return keyboards, panics, onCrash, nil
}

var libvirtStates = []string{"nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"}

var libvirtReasons = map[int32][]string{
	1: {"unknown", "booted", "migrated", "restored", "from snapshot", "unpaused", "migration canceled", "save canceled", "wakeup", "crashed", "post-copy"},
	3: {"unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from snapshot", "shutting down", "snapshot", "crashed", "starting up", "post-copy", "post-copy failed", "api error"},
	4: {"unknown", "user"},
	5: {"unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot", "daemon"},
	6: {"unknown", "panicked"},
}

func nameOf(names []string, i int32) string {
	if i >= 0 && int(i) < len(names) {
		return names[i]
	}
	return fmt.Sprint(i)
}

func (t *libvirtTarget) xml(ctx context.Context) ([]Keyboard, []string, string, error) {
	var doc string
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		doc, err = api.DomainGetXMLDesc(dom, 0)
		return err
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading the domain XML: %w", err)
	}
	return ParseDomainXML([]byte(doc))
}

func (t *libvirtTarget) Status(ctx context.Context) (Status, error) {
	st := Status{Backend: Libvirt, Keyboards: []Keyboard{}, PanicDevices: []string{}}
	var state, reason int32
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		state, reason, err = api.DomainGetState(dom, 0)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.State = nameOf(libvirtStates, state)
	st.Reason = nameOf(libvirtReasons[state], reason)
	st.Running = state == int32(libvirt.DomainRunning)
	kbs, panics, onCrash, err := t.xml(ctx)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.Keyboards, st.PanicDevices, st.PanicAction = kbs, panics, onCrash
	var warn []string
	st.Receiver, warn = chooseReceiver(kbs)
	st.Warnings = append(st.Warnings, warn...)
	if _, w := onCrashEffect(panics, onCrash, t.domain); w != "" {
		st.Warnings = append(st.Warnings, w)
	}
	if !st.Running {
		st.Warnings = append(st.Warnings, fmt.Sprintf("the domain is not running (%s, %s): injected keys are lost; resume it with virsh resume %s", st.State, st.Reason, t.domain))
	}
	return st, nil
}

// onCrashEffect says what a crash announced through a panic device does under on_crash, and a
// warning when that keeps Windows from writing its dump.
func onCrashEffect(panics []string, onCrash, domain string) (effect, warning string) {
	if len(panics) == 0 {
		return "the domain has no panic device: libvirt does not see the crash and Windows writes its dump undisturbed (on_crash does not apply)", ""
	}
	dev := strings.Join(panics, ", ")
	pre := fmt.Sprintf("when Windows announces the crash through the panic device (%s), QEMU pauses the guest before the dump is written and libvirt applies on_crash=%s: ", dev, onCrash)
	fix := fmt.Sprintf("set <on_crash>preserve</on_crash> and resume the crashed guest (virsh resume %s), or remove the <panic> device", domain)
	switch onCrash {
	case "preserve":
		return pre + "the guest stays paused (state crashed)", fmt.Sprintf("after the crash the guest stays paused and writes no dump until it is resumed: virsh resume %s", domain)
	case "preserve-running":
		return "when Windows announces the crash, the guest keeps running and writes its dump (on_crash=preserve-running)", ""
	case "destroy":
		return pre + "the domain is destroyed", "on_crash=destroy destroys the guest before Windows writes its dump: " + fix
	case "restart", "rename-restart":
		return pre + "the guest is restarted", "on_crash=" + onCrash + " restarts the guest before Windows writes its dump: " + fix
	case "coredump-destroy", "coredump-restart":
		return pre + "libvirt writes a host core dump, then " + strings.TrimPrefix(onCrash, "coredump-") + "s the guest", "on_crash=" + onCrash + " stops the guest before Windows writes its dump: " + fix
	}
	return pre + "unknown action", "unknown on_crash action " + onCrash + ": " + fix
}

func (t *libvirtTarget) Send(ctx context.Context, seq hid.Sequence, opts SendOptions) (*SendResult, error) {
	res := &SendResult{Method: "events", Calls: []Call{}}
	if err := checkRunning(ctx, t, opts, res); err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, "libvirt marks the domain tainted (custom-monitor) when crashkey sends input-send-event through the QEMU monitor passthrough")
	return res, sendSequence(ctx, t, seq, opts, res)
}

func (t *libvirtTarget) SendChord(ctx context.Context, h hid.Hotkey, holdMs int, opts SendOptions) (*SendResult, error) {
	res := &SendResult{Method: "chord", Calls: []Call{}}
	if err := checkRunning(ctx, t, opts, res); err != nil {
		return res, err
	}
	res.Warnings = append(res.Warnings, hid.ChordWarning(h))
	chord := hid.ChordSequence(h)
	var codes []uint32
	var names []string
	for _, e := range chord {
		if e.Down {
			codes = append(codes, uint32(e.Key.Linux))
			names = append(names, e.Key.LinuxName)
		}
	}
	if len(codes) > int(libvirt.DomainSendKeyMaxKeys) {
		return res, fmt.Errorf("send-key: %d keys, libvirt takes at most %d", len(codes), libvirt.DomainSendKeyMaxKeys)
	}
	call := Call{Command: fmt.Sprintf("DomainSendKey codeset=linux holdtime=%d %s", holdMs, strings.Join(names, " ")), Events: chord.String()}
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		return api.DomainSendKey(dom, uint32(libvirt.KeycodeSetLinux), uint32(holdMs), codes, 0)
	})
	if err != nil {
		call.Error = err.Error()
		res.Calls = append(res.Calls, call)
		return res, fmt.Errorf("send-key: %w", err)
	}
	res.Calls = append(res.Calls, call)
	res.Sent, res.Complete = call.Events, true
	return res, nil
}

func (t *libvirtTarget) InjectNMI(ctx context.Context) error {
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error { return api.DomainInjectNmi(dom, 0) })
	if err != nil {
		return fmt.Errorf("inject-nmi: %w", err)
	}
	return nil
}

var lifecycleEvents = []string{"defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed"}

var lifecycleDetails = [][]string{
	{"added", "updated", "renamed", "from snapshot"},
	{"removed", "renamed"},
	{"booted", "migrated", "restored", "from snapshot", "wakeup"},
	{"paused", "migrated", "ioerror", "watchdog", "restored", "from snapshot", "api error", "postcopy", "postcopy failed"},
	{"unpaused", "migrated", "from snapshot", "postcopy", "postcopy failed"},
	{"shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from snapshot"},
	{"finished", "guest", "host"},
	{"memory", "disk"},
	{"panicked", "crashloaded"},
}

// LifecycleEvent types a libvirt lifecycle event (VIR_DOMAIN_EVENT_*).
func LifecycleEvent(event, detail int32, t time.Time) Event {
	e := Event{Time: t, Source: Libvirt, Kind: EventLifecycle, Lifecycle: nameOf(lifecycleEvents, event)}
	if event >= 0 && int(event) < len(lifecycleDetails) {
		e.Detail = nameOf(lifecycleDetails[event], detail)
	} else {
		e.Detail = fmt.Sprint(detail)
	}
	return e
}

// Events merges libvirt's lifecycle events (filtered to the domain: go-libvirt subscribes for
// every domain) with the QEMU monitor events libvirt relays (virConnectDomainQemuMonitorEvent
// Register), which carry GUEST_PANICKED's hyper-v bug check code. go-libvirt decodes a relayed
// event only when it has data: STOP, RESUME and other events without data are dropped by
// go-libvirt (its DomainEvent has no optional-string decoding for "details"); the lifecycle
// events ("suspended paused", "resumed unpaused") report those.
func (t *libvirtTarget) Events(ctx context.Context) (<-chan Event, error) {
	var life <-chan libvirt.DomainEventLifecycleMsg
	var qemu <-chan libvirt.DomainEvent
	err := t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		if life, err = api.LifecycleEvents(ctx); err != nil {
			return fmt.Errorf("lifecycle events: %w", err)
		}
		if qemu, err = api.SubscribeQEMUEvents(ctx, t.domain); err != nil {
			return fmt.Errorf("qemu events: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	out := make(chan Event, 64)
	go func() {
		defer close(out)
		for life != nil || qemu != nil {
			var ev Event
			select {
			case m, ok := <-life:
				if !ok {
					life = nil
					continue
				}
				if m.Dom.Name != t.domain { // go-libvirt subscribes for every domain
					continue
				}
				ev = LifecycleEvent(m.Event, m.Detail, time.Now().UTC())
			case m, ok := <-qemu:
				if !ok {
					qemu = nil
					continue
				}
				if m.Domain.Name != "" && m.Domain.Name != t.domain {
					continue
				}
				ts := time.Unix(int64(m.Seconds), int64(m.Microseconds)*1000).UTC()
				var err error
				ev, err = DecodeQMPEvent(m.Event, m.Details, ts)
				if err != nil {
					ev = Event{Time: ts, Kind: m.Event}
				}
				ev.Source = Libvirt
			case <-ctx.Done():
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (t *libvirtTarget) PreparePanic(ctx context.Context) (PanicReport, error) {
	rep := PanicReport{Backend: Libvirt, Devices: []string{}}
	_, panics, onCrash, err := t.xml(ctx)
	if err != nil {
		return rep, fmt.Errorf("panic action: %w", err)
	}
	rep.Devices, rep.Action = panics, onCrash
	var w string
	rep.Effect, w = onCrashEffect(panics, onCrash, t.domain)
	if w != "" {
		rep.Warnings = append(rep.Warnings, w)
	}
	return rep, nil
}
