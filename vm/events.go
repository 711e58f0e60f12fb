package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event kinds crashkey cares about (QMP event names), and the kind of libvirt lifecycle events.
const (
	EventGuestPanicked    = "GUEST_PANICKED"
	EventGuestCrashLoaded = "GUEST_CRASHLOADED"
	EventReset            = "RESET"
	EventShutdown         = "SHUTDOWN"
	EventStop             = "STOP"
	EventResume           = "RESUME"
	EventLifecycle        = "LIFECYCLE"
)

// Event is one guest event with its time. QMP events keep QEMU's name as Kind; libvirt's
// lifecycle events have Kind "LIFECYCLE" and Lifecycle/Detail set.
type Event struct {
	// Time is the hypervisor's timestamp.
	Time time.Time `json:"time"`
	// Source is "qmp" or "libvirt".
	Source Backend `json:"source"`
	// Kind is the QMP event name ("GUEST_PANICKED") or "LIFECYCLE".
	Kind string `json:"event"`
	// Action is GUEST_PANICKED's and GUEST_CRASHLOADED's action ("run", "pause", "poweroff").
	Action string `json:"action,omitempty"`
	// Reason is SHUTDOWN's and RESET's reason ("guest-panic", "guest-reset", …).
	Reason string `json:"reason,omitempty"`
	// Guest is SHUTDOWN's and RESET's "guest" flag (the guest asked for it).
	Guest *bool `json:"guest,omitempty"`
	// Panic is GUEST_PANICKED's information, when the guest gave some (hv-crash does, pvpanic
	// does not).
	Panic *PanicInfo `json:"panic,omitempty"`
	// Lifecycle and Detail name a libvirt lifecycle event ("crashed", "panicked").
	Lifecycle string `json:"lifecycle,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// Data is the event's raw data for kinds not decoded above.
	Data json.RawMessage `json:"data,omitempty"`
}

// IsCrash reports whether e says the guest crashed: GUEST_PANICKED, GUEST_CRASHLOADED or a
// libvirt "crashed" lifecycle event.
func (e Event) IsCrash() bool {
	return e.Kind == EventGuestPanicked || e.Kind == EventGuestCrashLoaded || e.Lifecycle == "crashed"
}

// Hex64 is a 64-bit value written in JSON as a "0x…" string (JSON numbers lose precision
// beyond 2^53).
type Hex64 uint64

// MarshalJSON writes "0x…".
func (h Hex64) MarshalJSON() ([]byte, error) {
	return []byte(`"0x` + strconv.FormatUint(uint64(h), 16) + `"`), nil
}

// UnmarshalJSON reads "0x…" or a number.
func (h *Hex64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return fmt.Errorf("hex64: %w", err)
		}
		*h = Hex64(v)
		return nil
	}
	var v uint64
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("hex64: %w", err)
	}
	*h = Hex64(v)
	return nil
}

// PanicInfo is GUEST_PANICKED's "info". For "hyper-v" (Windows with hv-crash), arg1 is the bug
// check code and arg2–arg5 its four parameters.
type PanicInfo struct {
	// Type is "hyper-v", "s390", "tdx", ….
	Type string `json:"type"`
	// BugCheck is the bug check code (hyper-v arg1), when Type is "hyper-v".
	BugCheck *Hex64 `json:"bugcheck,omitempty"`
	// Params are the bug check parameters (hyper-v arg2–arg5).
	Params []Hex64 `json:"params,omitempty"`
	// Message is a free-text message (tdx), when given.
	Message string `json:"message,omitempty"`
}

// maxEventData bounds the event data crashkey decodes.
const maxEventData = 1 << 20

// DecodeQMPEvent types one QMP event (its name, "data" member and time). It returns exactly one
// of an event or an error and never panics.
func DecodeQMPEvent(name string, data []byte, t time.Time) (Event, error) {
	if name == "" {
		return Event{}, errors.New("event: no name")
	}
	if len(data) > maxEventData {
		return Event{}, fmt.Errorf("event %s: data of %d bytes is larger than %d", name, len(data), maxEventData)
	}
	e := Event{Time: t, Source: QMP, Kind: name}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return e, nil
	}
	var d struct {
		Action string          `json:"action"`
		Reason string          `json:"reason"`
		Guest  *bool           `json:"guest"`
		Info   json.RawMessage `json:"info"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return Event{}, fmt.Errorf("event %s: %w", name, err)
	}
	switch name {
	case EventGuestPanicked, EventGuestCrashLoaded:
		e.Action = d.Action
		if len(d.Info) > 0 && !bytes.Equal(d.Info, []byte("null")) {
			p, err := decodePanicInfo(d.Info)
			if err != nil {
				return Event{}, fmt.Errorf("event %s: %w", name, err)
			}
			e.Panic = p
		}
	case EventShutdown, EventReset:
		e.Reason, e.Guest = d.Reason, d.Guest
	default:
		e.Data = append(json.RawMessage(nil), data...)
	}
	return e, nil
}

func decodePanicInfo(b []byte) (*PanicInfo, error) {
	var info struct {
		Type    string  `json:"type"`
		Arg1    *uint64 `json:"arg1"`
		Arg2    uint64  `json:"arg2"`
		Arg3    uint64  `json:"arg3"`
		Arg4    uint64  `json:"arg4"`
		Arg5    uint64  `json:"arg5"`
		Message string  `json:"message"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("panic info: %w", err)
	}
	p := &PanicInfo{Type: info.Type, Message: info.Message}
	if info.Type == "hyper-v" {
		if info.Arg1 == nil {
			return nil, errors.New("panic info: hyper-v without arg1 (the bug check code)")
		}
		bc := Hex64(*info.Arg1)
		p.BugCheck = &bc
		p.Params = []Hex64{Hex64(info.Arg2), Hex64(info.Arg3), Hex64(info.Arg4), Hex64(info.Arg5)}
	}
	return p, nil
}
