package qmpconn

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-qemu/qmp/raw"

	"github.com/crashkey/crashkey/vm/qmptest"
)

func dial(t *testing.T, s *qmptest.Server, opts Options) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "unix", s.Path, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHandshakeAndExecute(t *testing.T) {
	s := qmptest.New(t)
	c := dial(t, s, Options{})
	if got := c.Greeting.Version.QEMU; got.Major != 7 || got.Minor != 2 || got.Micro != 22 {
		t.Errorf("greeting version = %+v, want 7.2.22", got)
	}
	ret, err := c.Execute(context.Background(), "query-status", nil)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Status string }
	if err := json.Unmarshal(ret, &st); err != nil || st.Status != "running" {
		t.Errorf("query-status = %s (%v), want running", ret, err)
	}
	if got := s.Executed(); strings.Join(got, ",") != "query-status" {
		t.Errorf("server saw %v", got)
	}
}

// An event between qmp_capabilities and its reply shifts every reply of go-qemu's
// SocketMonitor by one; with ids, each call still gets its own reply and the events arrive.
func TestEventsDuringHandshake(t *testing.T) {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) { s.HandshakeEvents = 3 })
	c := dial(t, s, Options{})
	for i, cmd := range []string{"query-status", "query-cpus-fast", "query-status"} {
		ret, err := c.Execute(context.Background(), cmd, nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		isList := strings.HasPrefix(string(ret), "[")
		if isList != (cmd == "query-cpus-fast") {
			t.Fatalf("call %d (%s) got the reply %s: replies are shifted", i, cmd, ret)
		}
	}
	for i := 0; i < 3; i++ {
		select {
		case e := <-c.Events():
			if e.Name != "RTC_CHANGE" || e.Time.IsZero() {
				t.Errorf("event %d = %+v", i, e)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d never arrived", i)
		}
	}
}

// go-qemu dies on replies over 64 KiB (bufio.Scanner's default).
func TestLargeReply(t *testing.T) {
	s := qmptest.New(t)
	big := strings.Repeat("x", 300<<10)
	s.Handle("query-qmp-schema", func(json.RawMessage) (any, *qmptest.Error) {
		return []map[string]string{{"name": big}}, nil
	})
	c := dial(t, s, Options{})
	ret, err := c.Execute(context.Background(), "query-qmp-schema", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ret) < 300<<10 {
		t.Errorf("reply of %d bytes, want > 300 KiB", len(ret))
	}
	if _, err := c.Execute(context.Background(), "query-status", nil); err != nil {
		t.Errorf("connection unusable after a large reply: %v", err)
	}
}

func TestMaxLine(t *testing.T) {
	s := qmptest.New(t)
	s.Handle("query-qmp-schema", func(json.RawMessage) (any, *qmptest.Error) {
		return strings.Repeat("y", 200<<10), nil
	})
	c := dial(t, s, Options{MaxLine: 100 << 10})
	_, err := c.Execute(context.Background(), "query-qmp-schema", nil)
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want a closed connection because the line is too long", err)
	}
}

func TestServerStopsAnswering(t *testing.T) {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) { s.Hang = func(cmd string) bool { return cmd == "query-status" } })
	c := dial(t, s, Options{Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := c.Execute(context.Background(), "query-status", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	// The connection survives; the late reply (none here) would be discarded.
	if _, err := c.Execute(context.Background(), "query-cpus-fast", nil); err != nil {
		t.Errorf("after a timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.Execute(ctx, "query-status", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
}

func TestSilentServerHandshake(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(3 * time.Second) // never greets
		}
	}()
	_, err = Dial(context.Background(), "unix", filepath.Join(dir, "s"), Options{Timeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "greeting") {
		t.Fatalf("err = %v, want a greeting timeout", err)
	}
}

func TestBrokenConnection(t *testing.T) {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) { s.BreakAfter = 2 })
	c := dial(t, s, Options{})
	if _, err := c.Execute(context.Background(), "query-status", nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.Execute(context.Background(), "query-status", nil)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	select {
	case <-c.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed")
	}
	if _, ok := <-c.Events(); ok {
		t.Error("events channel still open")
	}
	if _, err := c.Execute(context.Background(), "query-status", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call on a closed connection: %v", err)
	}
}

func TestErrorReply(t *testing.T) {
	s := qmptest.New(t)
	c := dial(t, s, Options{})
	_, err := c.Execute(context.Background(), "no-such-command", nil)
	var qerr *Error
	if !errors.As(err, &qerr) || qerr.Class != "CommandNotFound" {
		t.Fatalf("err = %#v, want a CommandNotFound reply", err)
	}
}

func TestRunAndGoQEMURaw(t *testing.T) {
	s := qmptest.New(t)
	c := dial(t, s, Options{})
	line, err := c.Run(context.Background(), []byte(`{"execute":"query-status","id":"theirs"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(line), `"return"`) || !strings.Contains(string(line), `crashkey-`) {
		t.Errorf("Run reply = %s", line)
	}
	if _, err := c.Run(context.Background(), []byte(`{"arguments":{}}`)); err == nil {
		t.Error("Run without execute: no error")
	}
	// go-qemu's typed API over this connection.
	m := raw.NewMonitor(c.Monitor(context.Background()))
	if err := m.InjectNmi(); err != nil {
		t.Fatalf("raw InjectNmi: %v", err)
	}
	err = m.InputSendEvent(nil, nil, []raw.InputEvent{raw.InputEventKey{Key: raw.KeyValueQcode(raw.QKeyCodeCtrlR), Down: true}})
	if err != nil {
		t.Fatalf("raw InputSendEvent: %v", err)
	}
	if got := strings.Join(s.Keys(), " "); got != "+ctrl_r" {
		t.Errorf("keys = %q", got)
	}
	s.Update(func(s *qmptest.Server) { s.Status = "paused" })
	if err := m.InputSendEvent(nil, nil, []raw.InputEvent{raw.InputEventKey{Key: raw.KeyValueQcode(raw.QKeyCodeCtrlR), Down: false}}); err == nil || !strings.Contains(err.Error(), "VM not running") {
		t.Errorf("paused: %v", err)
	}
}

func TestEventBufferDropsOldest(t *testing.T) {
	s := qmptest.New(t)
	c := dial(t, s, Options{EventBuffer: 2})
	for i := 0; i < 5; i++ {
		s.Event("RESET", map[string]any{"n": i})
	}
	// A call after the events proves they were all read (replies are never blocked).
	if _, err := c.Execute(context.Background(), "query-status", nil); err != nil {
		t.Fatal(err)
	}
	if c.Dropped() != 3 {
		t.Errorf("dropped %d, want 3", c.Dropped())
	}
	e := <-c.Events()
	if !strings.Contains(string(e.Data), `"n":3`) {
		t.Errorf("oldest kept event = %s, want n=3", e.Data)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, line string
		want       string // greeting, event, return, error
		wantErr    bool
	}{
		{"greeting", `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}`, "greeting", false},
		{"event", `{"timestamp": {"seconds": 1795251645, "microseconds": 869182}, "event": "SHUTDOWN", "data": {"guest": false}}`, "event", false},
		{"return", `{"return": {}, "id": "crashkey-1"}`, "return", false},
		{"error", `{"id": 7, "error": {"class": "GenericError", "desc": "VM not running"}}`, "error", false},
		{"return null", `{"return": null}`, "return", false},
		{"empty", ``, "", true},
		{"array", `[1]`, "", true},
		{"junk", `{"foo": 1}`, "", true},
		{"event without name", `{"event": ""}`, "", true},
		{"truncated", `{"return": {`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			got := ""
			switch {
			case m.Greeting != nil:
				got = "greeting"
			case m.Event != nil:
				got = "event"
			case m.Err != nil:
				got = "error"
			case m.Return != nil:
				got = "return"
			}
			if got != tt.want {
				t.Errorf("kind = %s, want %s", got, tt.want)
			}
		})
	}
	m, _ := Decode([]byte(`{"timestamp": {"seconds": 1795251645, "microseconds": 869182}, "event": "STOP"}`))
	if want := time.Unix(1795251645, 869182000).UTC(); !m.Event.Time.Equal(want) {
		t.Errorf("time = %v, want %v", m.Event.Time, want)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}`,
		`{"timestamp": {"seconds": 1795251645, "microseconds": 869182}, "event": "GUEST_PANICKED", "data": {"action": "run", "info": {"type": "hyper-v", "arg1": 226, "arg2": 0, "arg3": 0, "arg4": 0, "arg5": 0}}}`,
		`{"return": {"status": "running", "singlestep": false, "running": true}, "id": "crashkey-3"}`,
		`{"id": 7, "error": {"class": "GenericError", "desc": "VM not running"}}`,
		`{"timestamp": {"seconds": -1, "microseconds": -1}, "event": "X"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		n := 0
		for _, set := range []bool{m.Greeting != nil, m.Event != nil, m.Err != nil, m.Return != nil} {
			if set {
				n++
			}
		}
		if err != nil && n != 0 {
			t.Fatalf("error %v with a result %+v", err, m)
		}
		if err == nil && n != 1 {
			t.Fatalf("no error and %d results", n)
		}
		if m.Event != nil && m.Event.Name == "" {
			t.Fatal("event without a name")
		}
	})
}

// Watch gives every watcher of an event name its own copy, beside the Events channel; a
// stopped watcher gets nothing more.
func TestWatch(t *testing.T) {
	s := qmptest.New(t)
	c := dial(t, s, Options{})
	a, stopA := c.Watch("DUMP_COMPLETED")
	b, stopB := c.Watch("DUMP_COMPLETED")
	defer stopB()
	s.Event("RESET", nil)
	s.Event("DUMP_COMPLETED", map[string]any{"result": map[string]any{"status": "completed"}})
	for name, ch := range map[string]<-chan Event{"a": a, "b": b} {
		select {
		case e := <-ch:
			if e.Name != "DUMP_COMPLETED" {
				t.Errorf("watcher %s got %s", name, e.Name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watcher %s got nothing", name)
		}
	}
	for _, want := range []string{"RESET", "DUMP_COMPLETED"} {
		if e := <-c.Events(); e.Name != want {
			t.Errorf("Events: %s, want %s", e.Name, want)
		}
	}
	stopA()
	s.Event("DUMP_COMPLETED", nil)
	<-b
	select {
	case e := <-a:
		t.Errorf("stopped watcher got %s", e.Name)
	default:
	}
}
