package vm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"

	"github.com/crashkey/crashkey/hid"
)

// fakeLibvirt stands in for *libvirt.Libvirt: go-libvirt's own mock never answers
// DomainSendKey, DomainInjectNmi or lifecycle events (libraries.md §2.4).
type fakeLibvirt struct {
	mu         sync.Mutex
	state      int32
	reason     int32
	xml        string
	monitor    []string // QMP commands passed through
	monitorErr func(n int, cmd string) (reply string, err error)
	sendKey    []uint32
	holdtime   uint32
	nmi        int
	hang       bool
	life       chan libvirt.DomainEventLifecycleMsg
	qemu       chan libvirt.DomainEvent
	disconnect int
	agent      []string
	agentDown  bool
	reboots    int
}

const testDomainXML = `<domain type='qemu' id='3'>
  <name>win11</name>
  <on_crash>preserve</on_crash>
  <devices>
    <input type='tablet' bus='usb'><alias name='input0'/></input>
    <input type='keyboard' bus='usb'><alias name='input1'/></input>
    <input type='mouse' bus='ps2'><alias name='input2'/></input>
    <input type='keyboard' bus='ps2'><alias name='input3'/></input>
    <panic model='isa'/>
  </devices>
</domain>`

func (f *fakeLibvirt) block() {
	f.mu.Lock()
	h := f.hang
	f.mu.Unlock()
	if h {
		time.Sleep(time.Hour)
	}
}

func (f *fakeLibvirt) DomainLookupByName(name string) (libvirt.Domain, error) {
	if name != "win11" {
		return libvirt.Domain{}, libvirt.Error{Code: uint32(libvirt.ErrNoDomain), Message: "Domain not found"}
	}
	return libvirt.Domain{Name: name, ID: 3}, nil
}

func (f *fakeLibvirt) DomainGetState(libvirt.Domain, uint32) (int32, int32, error) {
	f.block()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.reason, nil
}

func (f *fakeLibvirt) DomainGetXMLDesc(libvirt.Domain, libvirt.DomainXMLFlags) (string, error) {
	f.block()
	return f.xml, nil
}

func (f *fakeLibvirt) QEMUDomainMonitorCommand(_ libvirt.Domain, cmd string, _ uint32) (string, error) {
	f.block()
	f.mu.Lock()
	n := len(f.monitor)
	f.monitor = append(f.monitor, cmd)
	hook := f.monitorErr
	f.mu.Unlock()
	if hook != nil {
		if reply, err := hook(n, cmd); reply != "" || err != nil {
			return reply, err
		}
	}
	return `{"return":{},"id":"libvirt-42"}`, nil
}

func (f *fakeLibvirt) DomainSendKey(_ libvirt.Domain, codeset, holdtime uint32, keycodes []uint32, _ uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if codeset != uint32(libvirt.KeycodeSetLinux) {
		return errors.New("unexpected codeset")
	}
	f.sendKey, f.holdtime = keycodes, holdtime
	return nil
}

func (f *fakeLibvirt) DomainInjectNmi(libvirt.Domain, uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nmi++
	return nil
}

// DomainReboot through the agent: the agent is silent for a moment, as a rebooting guest's.
func (f *fakeLibvirt) DomainReboot(_ libvirt.Domain, flags libvirt.DomainRebootFlagValues) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if flags != libvirt.DomainRebootGuestAgent {
		return libvirt.Error{Code: 3, Message: "reboot without the agent"}
	}
	f.reboots++
	f.agentDown = true
	go func() {
		time.Sleep(time.Second)
		f.mu.Lock()
		f.agentDown = false
		f.mu.Unlock()
	}()
	return nil
}

func (f *fakeLibvirt) DomainResume(libvirt.Domain) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.reason = 1, 5
	return nil
}

func (f *fakeLibvirt) QEMUDomainAgentCommand(_ libvirt.Domain, cmd string, timeout int32, _ uint32) (libvirt.OptString, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agent = append(f.agent, cmd)
	switch {
	case strings.Contains(cmd, "guest-get-osinfo"):
		return libvirt.OptString{`{"return":{"id":"mswindows","name":"Microsoft Windows"}}`}, nil
	case strings.Contains(cmd, "guest-exec"):
		return libvirt.OptString{`{"return":{"pid":77}}`}, nil
	case strings.Contains(cmd, "guest-ping"):
		if f.agentDown {
			return nil, libvirt.Error{Code: 86, Message: "Guest agent is not responding"}
		}
		return libvirt.OptString{`{"return":{}}`}, nil
	}
	return libvirt.OptString{`{"error":{"class":"CommandNotFound","desc":"nope"}}`}, nil
}

func (f *fakeLibvirt) LifecycleEvents(context.Context) (<-chan libvirt.DomainEventLifecycleMsg, error) {
	return f.life, nil
}

func (f *fakeLibvirt) SubscribeQEMUEvents(context.Context, string) (<-chan libvirt.DomainEvent, error) {
	return f.qemu, nil
}

func (f *fakeLibvirt) Disconnect() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnect++
	return nil
}

func newFakeTarget(t *testing.T, f *fakeLibvirt) (*libvirtTarget, *int) {
	t.Helper()
	dials := 0
	tg, err := newLibvirtTarget(context.Background(), "qemu:///system", "win11", Options{Timeout: 300 * time.Millisecond},
		func(context.Context) (libvirtAPI, error) { dials++; return f, nil })
	if err != nil {
		t.Fatal(err)
	}
	return tg, &dials
}

func TestLibvirtStatus(t *testing.T) {
	f := &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}
	tg, _ := newFakeTarget(t, f)
	st, err := tg.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "running" || st.Reason != "booted" || !st.Running {
		t.Errorf("state = %+v", st)
	}
	if len(st.Keyboards) != 2 || st.Receiver == nil || st.Receiver.Bus != "usb" || st.Receiver.Path != "input1" {
		t.Errorf("keyboards = %+v receiver %+v", st.Keyboards, st.Receiver)
	}
	if strings.Join(st.PanicDevices, ",") != "isa" || st.PanicAction != "preserve" {
		t.Errorf("panic = %v %q", st.PanicDevices, st.PanicAction)
	}
	w := strings.Join(st.Warnings, "\n")
	if !strings.Contains(w, "kbdhid must be armed") || !strings.Contains(w, "virsh resume win11") {
		t.Errorf("warnings = %q", w)
	}
	f.state, f.reason = 3, 1
	st, _ = tg.Status(context.Background())
	if st.Running || st.State != "paused" || st.Reason != "user" {
		t.Errorf("paused state = %+v", st)
	}
	f.state, f.reason = 6, 1
	st, _ = tg.Status(context.Background())
	if st.State != "crashed" || st.Reason != "panicked" {
		t.Errorf("crashed state = %+v", st)
	}
}

func TestLibvirtSendPassthrough(t *testing.T) {
	f := &fakeLibvirt{state: 1, xml: testDomainXML}
	tg, _ := newFakeTarget(t, f)
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.Timing{Settle: time.Millisecond, Step: time.Millisecond})
	res, err := tg.Send(context.Background(), seq, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	batches := hid.QMPBatches(seq)
	if len(f.monitor) != len(batches) {
		t.Fatalf("%d monitor commands, want %d", len(f.monitor), len(batches))
	}
	for i, b := range batches {
		if f.monitor[i] != string(b.Command()) {
			t.Errorf("command %d = %s, want %s", i, f.monitor[i], b.Command())
		}
	}
	if !res.Complete || !strings.Contains(strings.Join(res.Warnings, " "), "tainted") {
		t.Errorf("result = %+v", res)
	}

	f.state = 3
	if _, err := tg.Send(context.Background(), seq, SendOptions{}); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "virsh resume") {
		t.Errorf("paused: %v", err)
	}
}

func TestLibvirtSendReleaseAfterLostConnection(t *testing.T) {
	f := &fakeLibvirt{state: 1, xml: testDomainXML}
	f.monitorErr = func(n int, cmd string) (string, error) {
		switch n {
		case 2:
			return "", errors.New("connection reset by peer") // transport: maybe delivered
		case 3:
			return "", errors.New("not connected") // the release's first try: reconnect
		}
		return "", nil
	}
	tg, dials := newFakeTarget(t, f)
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.Timing{Settle: time.Millisecond, Step: time.Millisecond})
	res, err := tg.Send(context.Background(), seq, SendOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	if !res.Reconnected || *dials != 2 {
		t.Errorf("reconnected=%v dials=%d", res.Reconnected, *dials)
	}
	if res.Released != "-scroll_lock -ctrl_r" || res.Uncertain != "-scroll_lock" {
		t.Errorf("result = %+v", res)
	}
}

func TestLibvirtQMPErrorReply(t *testing.T) {
	f := &fakeLibvirt{state: 1, xml: testDomainXML}
	f.monitorErr = func(n int, cmd string) (string, error) {
		return `{"id":"libvirt-9","error":{"class":"GenericError","desc":"VM not running"}}`, nil
	}
	tg, _ := newFakeTarget(t, f)
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.BurstTiming)
	res, err := tg.Send(context.Background(), seq, SendOptions{})
	var qerr *QMPError
	if !errors.As(err, &qerr) || qerr.Desc != "VM not running" {
		t.Fatalf("err = %v", err)
	}
	if res.Released != "" || res.Uncertain != "" {
		t.Errorf("a refused call needs no release: %+v", res)
	}
}

func TestLibvirtHangTimesOut(t *testing.T) {
	f := &fakeLibvirt{state: 1, xml: testDomainXML}
	tg, _ := newFakeTarget(t, f)
	f.mu.Lock()
	f.hang = true
	f.mu.Unlock()
	start := time.Now()
	_, err := tg.Status(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Error("took too long")
	}
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	d := f.disconnect
	f.mu.Unlock()
	if d == 0 {
		t.Error("a hung call must drop the connection to unblock go-libvirt")
	}
}

func TestLibvirtChordAndNMI(t *testing.T) {
	f := &fakeLibvirt{state: 1, xml: testDomainXML}
	tg, _ := newFakeTarget(t, f)
	res, err := tg.SendChord(context.Background(), hid.CrashOnCtrlScroll(), 100, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.sendKey; len(got) != 3 || got[0] != 97 || got[1] != 70 || got[2] != 70 || f.holdtime != 100 {
		t.Errorf("DomainSendKey keys %v hold %d, want [97 70 70] 100", got, f.holdtime)
	}
	if res.Method != "chord" || len(res.Warnings) == 0 {
		t.Errorf("result %+v", res)
	}
	if err := tg.InjectNMI(context.Background()); err != nil || f.nmi != 1 {
		t.Errorf("nmi: %v, %d", err, f.nmi)
	}
}

func TestLibvirtEvents(t *testing.T) {
	f := &fakeLibvirt{state: 1, xml: testDomainXML,
		life: make(chan libvirt.DomainEventLifecycleMsg, 4), qemu: make(chan libvirt.DomainEvent, 4)}
	tg, _ := newFakeTarget(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := tg.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.life <- libvirt.DomainEventLifecycleMsg{Dom: libvirt.Domain{Name: "other"}, Event: 8, Detail: 0}
	f.life <- libvirt.DomainEventLifecycleMsg{Dom: libvirt.Domain{Name: "win11"}, Event: 8, Detail: 0}
	got := <-ch
	if got.Kind != EventLifecycle || got.Lifecycle != "crashed" || got.Detail != "panicked" || !got.IsCrash() || got.Source != Libvirt {
		t.Errorf("lifecycle event = %+v", got)
	}
	f.qemu <- libvirt.DomainEvent{Domain: libvirt.Domain{Name: "win11"}, Event: "GUEST_PANICKED", Seconds: 1795251645, Microseconds: 5,
		Details: []byte(`{"action":"pause","info":{"type":"hyper-v","arg1":128,"arg2":5526612,"arg3":0,"arg4":0,"arg5":0}}`)}
	got = <-ch
	if got.Kind != EventGuestPanicked || got.Panic == nil || *got.Panic.BugCheck != 0x80 || got.Action != "pause" || got.Time.Unix() != 1795251645 {
		b, _ := json.Marshal(got)
		t.Errorf("qemu event = %s", b)
	}
	close(f.life)
	close(f.qemu)
	if _, ok := <-ch; ok {
		t.Error("channel not closed after both streams ended")
	}
}

func TestLibvirtPreparePanic(t *testing.T) {
	tests := []struct {
		xml, action, warn string
	}{
		{testDomainXML, "preserve", "virsh resume"},
		{`<domain><on_crash>destroy</on_crash><devices><panic model='hyperv'/></devices></domain>`, "destroy", "destroys the guest"},
		{`<domain><devices><panic/></devices></domain>`, "destroy", "destroys the guest"},
		{`<domain><on_crash>restart</on_crash><devices><panic model='pvpanic'/></devices></domain>`, "restart", "restarts"},
		{`<domain><on_crash>coredump-destroy</on_crash><devices><panic model='isa'/></devices></domain>`, "coredump-destroy", "stops the guest"},
		{`<domain><on_crash>destroy</on_crash><devices/></domain>`, "destroy", ""},
	}
	for _, tt := range tests {
		f := &fakeLibvirt{state: 1, xml: tt.xml}
		tg, _ := newFakeTarget(t, f)
		rep, err := tg.PreparePanic(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(rep.Warnings, " ")
		if rep.Action != tt.action || rep.Changed || (tt.warn == "") != (w == "") || !strings.Contains(w, tt.warn) {
			t.Errorf("%s: report = %+v", tt.xml, rep)
		}
	}
}

func TestLibvirtUnknownDomain(t *testing.T) {
	f := &fakeLibvirt{}
	_, err := newLibvirtTarget(context.Background(), "qemu:///system", "nope", Options{},
		func(context.Context) (libvirtAPI, error) { return f, nil })
	if err == nil || !strings.Contains(err.Error(), `no domain "nope"`) {
		t.Errorf("err = %v", err)
	}
}

func TestParseDomainXML(t *testing.T) {
	kbs, panics, onCrash, err := ParseDomainXML([]byte(testDomainXML))
	if err != nil || len(kbs) != 2 || kbs[0].Bus != "usb" || kbs[1].Bus != "ps2" || len(panics) != 1 || onCrash != "preserve" {
		t.Errorf("got %+v %v %q %v", kbs, panics, onCrash, err)
	}
	for _, bad := range []string{"", "<domain>", "not xml", "<a></b>"} {
		if _, _, _, err := ParseDomainXML([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseDomainXML(f *testing.F) {
	f.Add([]byte(testDomainXML))
	f.Add([]byte(`<domain><on_crash>destroy</on_crash><devices><panic model='hyperv'/><input type='keyboard'/></devices></domain>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kbs, panics, onCrash, err := ParseDomainXML(b)
		if err != nil {
			if kbs != nil || panics != nil || onCrash != "" {
				t.Fatal("error with a result")
			}
			return
		}
		if kbs == nil || panics == nil || onCrash == "" {
			t.Fatal("no error and no result")
		}
		for _, k := range kbs {
			if k.Bus != "ps2" && k.Bus != "usb" && k.Bus != "virtio" {
				t.Fatalf("bus %q", k.Bus)
			}
		}
	})
}

func TestLibvirtResumeActionsAgent(t *testing.T) {
	f := &fakeLibvirt{state: 3, reason: 1, xml: testDomainXML}
	tg, _ := newFakeTarget(t, f)
	if err := tg.Resume(context.Background()); err != nil || f.state != 1 {
		t.Fatalf("resume: %v state %d", err, f.state)
	}
	if err := tg.SetActions(context.Background(), Actions{Reboot: "shutdown"}); err != nil {
		t.Fatal(err)
	}
	if last := f.monitor[len(f.monitor)-1]; last != `{"arguments":{"reboot":"shutdown"},"execute":"set-action"}` {
		t.Errorf("passthrough = %s", last)
	}
	if _, err := tg.Agent(context.Background(), "unix:/x"); err == nil {
		t.Error("agent socket accepted for libvirt")
	}
	a, err := tg.Agent(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid, err := a.Exec(context.Background(), "notmyfault64.exe /crash")
	if err != nil || pid != 77 {
		t.Fatalf("exec: %d %v", pid, err)
	}
	if got := f.agent[len(f.agent)-1]; !strings.Contains(got, `"path":"cmd.exe"`) || !strings.Contains(got, `"arg":["/c","notmyfault64.exe /crash"]`) {
		t.Errorf("guest-exec = %s", got)
	}
	f.agentDown = true
	if err := a.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "not responding") {
		t.Errorf("ping of a silent agent: %v", err)
	}
}

// fakeConn is one connection to fakeLibvirt: after Disconnect its calls fail, as go-libvirt's
// do, until a new one is dialled. Its agent hangs (no reply, as an agent busy shutting the
// guest down) until hangUntil, then says it is not connected until upAt.
type fakeConn struct {
	*fakeLibvirt
	closed          atomic.Bool
	offAfterReboot  bool // the domain shuts off when the guest reboots (<on_reboot>destroy)
	hangUntil, upAt time.Time
	mu              sync.Mutex
	timeouts        []int32
}

func (c *fakeConn) Disconnect() error {
	c.closed.Store(true)
	return c.fakeLibvirt.Disconnect()
}

func (c *fakeConn) QEMUDomainAgentCommand(dom libvirt.Domain, cmd string, timeout int32, flags uint32) (libvirt.OptString, error) {
	if c.closed.Load() {
		return nil, errors.New("libvirt: connection closed")
	}
	c.mu.Lock()
	c.timeouts = append(c.timeouts, timeout)
	c.mu.Unlock()
	c.fakeLibvirt.mu.Lock()
	off := c.offAfterReboot && c.fakeLibvirt.reboots > 0
	c.fakeLibvirt.mu.Unlock()
	if off {
		return nil, libvirt.Error{Code: uint32(libvirt.ErrOperationInvalid), Message: "Requested operation is not valid: domain is not running"}
	}
	if strings.Contains(cmd, "guest-ping") {
		if d := time.Until(c.hangUntil); d > 0 {
			time.Sleep(d)
			return nil, libvirt.Error{Code: 86, Message: "Guest agent is not responding: Guest agent not available for now"}
		}
		if time.Now().Before(c.upAt) {
			return nil, libvirt.Error{Code: 86, Message: "Guest agent is not responding: QEMU guest agent is not connected"}
		}
	}
	return c.fakeLibvirt.QEMUDomainAgentCommand(dom, cmd, timeout, flags)
}

// connAgent is the agent of a libvirt target (10 s call timeout) whose every connection dial
// makes.
func connAgent(t *testing.T, dial func() *fakeConn) Agent {
	t.Helper()
	tg, err := newLibvirtTarget(context.Background(), "qemu:///system", "win11", Options{Timeout: 10 * time.Second},
		func(context.Context) (libvirtAPI, error) { return dial(), nil })
	if err != nil {
		t.Fatal(err)
	}
	a, err := tg.Agent(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestLibvirtAgentRebootHang: while the guest reboots its agent may not answer at all; the
// ping's deadline then drops the libvirt connection, and the wait goes on over a new one
// until the agent answers again. libvirtd is asked to give up before crashkey's deadline.
func TestLibvirtAgentRebootHang(t *testing.T) {
	f := &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}
	hangUntil := time.Now().Add(3 * time.Second)
	upAt := hangUntil.Add(time.Second)
	var conns []*fakeConn
	a := connAgent(t, func() *fakeConn {
		c := &fakeConn{fakeLibvirt: f, hangUntil: hangUntil, upAt: upAt}
		conns = append(conns, c)
		return c
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Reboot(ctx); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	if f.reboots != 1 {
		t.Errorf("%d reboots", f.reboots)
	}
	if len(conns) < 2 {
		t.Fatalf("%d connections: the dropped one was not replaced", len(conns))
	}
	// The pings run with a 2 s deadline: libvirtd waits at most 1 s for the agent.
	for _, c := range conns {
		for _, to := range c.timeouts {
			if to < 1 || to > 2 {
				t.Errorf("agent command timeout %d s under a 2 s deadline", to)
			}
		}
	}
	if err := a.Ping(context.Background()); err != nil {
		t.Errorf("ping after the reboot: %v", err)
	}
}

func TestAgentTimeout(t *testing.T) {
	bg := context.Background()
	short, cancel := context.WithTimeout(bg, 2500*time.Millisecond)
	defer cancel()
	tiny, cancel2 := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel2()
	for _, tt := range []struct {
		ctx  context.Context
		d    time.Duration
		want int32
	}{
		{bg, 10 * time.Second, 10},
		{bg, 300 * time.Millisecond, 1},
		{short, 10 * time.Second, 2},
		{short, time.Second, 1},
		{tiny, 10 * time.Second, 1},
	} {
		if got := agentTimeout(tt.ctx, tt.d); got != tt.want {
			t.Errorf("agentTimeout(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

// TestLibvirtAgentRebootShutOff: a domain whose reboot destroys it (<on_reboot>destroy) does not
// come back; the wait says so at once instead of waiting out the timeout.
func TestLibvirtAgentRebootShutOff(t *testing.T) {
	f := &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}
	a := connAgent(t, func() *fakeConn { return &fakeConn{fakeLibvirt: f, offAfterReboot: true} })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err := a.Reboot(ctx)
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "<on_reboot>restart</on_reboot>") {
		t.Fatalf("reboot of a domain that shuts off: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the wait went on after the domain stopped", d)
	}
	// A domain that is not running is no missing agent: its own error and fix.
	if err := a.Ping(context.Background()); !errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "virsh -c 'qemu:///system' start 'win11'") {
		t.Errorf("ping of a stopped domain: %v", err)
	}
}

// TestClassifyLibvirt: libvirt's agent errors become the typed errors with the fix that fits.
func TestClassifyLibvirt(t *testing.T) {
	for _, tt := range []struct {
		err         libvirt.Error
		want        error
		fix, notFix string
	}{
		{libvirt.Error{Code: 74, Message: "argument unsupported: QEMU guest agent is not configured"}, ErrNoAgent, "<channel type='unix'>", "service QEMU-GA"},
		{libvirt.Error{Code: 86, Message: "Guest agent is not responding: QEMU guest agent is not connected"}, ErrNoAgent, "service QEMU-GA", "<channel"},
		{libvirt.Error{Code: 1, Message: "internal error: QEMU guest agent is not connected"}, ErrNoAgent, "service QEMU-GA", "<channel"},
		{libvirt.Error{Code: 55, Message: "Requested operation is not valid: domain is not running"}, ErrNotRunning, "virsh start", "agent channel"},
	} {
		err := classify("guest-ping", refusal{tt.err})
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.fix) || strings.Contains(err.Error(), tt.notFix) ||
			!strings.Contains(err.Error(), tt.err.Message) {
			t.Errorf("classify(%d %q) = %v, want %v with %q", tt.err.Code, tt.err.Message, err, tt.want, tt.fix)
		}
	}
	// The fix names the domain when the error says which.
	err := classify("guest-ping", domainError{refusal{libvirt.Error{Code: 74, Message: "argument unsupported: QEMU guest agent is not configured"}}, "qemu+ssh://root@h/system", "win 11"})
	if !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "(virsh -c 'qemu+ssh://root@h/system' edit 'win 11')") {
		t.Errorf("classify of a domain's error = %v", err)
	}
	// Other libvirt errors pass through unchanged.
	other := refusal{libvirt.Error{Code: 55, Message: "Requested operation is not valid: domain is paused"}}
	if err := classify("guest-ping", other); err != error(other) {
		t.Errorf("classify(other) = %v", err)
	}
}
