// Package qmpconn is crashkey's QMP client: one connection to a QEMU monitor socket, with a
// context and a deadline on every call, replies matched by "id", events read by a dedicated
// goroutine into a bounded buffer, and lines of up to 16 MiB.
//
// Why not go-qemu's qmp.SocketMonitor: three of its bugs cannot be worked around through its API
// (libraries.md §1.5): an event that arrives during the handshake is taken as the reply to
// qmp_capabilities and shifts every later reply by one; a reply over 64 KiB (bufio.Scanner's
// default) kills the connection; and its net.Conn is unexported, so no deadline can be set and a
// QEMU that stops answering hangs Run forever. Conn keeps go-qemu's vocabulary instead: it
// implements qmp.Monitor (see Monitor), so go-qemu's typed raw API runs on top of it, and it
// delivers qmp.Event values.
package qmpconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Defaults for Options.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxLine     = 16 << 20
	DefaultEventBuffer = 1024
)

// Options tune a connection. The zero value uses the defaults.
type Options struct {
	// Timeout bounds every call and the handshake (a context with an earlier deadline wins)
	// (DefaultTimeout).
	Timeout time.Duration
	// MaxLine bounds one message from QEMU (DefaultMaxLine). A longer line closes the
	// connection with an error; memory grows only as bytes arrive.
	MaxLine int
	// EventBuffer is how many events wait for a reader (DefaultEventBuffer). When it is full
	// the oldest event is dropped (see Conn.Dropped); the reader never blocks replies.
	EventBuffer int
	// Agent speaks the QEMU guest agent's protocol (QGA) instead of QMP's: no greeting and no
	// capability negotiation; the connection starts by flushing the agent's parser (a 0xFF
	// byte) and a guest-sync with a random number, which also skips replies a previous client
	// left behind; lines that are not JSON are skipped.
	Agent bool
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxLine <= 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = DefaultEventBuffer
	}
	return o
}

// Error is an error reply from QEMU: the command reached QEMU and QEMU refused it.
type Error struct {
	// Class is the QMP error class ("GenericError", "CommandNotFound", …).
	Class string `json:"class"`
	// Desc is QEMU's description.
	Desc string `json:"desc"`
}

func (e *Error) Error() string {
	if e.Class == "" {
		return "qemu: " + e.Desc
	}
	return "qemu: " + e.Desc + " (" + e.Class + ")"
}

// ErrClosed is returned by calls on a connection that is closed or broken.
var ErrClosed = errors.New("qmp: connection closed")

// Event is one asynchronous QMP event.
type Event struct {
	// Name is the event name ("GUEST_PANICKED").
	Name string
	// Data is the event's "data" member (nil when absent).
	Data json.RawMessage
	// Time is QEMU's timestamp, or the time the line was read when QEMU gave none.
	Time time.Time
}

// Message is one decoded line from QEMU: a greeting, an event or a reply.
type Message struct {
	// Greeting is set for the server's greeting.
	Greeting *Greeting
	// Event is set for an asynchronous event.
	Event *Event
	// Return is a successful reply's "return" member.
	Return json.RawMessage
	// Err is an error reply's "error" member.
	Err *Error
	// ID is the reply's "id" as sent (nil when QEMU gave none).
	ID json.RawMessage
}

// Greeting is the QMP server's greeting.
type Greeting struct {
	Version      qmp.Version `json:"version"`
	Capabilities []string    `json:"capabilities"`
}

// Decode parses one line from a QMP server. It returns exactly one of a message or an error,
// and never panics, whatever the bytes.
func Decode(line []byte) (Message, error) {
	var raw struct {
		QMP       *Greeting       `json:"QMP"`
		Event     *string         `json:"event"`
		Data      json.RawMessage `json:"data"`
		Timestamp *struct {
			Seconds      int64 `json:"seconds"`
			Microseconds int64 `json:"microseconds"`
		} `json:"timestamp"`
		Return json.RawMessage `json:"return"`
		Error  *Error          `json:"error"`
		ID     json.RawMessage `json:"id"`
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Message{}, fmt.Errorf("qmp: decode: not a JSON object: %.40q", line)
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return Message{}, fmt.Errorf("qmp: decode: %w", err)
	}
	var m Message
	switch {
	case raw.QMP != nil:
		m.Greeting = raw.QMP
	case raw.Event != nil:
		ev := &Event{Name: *raw.Event}
		if len(raw.Data) > 0 && !bytes.Equal(raw.Data, []byte("null")) {
			ev.Data = raw.Data
		}
		if ts := raw.Timestamp; ts != nil && ts.Seconds >= 0 && ts.Seconds < 1<<40 && ts.Microseconds >= 0 && ts.Microseconds < 1e6 {
			ev.Time = time.Unix(ts.Seconds, ts.Microseconds*1000).UTC()
		}
		if *raw.Event == "" {
			return Message{}, errors.New("qmp: decode: event without a name")
		}
		m.Event = ev
	case raw.Error != nil:
		m.Err, m.ID = raw.Error, raw.ID
	case raw.Return != nil:
		m.Return, m.ID = raw.Return, raw.ID
	default:
		return Message{}, fmt.Errorf("qmp: decode: neither greeting, event nor reply: %.60q", line)
	}
	return m, nil
}

type result struct {
	line []byte
	msg  Message
}

// Conn is one QMP connection. Its methods are safe for concurrent use.
type Conn struct {
	nc   net.Conn
	opts Options
	br   *bufio.Reader

	// Greeting is what the server said first (QEMU version and capabilities).
	Greeting Greeting

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	idBase  string
	nextID  uint64
	pending map[string]chan result
	err     error
	dropped uint64

	events chan Event
	done   chan struct{}
	w      watchers
}

// Dial connects to a QMP server at network ("unix" or "tcp") and addr, reads the greeting and
// negotiates capabilities. ctx and Options.Timeout bound the whole handshake.
func Dial(ctx context.Context, network, addr string, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	ctx, cancel := withDefaultDeadline(ctx, opts.Timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial %s:%s: %w", network, addr, err)
	}
	c, err := NewConn(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// NewConn runs the QMP handshake on an open connection and returns the client. On error the
// caller still owns nc.
func NewConn(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	ctx, cancel := withDefaultDeadline(ctx, opts.Timeout)
	defer cancel()
	c := &Conn{
		nc:      nc,
		opts:    opts,
		br:      bufio.NewReaderSize(nc, 64<<10),
		pending: map[string]chan result{},
		events:  make(chan Event, opts.EventBuffer),
		done:    make(chan struct{}),
	}
	// Ids unique to this connection: a guest agent can hold replies to an earlier client.
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	c.idBase = "crashkey-" + hex.EncodeToString(rb[:]) + "-"
	if opts.Agent {
		return c.agentHandshake(ctx)
	}
	// The greeting is read here with the handshake's deadline; a context that ends first
	// unblocks the read by moving the deadline.
	dl, _ := ctx.Deadline()
	_ = nc.SetReadDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Unix(1, 0)) })
	var early []Event
	for greeted := false; !greeted; {
		line, err := c.readLine()
		if err != nil {
			stop()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("qmp: waiting for the greeting: %w", err)
		}
		m, err := Decode(line)
		if err != nil {
			stop()
			return nil, fmt.Errorf("qmp: greeting: %w (is this a QMP socket? HMP and QGA sockets are not)", err)
		}
		switch {
		case m.Greeting != nil:
			c.Greeting, greeted = *m.Greeting, true
		case m.Event != nil:
			early = append(early, *m.Event)
		default:
			stop()
			return nil, errors.New("qmp: greeting: a reply came before the greeting: is another client using this socket?")
		}
	}
	if !stop() {
		stop()
		return nil, fmt.Errorf("qmp: waiting for the greeting: %w", ctx.Err())
	}
	_ = nc.SetReadDeadline(time.Time{})
	for _, e := range early {
		c.deliver(e)
	}
	go c.readLoop()
	if _, err := c.Execute(ctx, "qmp_capabilities", nil); err != nil {
		c.closeWith(err)
		return nil, fmt.Errorf("qmp: handshake: %w", err)
	}
	return c, nil
}

func (c *Conn) agentHandshake(ctx context.Context) (*Conn, error) {
	dl, _ := ctx.Deadline()
	_ = c.nc.SetWriteDeadline(dl)
	if _, err := c.nc.Write([]byte{0xff}); err != nil {
		return nil, fmt.Errorf("qga: %w", err)
	}
	go c.readLoop()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<31))
	if err != nil {
		c.closeWith(err)
		return nil, fmt.Errorf("qga: %w", err)
	}
	want := n.Int64()
	ret, err := c.Execute(ctx, "guest-sync", map[string]int64{"id": want})
	if err != nil {
		c.closeWith(err)
		return nil, fmt.Errorf("qga: guest-sync: %w (is the guest agent running in the guest?)", err)
	}
	var got int64
	if json.Unmarshal(ret, &got) != nil || got != want {
		c.closeWith(errors.New("guest-sync mismatch"))
		return nil, fmt.Errorf("qga: guest-sync answered %s, want %d", ret, want)
	}
	return c, nil
}

// withDefaultDeadline bounds ctx by d: the earlier of ctx's own deadline and d from now.
func withDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// readLine reads one line of at most MaxLine bytes.
func (c *Conn) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := c.br.ReadSlice('\n')
		if len(line)+len(chunk) > c.opts.MaxLine {
			return nil, fmt.Errorf("qmp: a message from QEMU is longer than %d bytes", c.opts.MaxLine)
		}
		if err == bufio.ErrBufferFull {
			line = append(line, chunk...)
			continue
		}
		if err != nil {
			if err == io.EOF && len(line)+len(chunk) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if line == nil {
			return append([]byte(nil), chunk...), nil
		}
		return append(line, chunk...), nil
	}
}

func (c *Conn) readLoop() {
	defer close(c.events) // only this goroutine sends on c.events
	for {
		line, err := c.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("QEMU closed the connection")
			}
			c.closeWith(err)
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, err := Decode(line)
		if err != nil {
			if c.opts.Agent {
				continue // leftovers in the agent's channel
			}
			c.closeWith(err)
			return
		}
		switch {
		case m.Event != nil:
			if m.Event.Time.IsZero() {
				m.Event.Time = time.Now().UTC()
			}
			c.notify(*m.Event)
			c.deliver(*m.Event)
		case m.Greeting != nil:
			// A second greeting means nothing to us; ignore it.
		default:
			c.route(result{line: line, msg: m})
		}
	}
}

// enqueue queues an event, dropping the oldest when the buffer is full.
func (c *Conn) enqueue(e Event) {
	for {
		select {
		case c.events <- e:
			return
		default:
		}
		select {
		case <-c.events:
			c.mu.Lock()
			c.dropped++
			c.mu.Unlock()
		default:
		}
	}
}

func (c *Conn) route(r result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id string
	if len(r.msg.ID) > 0 {
		if err := json.Unmarshal(r.msg.ID, &id); err != nil {
			return // not one of ours
		}
	} else if c.opts.Agent && r.msg.Err != nil && strings.HasPrefix(r.msg.Err.Desc, "JSON parse error") {
		// qemu-ga answers the 0xFF that flushes its parser with an id-less parse error
		// ("JSON parse error, stray '\xff'"): it is no reply to a command.
		return
	} else if len(c.pending) == 1 {
		// QEMU omits the id when it could not parse the command at all.
		for k := range c.pending {
			id = k
		}
	}
	if ch, ok := c.pending[id]; ok {
		delete(c.pending, id)
		ch <- r
	}
}

func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
}

// Events returns the event channel. It is closed when the connection ends. There is one
// channel per connection: give it one reader.
func (c *Conn) Events() <-chan Event { return c.events }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (nil while it is open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Dropped is the number of events dropped because nobody read them.
func (c *Conn) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

// Execute runs one command with optional arguments (anything json.Marshal takes) and returns
// its "return" member. An error reply is a *Error; a closed connection wraps ErrClosed; a
// context that ends first returns its error (the connection stays usable: a late reply is
// discarded).
func (c *Conn) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	r, err := c.do(ctx, command, args)
	if err != nil {
		return nil, err
	}
	return r.msg.Return, nil
}

// Run runs a command given as JSON ({"execute":…,"arguments":…}, as go-qemu's qmp.Command
// marshals) and returns QEMU's whole reply line. An "id" in cmd is replaced by Conn's own.
func (c *Conn) Run(ctx context.Context, cmd []byte) ([]byte, error) {
	var in struct {
		Execute   string          `json:"execute"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(cmd, &in); err != nil {
		return nil, fmt.Errorf("qmp: command is not a QMP command object: %w", err)
	}
	if in.Execute == "" {
		return nil, errors.New(`qmp: command has no "execute" member`)
	}
	var args any
	if len(in.Arguments) > 0 && !bytes.Equal(in.Arguments, []byte("null")) {
		args = in.Arguments
	}
	r, err := c.do(ctx, in.Execute, args)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(r.line), nil
}

func (c *Conn) call(ctx context.Context, command string, args any) (result, error) {
	ctx, cancel := withDefaultDeadline(ctx, c.opts.Timeout)
	defer cancel()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return result{}, fmt.Errorf("qmp: %s: %w: %v", command, ErrClosed, err)
	}
	c.nextID++
	id := c.idBase + strconv.FormatUint(c.nextID, 10)
	ch := make(chan result, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		forget()
		return result{}, fmt.Errorf("qmp: %s: encoding the arguments: %w", command, err)
	}
	b = append(b, '\n')

	c.wmu.Lock()
	dl, _ := ctx.Deadline()
	_ = c.nc.SetWriteDeadline(dl)
	_, err = c.nc.Write(b)
	c.wmu.Unlock()
	if err != nil {
		forget()
		c.closeWith(err)
		return result{}, fmt.Errorf("qmp: %s: sending: %w: %v", command, ErrClosed, err)
	}

	select {
	case r := <-ch:
		if r.msg.Err != nil {
			return r, r.msg.Err
		}
		return r, nil
	case <-c.done:
		forget()
		return result{}, fmt.Errorf("qmp: %s: no reply: %w: %v", command, ErrClosed, c.Err())
	case <-ctx.Done():
		forget()
		return result{}, fmt.Errorf("qmp: %s: no reply from QEMU: %w", command, ctx.Err())
	}
}

// Monitor adapts c to go-qemu's qmp.Monitor, so that go-qemu's typed API (qmp/raw) runs over
// this client. Every Run is bounded by ctx (and Options.Timeout). Connect is a no-op (c is
// connected), Disconnect closes c, and Events converts c's events; call it at most once.
func (c *Conn) Monitor(ctx context.Context) qmp.Monitor { return monitor{c: c, ctx: ctx} }

type monitor struct {
	c   *Conn
	ctx context.Context
}

func (m monitor) Connect() error    { return nil }
func (m monitor) Disconnect() error { return m.c.Close() }
func (m monitor) Run(cmd []byte) ([]byte, error) {
	return m.c.Run(m.ctx, cmd)
}
func (m monitor) Events(ctx context.Context) (<-chan qmp.Event, error) {
	out := make(chan qmp.Event, 16)
	go func() {
		defer close(out)
		for {
			select {
			case e, ok := <-m.c.Events():
				if !ok {
					return
				}
				qe := qmp.Event{Event: e.Name}
				if len(e.Data) > 0 {
					_ = json.Unmarshal(e.Data, &qe.Data)
				}
				qe.Timestamp.Seconds = e.Time.Unix()
				qe.Timestamp.Microseconds = int64(e.Time.Nanosecond() / 1000)
				select {
				case out <- qe:
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
