package vm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/vm/qmptest"
)

func dialFake(t *testing.T, s *qmptest.Server, opts Options) Target {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tg, err := Dial(ctx, Address{QMP: s.Addr}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// expectedKeys is how the fake server records a sequence.
func expectedKeys(seq hid.Sequence) string {
	var out []string
	for _, e := range seq {
		out = append(out, e.String())
	}
	return strings.Join(out, " ")
}

func mustHotkey(t *testing.T, spec string) hid.Hotkey {
	t.Helper()
	h, err := hid.ParseHotkey(spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSendPlans(t *testing.T) {
	tests := []struct {
		spec  string
		calls int
	}{
		{"ctrl-scroll", 6},
		{"lshift+rshift+d", 8},
		{"rctrl+ralt+space", 8},
		{"0x11/1", 8},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s := qmptest.New(t)
			tg := dialFake(t, s, Options{})
			h := mustHotkey(t, tt.spec)
			seq := hid.Plan(h, hid.Timing{Settle: time.Millisecond, Step: time.Millisecond})
			res, err := tg.Send(context.Background(), seq, SendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(s.Keys(), " "), expectedKeys(seq); got != want {
				t.Errorf("QEMU got %q, want %q", got, want)
			}
			if !res.Complete || res.Sent != seq.String() || res.Released != "" || len(res.Stuck) != 0 {
				t.Errorf("result = %+v", res)
			}
			if len(res.Calls) != tt.calls {
				t.Errorf("%d calls, want %d (one per paced event)", len(res.Calls), tt.calls)
			}
			if res.Status == nil || res.Status.State != "running" {
				t.Errorf("status = %+v", res.Status)
			}
		})
	}
}

func TestSendBurstBatches(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	seq := hid.Plan(mustHotkey(t, "lshift+rshift+lctrl+rctrl+lalt+ralt+d"), hid.BurstTiming)
	res, err := tg.Send(context.Background(), seq, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(s.Keys(), " "), expectedKeys(seq); got != want {
		t.Errorf("QEMU got %q, want %q", got, want)
	}
	if len(res.Calls) < 2 {
		t.Errorf("%d calls for %d events: batches must be split (≤ 16 scancodes, ≤ 8 events)", len(res.Calls), len(seq))
	}
	for _, c := range res.Calls {
		if n := len(strings.Fields(c.Events)); n > hid.MaxEventsPerCall {
			t.Errorf("a call with %d events", n)
		}
	}
}

func TestSendRefusesPausedGuest(t *testing.T) {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) { s.Status = "paused" })
	tg := dialFake(t, s, Options{})
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.BurstTiming)
	res, err := tg.Send(context.Background(), seq, SendOptions{})
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "cont") {
		t.Fatalf("err = %v, want ErrNotRunning with the fix", err)
	}
	if len(res.Calls) != 0 || len(s.Keys()) != 0 {
		t.Errorf("sent something: %+v", res.Calls)
	}
	// --force sends; QEMU refuses input-send-event when paused: nothing was pressed, so
	// nothing needs releasing.
	res, err = tg.Send(context.Background(), seq, SendOptions{Force: true})
	if err == nil || !strings.Contains(err.Error(), "VM not running") {
		t.Fatalf("forced: err = %v", err)
	}
	if res.Sent != "" || res.Released != "" || len(res.Calls) != 1 {
		t.Errorf("forced: %+v", res)
	}
}

// The connection breaks midway: the keys pressed so far are released over a new connection.
func TestSendReleasesAfterBrokenConnection(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	// Commands before the sequence: query-status, 3×qom-list, query-cpus-fast, qom-get = 6.
	// Break on the 3rd key call (the 9th command): +ctrl_r +scroll_lock went through.
	s.Update(func(s *qmptest.Server) { s.BreakAfter = 9 })
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.Timing{Settle: time.Millisecond, Step: time.Millisecond})
	res, err := tg.Send(context.Background(), seq, SendOptions{})
	if err == nil {
		t.Fatal("no error")
	}
	if !res.Reconnected || s.Connections() != 2 {
		t.Errorf("reconnected=%v connections=%d", res.Reconnected, s.Connections())
	}
	// The broken call (-scroll_lock) may have been delivered; releasing it again is harmless,
	// and every key still down is released last-pressed first.
	if got, want := strings.Join(s.Keys(), " "), "+ctrl_r +scroll_lock -scroll_lock -ctrl_r"; got != want {
		t.Errorf("QEMU got %q, want %q", got, want)
	}
	if res.Released != "-scroll_lock -ctrl_r" || len(res.Stuck) != 0 || res.Complete {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(err.Error(), "released") {
		t.Errorf("err = %v: should say what it released", err)
	}
}

// QEMU stops answering midway: the call times out, and the release (on a fresh deadline)
// works once QEMU answers again.
func TestSendReleasesAfterTimeout(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	var mu sync.Mutex
	n := 0
	s.Update(func(s *qmptest.Server) {
		s.Hang = func(cmd string) bool {
			mu.Lock()
			defer mu.Unlock()
			if cmd == "input-send-event" {
				n++
				return n == 2
			}
			return false
		}
	})
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.Timing{Settle: time.Millisecond, Step: time.Millisecond})
	res, err := tg.Send(context.Background(), seq, SendOptions{CallTimeout: 200 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	if got, want := strings.Join(s.Keys(), " "), "+ctrl_r -scroll_lock -ctrl_r"; got != want { // +scroll_lock hung
		t.Errorf("QEMU got %q, want %q", got, want)
	}
	if res.Reconnected || res.Released != "-scroll_lock -ctrl_r" {
		t.Errorf("result = %+v", res)
	}
}

// Ctrl-C midway: the release still goes out.
func TestSendReleasesOnCancel(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.Timing{Settle: 2 * time.Second, Step: time.Millisecond})
	go func() {
		for len(s.Keys()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	res, err := tg.Send(ctx, seq, SendOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	if got, want := strings.Join(s.Keys(), " "), "+ctrl_r -ctrl_r"; got != want {
		t.Errorf("QEMU got %q, want %q", got, want)
	}
	if res.Released != "-ctrl_r" {
		t.Errorf("released %q", res.Released)
	}
}

// When the release cannot get through either, the result names the stuck keys.
func TestSendReportsStuckKeys(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{Timeout: 300 * time.Millisecond})
	seq := hid.Plan(mustHotkey(t, "lshift+rshift+d"), hid.Timing{Settle: time.Millisecond, Step: time.Millisecond})
	var mu sync.Mutex
	n := 0
	s.Update(func(s *qmptest.Server) {
		s.Hang = func(cmd string) bool {
			mu.Lock()
			defer mu.Unlock()
			if cmd == "input-send-event" {
				n++
				return n >= 3
			}
			return false
		}
	})
	res, err := tg.Send(context.Background(), seq, SendOptions{CallTimeout: 100 * time.Millisecond, ReleaseTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "may be stuck") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(res.Stuck, " "); got != "d shift_r shift" {
		t.Errorf("stuck = %q, want d shift_r shift", got)
	}
	if !strings.Contains(err.Error(), `--sequence "-d -shift_r -shift"`) {
		t.Errorf("err = %v: should give the command that releases them", err)
	}
}

func TestSendChord(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	res, err := tg.SendChord(context.Background(), hid.CrashOnCtrlScroll(), 100, SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cmds := s.Commands()
	last := cmds[len(cmds)-1]
	if last.Execute != "send-key" || !strings.Contains(string(last.Arguments), `"hold-time":100`) {
		t.Errorf("last command = %s %s", last.Execute, last.Arguments)
	}
	if len(res.Warnings) == 0 || res.Method != "chord" {
		t.Errorf("result = %+v", res)
	}
}

func TestStatusKeyboardsAndPanic(t *testing.T) {
	tests := []struct {
		name     string
		devices  []qmptest.Device
		hvcrash  bool
		receiver string
		panics   string
		warn     string
	}{
		{"ps2 only", nil, false, "ps2", "", ""},
		{"ps2+usb", []qmptest.Device{dev("/machine/peripheral-anon", "device[0]", "usb-kbd")}, false, "usb", "", "kbdhid must be armed"},
		{"ps2+virtio+pvpanic", []qmptest.Device{dev("/machine/peripheral", "vk", "virtio-keyboard-pci"), dev("/machine/peripheral-anon", "device[1]", "pvpanic")}, true, "virtio", "pvpanic,hyperv", "panic device"},
		{"usb+virtio", []qmptest.Device{dev("/machine/peripheral", "kbd", "usb-kbd"), dev("/machine/peripheral", "vk", "virtio-keyboard-pci")}, false, "virtio", "", "2 USB/virtio keyboards"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := qmptest.New(t)
			s.Update(func(s *qmptest.Server) {
				s.Devices = append(s.Devices, tt.devices...)
				s.HVCrash = tt.hvcrash
			})
			tg := dialFake(t, s, Options{})
			st, err := tg.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Receiver == nil || st.Receiver.Bus != tt.receiver {
				t.Errorf("receiver = %+v, want %s", st.Receiver, tt.receiver)
			}
			if st.Keyboards[0].Bus != "ps2" || st.Keyboards[0].Driver != hid.I8042prt {
				t.Errorf("keyboards = %+v", st.Keyboards)
			}
			if got := strings.Join(st.PanicDevices, ","); got != tt.panics {
				t.Errorf("panic devices = %q, want %q", got, tt.panics)
			}
			w := strings.Join(st.Warnings, "\n")
			if (tt.warn == "") != (w == "") || !strings.Contains(w, tt.warn) {
				t.Errorf("warnings = %q, want %q", w, tt.warn)
			}
			if st.PanicAction != "unknown" {
				t.Errorf("panic action %q", st.PanicAction)
			}
		})
	}
}

func TestPreparePanic(t *testing.T) {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) {
		s.Devices = append(s.Devices, qmptest.Device{Container: "/machine/peripheral-anon", Name: "device[0]", Type: "pvpanic"})
	})
	tg := dialFake(t, s, Options{})
	rep, err := tg.PreparePanic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Action != "none" || !rep.Changed || strings.Join(rep.Devices, ",") != "pvpanic" {
		t.Errorf("report = %+v", rep)
	}
	var found bool
	for _, c := range s.Commands() {
		if c.Execute == "set-action" && string(c.Arguments) == `{"panic":"none"}` {
			found = true
		}
	}
	if !found {
		t.Error("no set-action panic=none sent")
	}
	st, _ := tg.Status(context.Background())
	if st.PanicAction != "none" {
		t.Errorf("status panic action after PreparePanic = %q", st.PanicAction)
	}

	old := qmptest.New(t)
	old.Update(func(s *qmptest.Server) {
		s.NoSetAction = true
		s.Devices = append(s.Devices, qmptest.Device{Container: "/machine/peripheral-anon", Name: "device[0]", Type: "pvpanic"})
	})
	rep, err = dialFake(t, old, Options{}).PreparePanic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Action != "unknown" || rep.Changed || len(rep.Warnings) != 1 {
		t.Errorf("old QEMU report = %+v", rep)
	}
}

func TestInjectNMI(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	if err := tg.InjectNMI(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Executed(); got[len(got)-1] != "inject-nmi" {
		t.Errorf("commands = %v", got)
	}
	s.Handle("inject-nmi", func(json.RawMessage) (any, *qmptest.Error) {
		return nil, &qmptest.Error{Class: "GenericError", Desc: "boom"}
	})
	if err := tg.InjectNMI(context.Background()); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
}

func TestEvents(t *testing.T) {
	s := qmptest.New(t)
	tg := dialFake(t, s, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := tg.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Event("GUEST_PANICKED", map[string]any{"action": "run", "info": map[string]any{"type": "hyper-v", "arg1": 0xE2, "arg2": 1, "arg3": 2, "arg4": 3, "arg5": uint64(0xFFFFF80000000000)}})
	s.Event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-reset"})
	s.Event("BLOCK_IO_ERROR", map[string]any{"device": "vda"})
	want := []string{
		`"event":"GUEST_PANICKED","action":"run","panic":{"type":"hyper-v","bugcheck":"0xe2","params":["0x1","0x2","0x3","0xfffff80000000000"]}}`,
		`"event":"SHUTDOWN","reason":"guest-reset","guest":true}`,
		`"event":"BLOCK_IO_ERROR","data":{"device":"vda"}}`,
	}
	for i, w := range want {
		select {
		case e := <-ch:
			b, _ := json.Marshal(e)
			if !strings.HasSuffix(string(b), w) || e.Source != QMP || time.Since(e.Time) > time.Minute {
				t.Errorf("event %d = %s, want …%s", i, b, w)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d missing", i)
		}
	}
	cancel()
	for range ch {
	}
}

func TestParseQMPAddress(t *testing.T) {
	tests := []struct{ in, network, addr string }{
		{"unix:/run/q.sock", "unix", "/run/q.sock"},
		{"unix:/run/q.sock,server=on,wait=off", "unix", "/run/q.sock"},
		{"/run/q.sock", "unix", "/run/q.sock"},
		{"./q.sock", "unix", "./q.sock"},
		{"tcp:127.0.0.1:4444", "tcp", "127.0.0.1:4444"},
		{"tcp::4444", "tcp", "localhost:4444"},
		{"tcp:[::1]:4444", "tcp", "[::1]:4444"},
		{"tcp:host", "", ""},
		{"tcp:host:port", "", ""},
		{"unix:", "", ""},
		{"http://x", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		n, a, err := ParseQMPAddress(tt.in)
		if (err != nil) != (tt.network == "") || n != tt.network || a != tt.addr {
			t.Errorf("ParseQMPAddress(%q) = %q, %q, %v; want %q, %q", tt.in, n, a, err, tt.network, tt.addr)
		}
	}
}

func TestAddressValidate(t *testing.T) {
	tests := []struct {
		a       Address
		wantErr string
	}{
		{Address{QMP: "unix:/x"}, ""},
		{Address{LibvirtURI: "qemu:///system", Domain: "w"}, ""},
		{Address{}, "no target"},
		{Address{QMP: "unix:/x", LibvirtURI: "qemu:///system"}, "not both"},
		{Address{LibvirtURI: "qemu:///system"}, "domain"},
		{Address{QMP: "unix:/x", Domain: "w"}, "domain"},
	}
	for _, tt := range tests {
		err := tt.a.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: err = %v, want %q", tt.a, err, tt.wantErr)
		}
	}
}

func TestDialFailures(t *testing.T) {
	ctx := context.Background()
	if _, err := DialQMP(ctx, "unix:/nonexistent/q.sock", Options{Timeout: time.Second}); err == nil || !strings.Contains(err.Error(), "is QEMU running") {
		t.Errorf("err = %v", err)
	}
	if _, err := DialLibvirt(ctx, "::", "d", Options{}); err == nil {
		t.Error("bad URI accepted")
	}
}

func dev(container, name, typ string) qmptest.Device {
	return qmptest.Device{Container: container, Name: name, Type: typ}
}

func TestResumeAndSetActions(t *testing.T) {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) { s.Status = "paused" })
	tg := dialFake(t, s, Options{})
	if err := tg.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := tg.Status(context.Background())
	if !st.Running {
		t.Errorf("after Resume: %+v", st)
	}
	if err := tg.SetActions(context.Background(), Actions{Reboot: "shutdown", Shutdown: "pause"}); err != nil {
		t.Fatal(err)
	}
	cmds := s.Commands()
	last := cmds[len(cmds)-1]
	if last.Execute != "set-action" || string(last.Arguments) != `{"reboot":"shutdown","shutdown":"pause"}` {
		t.Errorf("last command %s %s", last.Execute, last.Arguments)
	}
	n := len(s.Commands())
	if err := tg.SetActions(context.Background(), Actions{}); err != nil || len(s.Commands()) != n {
		t.Errorf("empty actions sent something: %v", err)
	}
}

func TestAgent(t *testing.T) {
	s := qmptest.New(t)
	ag := qmptest.NewAgent(t)
	tg := dialFake(t, s, Options{Timeout: 300 * time.Millisecond})
	if _, err := tg.Agent(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "virtserialport") {
		t.Errorf("no address: %v", err)
	}
	a, err := tg.Agent(context.Background(), ag.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid, err := a.Exec(context.Background(), `notmyfault64.exe /crash`)
	if err != nil || pid != 4243 {
		t.Fatalf("exec: %d %v", pid, err)
	}
	if got := strings.Join(ag.Execs(), "|"); got != "cmd.exe /c notmyfault64.exe /crash" {
		t.Errorf("guest-exec = %q", got)
	}
	if _, err := a.Exec(context.Background(), " "); err == nil {
		t.Error("empty command accepted")
	}
	// A crashed guest's agent stops answering: Ping fails within the deadline.
	ag.Update(func(s *qmptest.Server) { s.Hang = func(string) bool { return true } })
	if err := a.Ping(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping of a silent agent: %v", err)
	}

	linux := qmptest.NewAgent(t)
	linux.Update(func(s *qmptest.Server) { s.OSID = "debian" })
	a2, err := tg.Agent(context.Background(), linux.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if _, err := a2.Exec(context.Background(), "echo c > /proc/sysrq-trigger"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(linux.Execs(), "|"); got != "/bin/sh -c echo c > /proc/sysrq-trigger" {
		t.Errorf("guest-exec = %q", got)
	}
}

func TestAgentHandshakeSilent(t *testing.T) {
	s := qmptest.New(t)
	ag := qmptest.NewAgent(t)
	ag.Update(func(s *qmptest.Server) { s.Hang = func(string) bool { return true } })
	tg := dialFake(t, s, Options{Timeout: 200 * time.Millisecond})
	if _, err := tg.Agent(context.Background(), ag.Addr); err == nil || !strings.Contains(err.Error(), "guest agent running") {
		t.Errorf("err = %v", err)
	}
}
