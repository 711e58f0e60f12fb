package hid

import (
	"fmt"
	"strings"
	"time"

	"github.com/crashkey/crashkey/scancodes"
)

// Event is one key going down or up, followed by a pause.
type Event struct {
	Key  *scancodes.Key
	Down bool
	// Delay is how long to wait after this event before sending the next one.
	Delay time.Duration
}

// String renders "+ctrl_r" or "-scroll_lock".
func (e Event) String() string {
	if e.Down {
		return "+" + e.Key.QCode
	}
	return "-" + e.Key.QCode
}

// Sequence is an ordered list of key events.
type Sequence []Event

// String renders the events separated by spaces ("+ctrl_r +scroll_lock -scroll_lock …").
func (s Sequence) String() string {
	parts := make([]string, len(s))
	for i, e := range s {
		parts[i] = e.String()
	}
	return strings.Join(parts, " ")
}

// Duration is the sum of the delays.
func (s Sequence) Duration() time.Duration {
	var d time.Duration
	for _, e := range s {
		d += e.Delay
	}
	return d
}

// Timing sets the pauses of a planned sequence.
type Timing struct {
	// Settle is the pause after the last modifier goes down, before the first tap.
	Settle time.Duration
	// Step is the pause after every other event.
	Step time.Duration
}

// DefaultTiming is safe for Windows guests: 50 ms after every event and 100 ms after the
// modifiers are down. 50 ms is several polls of QEMU's USB keyboard (one report per ~8 ms, so
// every event gets a report of its own and the device's 16-entry queue never overflows), far
// below Windows' typematic delay (250 ms and up, and repeats are harmless to the crash logic
// anyway), and short enough that the whole default hotkey takes about 0.4 s.
var DefaultTiming = Timing{Settle: 100 * time.Millisecond, Step: 50 * time.Millisecond}

// BurstTiming sends everything back to back; QMP batches then group events, at most 16
// scancodes per call.
var BurstTiming = Timing{}

// Plan returns the exact key sequence for h: every modifier down (LShift, RShift, LCtrl, RCtrl,
// LAlt, RAlt order), the crash key down, up, down, up, then the modifiers up in reverse order.
// The driver fires on the second release of the crash key.
func Plan(h Hotkey, t Timing) Sequence {
	mods := h.Modifiers.Keys()
	var s Sequence
	for i, k := range mods {
		d := t.Step
		if i == len(mods)-1 {
			d = t.Settle
		}
		s = append(s, Event{Key: k, Down: true, Delay: d})
	}
	for i := 0; i < 2; i++ {
		s = append(s, Event{Key: h.Key, Down: true, Delay: t.Step}, Event{Key: h.Key, Down: false, Delay: t.Step})
	}
	for i := len(mods) - 1; i >= 0; i-- {
		s = append(s, Event{Key: mods[i], Down: false, Delay: t.Step})
	}
	s[len(s)-1].Delay = 0
	return s
}

// Releases returns the up events that release every key held down after the events in done
// were sent, last pressed first: what must be sent to leave no key stuck.
func Releases(done Sequence) Sequence {
	var held []*scancodes.Key
	for _, e := range done {
		i := indexKey(held, e.Key)
		switch {
		case e.Down && i < 0:
			held = append(held, e.Key)
		case !e.Down && i >= 0:
			held = append(held[:i], held[i+1:]...)
		}
	}
	var out Sequence
	for i := len(held) - 1; i >= 0; i-- {
		out = append(out, Event{Key: held[i], Down: false})
	}
	return out
}

func indexKey(ks []*scancodes.Key, k *scancodes.Key) int {
	for i, x := range ks {
		if x.Qnum == k.Qnum {
			return i
		}
	}
	return -1
}

// ParseSequence reads events written as "+ctrl_r +scroll_lock -scroll_lock" (any key name).
func ParseSequence(s string) (Sequence, error) {
	var seq Sequence
	for _, f := range strings.Fields(s) {
		if len(f) < 2 || (f[0] != '+' && f[0] != '-') {
			return nil, fmt.Errorf("event %q: write +KEY for a press and -KEY for a release", f)
		}
		k, err := scancodes.Lookup(f[1:])
		if err != nil {
			return nil, fmt.Errorf("event %q: %w", f, err)
		}
		seq = append(seq, Event{Key: k, Down: f[0] == '+'})
	}
	return seq, nil
}
