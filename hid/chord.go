package hid

import (
	"fmt"
	"strings"
)

// ChordSequence is what QEMU makes of a send-key chord for h (QMP send-key, HMP sendkey and
// virsh send-key all become one QMP send-key): every key pressed in list order, then released
// in reverse order; the crash key is named twice.
func ChordSequence(h Hotkey) Sequence {
	keys := chordKeys(h)
	var s Sequence
	for _, k := range keys {
		s = append(s, Event{Key: k, Down: true})
	}
	for i := len(keys) - 1; i >= 0; i-- {
		s = append(s, Event{Key: keys[i], Down: false})
	}
	return s
}

// ChordOutcome is what one kind of guest keyboard receives from a chord and what the driver
// model makes of it.
type ChordOutcome struct {
	Driver   Driver  `json:"driver"`
	Received string  `json:"received"` // set-1 bytes, or boot reports separated by ';'
	Verdict  Verdict `json:"verdict"`
}

// ChordReport describes a chord-only delivery of h on PS/2 and on USB.
type ChordReport struct {
	PS2 ChordOutcome `json:"ps2"`
	USB ChordOutcome `json:"usb"`
}

// Chord computes what a PS/2 guest (i8042prt) and a USB guest (kbdhid), both armed for h,
// receive from the send-key chord and whether each would crash.
func Chord(h Hotkey) ChordReport {
	seq := ChordSequence(h)
	reg := Armed(h)
	ps2 := Set1(seq)
	usb := QEMUUSBReports(seq)
	var reps []string
	for _, r := range usb {
		reps = append(reps, r.String())
	}
	return ChordReport{
		PS2: ChordOutcome{Driver: I8042prt, Received: HexBytes(ps2), Verdict: SimulateSet1(reg, ps2)},
		USB: ChordOutcome{Driver: Kbdhid, Received: strings.Join(reps, ";"), Verdict: SimulateUSB(reg, usb)},
	}
}

// ChordWarning is the warning to print beside a chord-only command (send-key, HMP sendkey,
// virsh send-key).
func ChordWarning(h Hotkey) string {
	c := Chord(h)
	say := func(o ChordOutcome) string {
		if o.Verdict.Crash {
			unit := "byte"
			if o.Driver == Kbdhid {
				unit = "report"
			}
			return fmt.Sprintf("crashes (at %s %d)", unit, *o.Verdict.At)
		}
		return "does NOT crash"
	}
	presses := 0
	usbSeq := QEMUUSBReports(ChordSequence(h))
	var prev Report
	for _, r := range usbSeq {
		for _, u := range r[2:] {
			if u == byte(h.Key.USB) && !hasUsage(prev, u) {
				presses++
			}
		}
		prev = r
	}
	return fmt.Sprintf("warning: this is a chord: every key goes down in order, then up in reverse, and %s is named twice. "+
		"A PS/2 guest (i8042prt) receives %s: the driver model says it %s. "+
		"A USB guest (kbdhid) receives %d press(es) of %s, because QEMU's usb-kbd ignores a press of a key already down: it %s. "+
		"Use input-send-event (crashkey send --method events) for the exact sequence.",
		h.Key.Name(), c.PS2.Received, say(c.PS2), presses, h.Key.Name(), say(c.USB))
}
