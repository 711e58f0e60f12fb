// Package qmptest is an in-process fake QEMU monitor: a QMP server on a real unix socket that
// speaks the protocol (greeting, capability negotiation, replies with "id", timestamped events)
// and emulates the small part of QEMU crashkey uses: run state (stop/cont), input-send-event
// (refused while paused, recorded while running), send-key, inject-nmi, set-action, the QOM
// device listing and query-cpus-fast. It can also misbehave as real monitors do: events during
// the handshake, replies larger than 64 KiB, a server that stops answering, a connection that
// breaks after a given number of commands.
//
// It is for tests of crashkey's QMP client and of code built on package vm.
package qmptest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Command is one command the server received.
type Command struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// Handler answers a command: the "return" value, or a QMP error.
type Handler func(args json.RawMessage) (ret any, err *Error)

// Error is a QMP error reply.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// Device is one entry of a QOM listing: the container it lives in ("/machine/peripheral",
// "/machine/peripheral-anon" or "/machine/unattached"), its name there and its QOM type.
type Device struct {
	Container, Name, Type string
}

// Server is a fake QMP server. Configure its exported fields before a client connects; they
// are read under the server's lock, so tests may also change them between connections through
// Update.
type Server struct {
	// Path is the socket path; Addr is "unix:"+Path.
	Path, Addr string

	mu sync.Mutex
	// Status is the run state query-status reports ("running", "paused", …).
	Status string
	// Devices is what qom-list shows.
	Devices []Device
	// HVCrash is the CPU's hv-crash property.
	HVCrash bool
	// HandshakeEvents is how many events the server sends right after qmp_capabilities arrives
	// and before its reply.
	HandshakeEvents int
	// Hang makes the server read but never answer commands it matches.
	Hang func(execute string) bool
	// BreakAfter, when > 0, closes the connection when that many commands (counted from the
	// first connection, qmp_capabilities excluded) have been received, before replying to the
	// last; it fires once.
	BreakAfter int
	// NoSetAction makes set-action fail as on QEMU < 6.0.
	NoSetAction bool
	// OSID is what guest-get-osinfo reports in agent mode ("mswindows", "debian", …).
	OSID string

	// Files are the guest's files in agent mode (guest-file-open/write/close write here).
	Files map[string][]byte
	// Program answers a captured guest-exec in agent mode: the exit code and output of
	// path with args. Without it every program exits 0 with no output. It runs with the
	// server's lock held: it may read and change Files directly.
	Program func(path string, args []string) (exit int, stdout, stderr string)
	// RebootFor is how long the agent stays silent after guest-shutdown (which, as in
	// qemu-ga, gets no reply).
	RebootFor time.Duration
	// Reboots counts the guest-shutdown commands received.
	Reboots int

	agent   bool
	execs   []string // "path arg arg" for each guest-exec
	procs   map[int]map[string]any
	handles map[int64]string
	silent  time.Time

	handlers map[string]Handler
	commands []Command
	keys     []string // "+ctrl_r", "-scroll_lock" as accepted by input-send-event
	received int
	broke    bool
	conns    []net.Conn
	current  net.Conn
	wmu      *sync.Mutex
	ln       net.Listener
	wg       sync.WaitGroup
	closed   bool
}

// New starts a server on a socket in t's temporary directory; it is stopped by t.Cleanup. The
// default state is a running pc guest with the built-in PS/2 keyboard and nothing else.
func New(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "qmptest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := Listen(filepath.Join(dir, "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewAgent starts a fake QEMU guest agent (QGA) socket: no greeting, no capability
// negotiation; it answers guest-sync, guest-ping, guest-get-osinfo, guest-exec (with
// guest-exec-status, output from Program), guest-file-open/write/close (into Files) and
// guest-shutdown (silent for RebootFor, without a reply). Hang and BreakAfter work as for QMP.
func NewAgent(t testing.TB) *Server {
	t.Helper()
	s := New(t)
	s.Update(func(s *Server) { s.agent, s.OSID = true, "mswindows" })
	return s
}

// Execs returns the guest-exec calls received in agent mode, as "path arg …".
func (s *Server) Execs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.execs...)
}

// Listen starts a server on a unix socket at path.
func Listen(path string) (*Server, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmptest: %w", err)
	}
	s := &Server{
		Path: path, Addr: "unix:" + path, Status: "running", ln: ln,
		Devices:  []Device{{"/machine/unattached", "device[11]", "i8042"}},
		handlers: map[string]Handler{},
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Update runs f with the server's lock held, to change its fields safely.
func (s *Server) Update(f func(s *Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// Handle overrides or adds a command.
func (s *Server) Handle(execute string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[execute] = h
}

// Commands returns every command received so far (qmp_capabilities included), in order.
func (s *Server) Commands() []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Command(nil), s.commands...)
}

// Executed returns the names of the commands received, qmp_capabilities excluded.
func (s *Server) Executed() []string {
	var out []string
	for _, c := range s.Commands() {
		if c.Execute != "qmp_capabilities" {
			out = append(out, c.Execute)
		}
	}
	return out
}

// Keys returns the key events input-send-event accepted while running, as "+qcode"/"-qcode"
// (numbers as "+#157").
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// Connections is how many clients have connected so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Event sends an event to the connected client (no-op when none is connected).
func (s *Server) Event(name string, data any) {
	s.mu.Lock()
	c, wmu := s.current, s.wmu
	s.mu.Unlock()
	if c == nil {
		return
	}
	writeEvent(c, wmu, name, data)
}

// Close stops the server and closes every connection.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		// Like QEMU, serve one client at a time.
		s.serve(c)
	}
}

func writeJSON(c net.Conn, wmu *sync.Mutex, v any) {
	b, _ := json.Marshal(v)
	wmu.Lock()
	defer wmu.Unlock()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write(append(b, '\r', '\n'))
}

func writeEvent(c net.Conn, wmu *sync.Mutex, name string, data any) {
	now := time.Now()
	ev := map[string]any{
		"event":     name,
		"timestamp": map[string]int64{"seconds": now.Unix(), "microseconds": int64(now.Nanosecond() / 1000)},
	}
	if data != nil {
		ev["data"] = data
	}
	writeJSON(c, wmu, ev)
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	wmu := &sync.Mutex{}
	s.mu.Lock()
	s.current, s.wmu = c, wmu
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.current == c {
			s.current = nil
		}
		s.mu.Unlock()
	}()
	s.mu.Lock()
	agent := s.agent
	s.mu.Unlock()
	if !agent {
		writeJSON(c, wmu, map[string]any{"QMP": map[string]any{
			"version":      map[string]any{"qemu": map[string]int{"major": 7, "minor": 2, "micro": 22}, "package": "qmptest"},
			"capabilities": []string{"oob"},
		}})
	}
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	negotiated := agent
	for sc.Scan() {
		line := sc.Bytes()
		if agent {
			if len(line) > 0 && line[0] == 0xff { // the client's parser flush
				// qemu-ga answers it as a stray byte, without an id.
				writeJSON(c, wmu, map[string]any{"error": Error{"GenericError", "JSON parse error, stray '\xff'"}})
			}
			for len(line) > 0 && line[0] == 0xff {
				line = line[1:]
			}
		}
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			writeJSON(c, wmu, map[string]any{"error": Error{"GenericError", "JSON parse error"}})
			continue
		}
		s.mu.Lock()
		s.commands = append(s.commands, Command{req.Execute, req.Arguments})
		counted := req.Execute != "qmp_capabilities"
		if counted {
			s.received++
		}
		brk := counted && s.BreakAfter > 0 && !s.broke && s.received >= s.BreakAfter
		if brk {
			s.broke = true
		}
		hang := s.Hang != nil && s.Hang(req.Execute) || time.Now().Before(s.silent)
		if s.agent && req.Execute == "guest-shutdown" && !hang {
			s.Reboots++
			s.silent = time.Now().Add(s.RebootFor)
			hang = true
		}
		hsEvents := s.HandshakeEvents
		s.mu.Unlock()
		if brk {
			return
		}
		if hang {
			continue
		}
		if req.Execute == "qmp_capabilities" {
			for i := 0; i < hsEvents; i++ {
				writeEvent(c, wmu, "RTC_CHANGE", map[string]any{"offset": i})
			}
			negotiated = true
		} else if !negotiated {
			writeJSON(c, wmu, reply(req.ID, nil, &Error{"CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'"}))
			continue
		}
		ret, qerr := s.dispatch(c, wmu, req.Execute, req.Arguments)
		writeJSON(c, wmu, reply(req.ID, ret, qerr))
	}
}

func reply(id json.RawMessage, ret any, err *Error) map[string]any {
	m := map[string]any{}
	if err != nil {
		m["error"] = err
	} else {
		if ret == nil {
			ret = map[string]any{}
		}
		m["return"] = ret
	}
	if len(id) > 0 {
		m["id"] = id
	}
	return m
}

func (s *Server) dispatch(c net.Conn, wmu *sync.Mutex, execute string, args json.RawMessage) (any, *Error) {
	s.mu.Lock()
	h := s.handlers[execute]
	s.mu.Unlock()
	if h != nil {
		return h(args)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	running := s.Status == "running" || s.Status == "suspended"
	switch execute {
	case "qmp_capabilities":
		return nil, nil
	case "query-status":
		return map[string]any{"status": s.Status, "running": s.Status == "running", "singlestep": false}, nil
	case "stop":
		if s.Status == "running" {
			s.Status = "paused"
			go writeEvent(c, wmu, "STOP", nil)
		}
		return nil, nil
	case "cont":
		s.Status = "running"
		go writeEvent(c, wmu, "RESUME", nil)
		return nil, nil
	case "inject-nmi":
		return nil, nil
	case "query-memory-size-summary":
		return map[string]uint64{"base-memory": 4 << 30}, nil
	case "guest-sync":
		var a struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(args, &a)
		return a.ID, nil
	case "guest-ping":
		return nil, nil
	case "guest-get-osinfo":
		return map[string]string{"id": s.OSID}, nil
	case "guest-exec":
		var a struct {
			Path string   `json:"path"`
			Arg  []string `json:"arg"`
		}
		if err := json.Unmarshal(args, &a); err != nil || a.Path == "" {
			return nil, &Error{"GenericError", "Parameter 'path' is missing"}
		}
		s.execs = append(s.execs, strings.Join(append([]string{a.Path}, a.Arg...), " "))
		pid := 4242 + len(s.execs)
		code, out, errOut := 0, "", ""
		if s.Program != nil {
			code, out, errOut = s.Program(a.Path, a.Arg)
		}
		if s.procs == nil {
			s.procs = map[int]map[string]any{}
		}
		st := map[string]any{"exited": true, "exitcode": code}
		if out != "" {
			st["out-data"] = base64.StdEncoding.EncodeToString([]byte(out))
		}
		if errOut != "" {
			st["err-data"] = base64.StdEncoding.EncodeToString([]byte(errOut))
		}
		s.procs[pid] = st
		return map[string]int{"pid": pid}, nil
	case "guest-exec-status":
		var a struct {
			PID int `json:"pid"`
		}
		_ = json.Unmarshal(args, &a)
		st, ok := s.procs[a.PID]
		if !ok {
			return nil, &Error{"GenericError", fmt.Sprintf("Invalid parameter 'pid'")}
		}
		delete(s.procs, a.PID)
		return st, nil
	case "guest-file-open":
		var a struct {
			Path string `json:"path"`
			Mode string `json:"mode"`
		}
		_ = json.Unmarshal(args, &a)
		if a.Mode != "wb" && a.Mode != "w" {
			return nil, &Error{"GenericError", "qmptest: only write modes are emulated"}
		}
		if s.Files == nil {
			s.Files = map[string][]byte{}
		}
		if s.handles == nil {
			s.handles = map[int64]string{}
		}
		s.Files[a.Path] = []byte{}
		h := int64(1000 + len(s.handles))
		s.handles[h] = a.Path
		return h, nil
	case "guest-file-write":
		var a struct {
			Handle int64  `json:"handle"`
			Buf    string `json:"buf-b64"`
		}
		_ = json.Unmarshal(args, &a)
		path, ok := s.handles[a.Handle]
		b, err := base64.StdEncoding.DecodeString(a.Buf)
		if !ok || err != nil {
			return nil, &Error{"GenericError", "handle '" + fmt.Sprint(a.Handle) + "' has not been found"}
		}
		s.Files[path] = append(s.Files[path], b...)
		return map[string]any{"count": len(b), "eof": false}, nil
	case "guest-file-close":
		var a struct {
			Handle int64 `json:"handle"`
		}
		_ = json.Unmarshal(args, &a)
		if _, ok := s.handles[a.Handle]; !ok {
			return nil, &Error{"GenericError", "handle has not been found"}
		}
		delete(s.handles, a.Handle)
		return nil, nil
	case "set-action":
		if s.NoSetAction {
			return nil, &Error{"CommandNotFound", "The command set-action has not been found"}
		}
		return nil, nil
	case "send-key":
		return nil, nil // like QEMU: success, and the keys are lost when paused
	case "input-send-event":
		if !running {
			return nil, &Error{"GenericError", "VM not running"}
		}
		var a struct {
			Events []struct {
				Type string `json:"type"`
				Data struct {
					Down bool `json:"down"`
					Key  struct {
						Type string          `json:"type"`
						Data json.RawMessage `json:"data"`
					} `json:"key"`
				} `json:"data"`
			} `json:"events"`
		}
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, &Error{"GenericError", "Invalid parameter type: " + err.Error()}
		}
		var keys []string
		for _, e := range a.Events {
			if e.Type != "key" {
				return nil, &Error{"GenericError", "only key events are emulated"}
			}
			sign := "-"
			if e.Data.Down {
				sign = "+"
			}
			name := strings.Trim(string(e.Data.Key.Data), `"`)
			if e.Data.Key.Type == "number" {
				name = "#" + name
			}
			keys = append(keys, sign+name)
		}
		s.keys = append(s.keys, keys...)
		return nil, nil
	case "qom-list":
		var a struct {
			Path string `json:"path"`
		}
		_ = json.Unmarshal(args, &a)
		list := []map[string]string{{"name": "type", "type": "string"}}
		for _, d := range s.Devices {
			if d.Container == a.Path {
				list = append(list, map[string]string{"name": d.Name, "type": "child<" + d.Type + ">"})
			}
		}
		if a.Path == "/machine/unattached" {
			list = append(list, map[string]string{"name": "device[0]", "type": "child<qemu64-x86_64-cpu>"})
		}
		return list, nil
	case "query-cpus-fast":
		return []map[string]any{{"cpu-index": 0, "qom-path": "/machine/unattached/device[0]", "target": "x86_64"}}, nil
	case "qom-get":
		var a struct {
			Path, Property string
		}
		_ = json.Unmarshal(args, &a)
		if a.Path == "/machine/unattached/device[0]" && a.Property == "hv-crash" {
			return s.HVCrash, nil
		}
		return nil, &Error{"GenericError", fmt.Sprintf("Property '%s' not found", a.Property)}
	}
	return nil, &Error{"CommandNotFound", fmt.Sprintf("The command %s has not been found", execute)}
}

// OpenFiles is how many guest-file handles are open in agent mode.
func (s *Server) OpenFiles() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.handles)
}
