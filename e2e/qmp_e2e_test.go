//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// rawQMP is a deliberately minimal QMP client for the harness's own tests: plain JSON lines over
// the unix socket, one goroutine, deadlines from the context. (crashkey's real client lives in
// package vm.)
type rawQMP struct {
	conn   net.Conn
	r      *bufio.Reader
	nextID int
	events []qmpEvent
}

type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

type qmpMessage struct {
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	ID     *int            `json:"id"`
	QMP    json.RawMessage `json:"QMP"`
}

// dialQMP connects, reads the greeting and negotiates capabilities.
func dialQMP(ctx context.Context, path string) (*rawQMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp dial: %w", err)
	}
	q := &rawQMP{conn: conn, r: bufio.NewReaderSize(conn, 1<<20)}
	m, err := q.read(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	if m.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("qmp greeting: unexpected %+v", m)
	}
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *rawQMP) Close() error { return q.conn.Close() }

func (q *rawQMP) read(ctx context.Context) (qmpMessage, error) {
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetReadDeadline(dl)
	} else {
		q.conn.SetReadDeadline(time.Time{})
	}
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return qmpMessage{}, err
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return qmpMessage{}, fmt.Errorf("bad qmp line %q: %w", line, err)
	}
	return m, nil
}

// execute runs one command and returns its "return" value; a QMP error becomes *qmpError.
func (q *rawQMP) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.nextID++
	id := q.nextID
	req := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetWriteDeadline(dl)
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for {
		m, err := q.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if m.Event != "" {
			q.events = append(q.events, qmpEvent{Event: m.Event, Data: m.Data})
			continue
		}
		if m.ID == nil || *m.ID != id {
			continue
		}
		if m.Error != nil {
			return nil, m.Error
		}
		return m.Return, nil
	}
}

// waitEvent returns the first event called name (already received or arriving before ctx ends)
// and drops it and every earlier event from the queue.
func (q *rawQMP) waitEvent(ctx context.Context, name string) (qmpEvent, error) {
	for {
		for i, e := range q.events {
			if e.Event == name {
				q.events = q.events[i+1:]
				return e, nil
			}
		}
		m, err := q.read(ctx)
		if err != nil {
			return qmpEvent{}, fmt.Errorf("qmp wait for %s (have %v): %w", name, q.eventNames(), err)
		}
		if m.Event != "" {
			q.events = append(q.events, qmpEvent{Event: m.Event, Data: m.Data})
		}
	}
}

func (q *rawQMP) eventNames() []string {
	var n []string
	for _, e := range q.events {
		n = append(n, e.Event)
	}
	return n
}

func (q *rawQMP) status(ctx context.Context) (string, error) {
	r, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(r, &s); err != nil {
		return "", err
	}
	return s.Status, nil
}

// keyEvent is one input-send-event key event: "+ctrl_r" presses, "-ctrl_r" releases.
func keyEvents(spec string) []map[string]any {
	var evs []map[string]any
	for _, w := range strings.Fields(spec) {
		evs = append(evs, map[string]any{"type": "key", "data": map[string]any{
			"down": w[0] == '+',
			"key":  map[string]any{"type": "qcode", "data": w[1:]},
		}})
	}
	return evs
}

// sendEvents sends spec ("+ctrl_r +scroll_lock …") as one input-send-event call.
func (q *rawQMP) sendEvents(ctx context.Context, spec string) error {
	_, err := q.execute(ctx, "input-send-event", map[string]any{"events": keyEvents(spec)})
	return err
}

func mustQMP(t *testing.T, ctx context.Context, path string) *rawQMP {
	t.Helper()
	q, err := dialQMP(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}
