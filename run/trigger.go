package run

import (
	"fmt"
	"strings"
)

// TriggerKind names how the crash is caused.
type TriggerKind string

// The triggers.
const (
	TriggerKeys TriggerKind = "keys" // the exact hotkey sequence through the keyboard
	TriggerNMI  TriggerKind = "nmi"  // a non-maskable interrupt (bug check 0x80 on Windows 8+)
	TriggerExec TriggerKind = "exec" // a command run in the guest by the QEMU guest agent
)

// Trigger is how the crash is caused.
type Trigger struct {
	Kind TriggerKind
	// Command is the command line for TriggerExec (e.g. "notmyfault64.exe /crash").
	Command string
}

// ParseTrigger reads "keys", "nmi" or "exec:CMD".
func ParseTrigger(s string) (Trigger, error) {
	switch {
	case s == "" || s == string(TriggerKeys):
		return Trigger{Kind: TriggerKeys}, nil
	case s == string(TriggerNMI):
		return Trigger{Kind: TriggerNMI}, nil
	case strings.HasPrefix(s, "exec:"):
		cmd := strings.TrimSpace(strings.TrimPrefix(s, "exec:"))
		if cmd == "" {
			return Trigger{}, fmt.Errorf("trigger %q: give the command after exec:, e.g. exec:C:\\tools\\notmyfault64.exe /crash", s)
		}
		return Trigger{Kind: TriggerExec, Command: cmd}, nil
	}
	return Trigger{}, fmt.Errorf("unknown trigger %q: use keys, nmi or exec:COMMAND", s)
}

// String is the form ParseTrigger reads.
func (t Trigger) String() string {
	if t.Kind == TriggerExec {
		return "exec:" + t.Command
	}
	return string(t.Kind)
}

// ExpectedBugCheck is the bug check this trigger produces on Windows, or 0 when it depends on
// the command.
func (t Trigger) ExpectedBugCheck() uint32 {
	switch t.Kind {
	case TriggerKeys:
		return 0xE2
	case TriggerNMI:
		return 0x80
	}
	return 0
}
