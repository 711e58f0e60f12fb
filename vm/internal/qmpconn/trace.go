package qmpconn

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"
)

// Debug tracing: every command with its arguments, QEMU's reply and the call's duration, and
// every event, logged through log/slog's default logger at level Debug (nothing is formatted
// when Debug is disabled). Messages are "qmp command"/"qmp event", or "qga command" on a guest
// agent connection.

// maxTraced bounds one logged payload.
const maxTraced = 4096

func clip(b []byte) string {
	if len(b) <= maxTraced {
		return string(b)
	}
	return string(b[:maxTraced]) + "…(" + strconv.Itoa(len(b)) + " bytes)"
}

func (c *Conn) proto() string {
	if c.opts.Agent {
		return "qga"
	}
	return "qmp"
}

// do runs one command (see call) and logs it.
func (c *Conn) do(ctx context.Context, command string, args any) (result, error) {
	if !slog.Default().Enabled(ctx, slog.LevelDebug) {
		return c.call(ctx, command, args)
	}
	start := time.Now()
	r, err := c.call(ctx, command, args)
	attrs := []slog.Attr{slog.String("command", command)}
	if args != nil {
		var a []byte
		if raw, ok := args.(json.RawMessage); ok {
			a = raw
		} else {
			a, _ = json.Marshal(args)
		}
		attrs = append(attrs, slog.String("arguments", clip(a)))
	}
	if err == nil {
		attrs = append(attrs, slog.String("return", clip(r.msg.Return)))
	}
	attrs = append(attrs, slog.Duration("took", time.Since(start)))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	slog.LogAttrs(ctx, slog.LevelDebug, c.proto()+" command", attrs...)
	return r, err
}

// deliver logs an event and queues it (see enqueue).
func (c *Conn) deliver(e Event) {
	if slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("event", e.Name), slog.Time("qemu_time", e.Time)}
		if len(e.Data) > 0 {
			attrs = append(attrs, slog.String("data", clip(e.Data)))
		}
		slog.LogAttrs(context.Background(), slog.LevelDebug, c.proto()+" event", attrs...)
	}
	c.enqueue(e)
}
