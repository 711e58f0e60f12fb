package vm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crashkey/crashkey/hid"
)

// monitor is what the send algorithm needs from a backend: a QMP command channel and a way to
// get a fresh one.
type monitor interface {
	// run sends one QMP command (JSON). An error the hypervisor answered (the command did not
	// reach the guest) satisfies refused.
	run(ctx context.Context, cmd []byte) error
	// reconnect replaces a broken connection.
	reconnect(ctx context.Context) error
	// callTimeout is the default deadline of one call.
	callTimeout() time.Duration
}

// refusal marks an error answered by the hypervisor: the command was not carried out.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// refused reports whether the hypervisor answered err (rather than the connection failing or a
// deadline passing, after which the command may or may not have been carried out).
func refused(err error) bool {
	var q *QMPError
	var r refusal
	return errors.As(err, &q) || errors.As(err, &r)
}

const defaultReleaseTimeout = 5 * time.Second

// sendSequence delivers seq through m with the release guarantee.
func sendSequence(ctx context.Context, m monitor, seq hid.Sequence, opts SendOptions, res *SendResult) error {
	callTimeout := opts.CallTimeout
	if callTimeout <= 0 {
		callTimeout = m.callTimeout()
	}
	batches := hid.QMPBatches(seq)
	// confirmed reached QEMU; uncertain is a call that failed in a way that leaves open
	// whether QEMU carried it out (a broken connection, a deadline).
	var confirmed, uncertain hid.Sequence
	var failure error
	for i, b := range batches {
		if err := ctx.Err(); err != nil {
			failure = fmt.Errorf("send: stopped before call %d of %d: %w", i+1, len(batches), err)
			break
		}
		cmd := b.Command()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := m.run(cctx, cmd)
		cancel()
		call := Call{Command: string(cmd), Events: b.Events.String()}
		if err != nil {
			call.Error = err.Error()
			if !refused(err) {
				uncertain = b.Events
			}
			res.Calls = append(res.Calls, call)
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", ctx.Err(), err)
			}
			failure = fmt.Errorf("send: call %d of %d (%s): %w", i+1, len(batches), b.Events, err)
			break
		}
		res.Calls = append(res.Calls, call)
		confirmed = append(confirmed, b.Events...)
		if i < len(batches)-1 && b.After > 0 {
			t := time.NewTimer(b.After)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				failure = fmt.Errorf("send: stopped after call %d of %d: %w", i+1, len(batches), ctx.Err())
			}
			if failure != nil {
				break
			}
		}
	}
	res.Sent = confirmed.String()
	if len(uncertain) > 0 {
		res.Uncertain = uncertain.String()
	}
	if failure == nil {
		res.Complete = true
		return nil
	}
	rel := releasesFor(confirmed, uncertain)
	if len(rel) == 0 {
		return failure
	}
	if err := releaseKeys(ctx, m, rel, opts, res); err != nil {
		return fmt.Errorf("%w; %w", failure, err)
	}
	return fmt.Errorf("%w (released %s)", failure, rel)
}

// releasesFor returns the up events that leave no key down whether or not the uncertain
// events reached the guest: the keys the uncertain events pressed (most recent first), then
// the keys down after the confirmed events, last pressed first. A release of a key that is
// not down is harmless (USB and virtio ignore it; on PS/2 it is a lone break code).
func releasesFor(confirmed, uncertain hid.Sequence) hid.Sequence {
	with := hid.Releases(append(append(hid.Sequence(nil), confirmed...), uncertain...))
	without := hid.Releases(confirmed)
	in := map[string]bool{}
	for _, e := range without {
		in[e.Key.QCode] = true
	}
	var out hid.Sequence
	for _, e := range with {
		if !in[e.Key.QCode] {
			out = append(out, e)
		}
	}
	return append(out, without...)
}

// releaseKeys sends rel with a fresh deadline, reconnecting once when the connection is gone.
func releaseKeys(ctx context.Context, m monitor, rel hid.Sequence, opts SendOptions, res *SendResult) error {
	timeout := opts.ReleaseTimeout
	if timeout <= 0 {
		timeout = defaultReleaseTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var done hid.Sequence
	batches := hid.QMPBatches(rel)
	var failure error
	for i := 0; i < len(batches); i++ {
		b := batches[i]
		cmd := b.Command()
		err := m.run(rctx, cmd)
		if err != nil && !refused(err) && !res.Reconnected && rctx.Err() == nil {
			res.Calls = append(res.Calls, Call{Command: string(cmd), Events: b.Events.String(), Release: true, Error: err.Error()})
			if rerr := m.reconnect(rctx); rerr != nil {
				failure = fmt.Errorf("release: %v; reconnecting: %w", err, rerr)
				break
			}
			res.Reconnected = true
			err = m.run(rctx, cmd)
		}
		call := Call{Command: string(cmd), Events: b.Events.String(), Release: true}
		if err != nil {
			call.Error = err.Error()
			res.Calls = append(res.Calls, call)
			failure = fmt.Errorf("release: %w", err)
			break
		}
		res.Calls = append(res.Calls, call)
		done = append(done, b.Events...)
	}
	res.Released = done.String()
	if failure == nil {
		return nil
	}
	stuck := map[string]bool{}
	for _, e := range done {
		stuck[e.Key.QCode] = true // released
	}
	for _, e := range rel {
		if !stuck[e.Key.QCode] {
			res.Stuck = append(res.Stuck, e.Key.QCode)
		}
	}
	return fmt.Errorf("%w: these keys may be stuck down in the guest: %v (release them with: crashkey send TARGET --sequence %q)", failure, res.Stuck, rel[len(done):].String())
}
