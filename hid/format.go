package hid

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Format names an output form of a planned hotkey.
type Format string

// The output forms of [Render].
const (
	FormatSet1    Format = "set1"    // set-1 bytes on one line
	FormatUSB     Format = "usb"     // one boot report per line
	FormatEvdev   Format = "evdev"   // Linux input events, one per line
	FormatQMP     Format = "qmp"     // input-send-event commands, one per line
	FormatSendKey Format = "sendkey" // QMP send-key (chord)
	FormatHMP     Format = "hmp"     // HMP sendkey (chord)
	FormatVirsh   Format = "virsh"   // virsh send-key arguments (chord)
	FormatVBox    Format = "vbox"    // VBoxManage keyboardputscancode
	FormatJSON    Format = "json"    // the whole plan as JSON
)

// Formats lists every format in documentation order.
var Formats = []Format{FormatSet1, FormatUSB, FormatEvdev, FormatQMP, FormatSendKey, FormatHMP, FormatVirsh, FormatQM, FormatVBox, FormatJSON}

// ParseFormat accepts a format name.
func ParseFormat(s string) (Format, error) {
	if err := unsupportedFormat(s); err != nil {
		return "", err
	}
	for _, f := range Formats {
		if string(f) == strings.ToLower(s) {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown format %q: use one of %s", s, strings.Join(names, ", "))
}

// IsChord reports whether the format can only express a chord.
func (f Format) IsChord() bool {
	return f == FormatSendKey || f == FormatHMP || f == FormatVirsh || f == FormatQM
}

// PlanEvent is one event of [PlanDoc].
type PlanEvent struct {
	Key     string `json:"key"`
	Down    bool   `json:"down"`
	DelayMS int64  `json:"delay_ms"`
}

// PlanDoc is the JSON form of a planned hotkey.
type PlanDoc struct {
	Hotkey string `json:"hotkey"`
	Spec   string `json:"spec"`
	// Layout is the keyboard layout the hotkey is read on ("us", "fr"), Labels the hotkey as
	// labelled there ("RCtrl+A") and Description both readings ("RCtrl + A (AZERTY fr; the US Q
	// position, Dump2Key 0x11)").
	Layout            string       `json:"layout"`
	Labels            string       `json:"labels"`
	Description       string       `json:"description"`
	Dump1Keys         uint32       `json:"dump1keys"`
	Dump2Key          uint32       `json:"dump2key"`
	CrashOnCtrlScroll bool         `json:"crash_on_ctrl_scroll"`
	Events            []PlanEvent  `json:"events"`
	Set1              string       `json:"set1"`
	USB               []string     `json:"usb"`
	QMP               []string     `json:"qmp"`
	Chord             *ChordReport `json:"chord,omitempty"`
	Warnings          []string     `json:"warnings,omitempty"`
}

// NewPlanDoc builds the JSON document for h and its planned sequence.
func NewPlanDoc(h Hotkey, seq Sequence) PlanDoc {
	d1, d2 := h.Registry()
	doc := PlanDoc{Hotkey: h.String(), Spec: h.Spec(), Layout: h.Layout.String(), Labels: h.Labels(), Description: h.Describe(), Dump1Keys: d1, Dump2Key: d2, CrashOnCtrlScroll: h.CrashOnCtrlScroll, Set1: HexBytes(Set1(seq))}
	for _, e := range seq {
		doc.Events = append(doc.Events, PlanEvent{Key: e.Key.QCode, Down: e.Down, DelayMS: e.Delay.Milliseconds()})
	}
	for _, r := range USBReports(seq) {
		doc.USB = append(doc.USB, r.String())
	}
	for _, b := range QMPBatches(seq) {
		doc.QMP = append(doc.QMP, string(b.Command()))
	}
	c := Chord(h)
	doc.Chord = &c
	return doc
}

// Render prints the plan for h in format f. For chord formats it also returns the
// [ChordWarning]; the text ends with a newline.
func Render(h Hotkey, t Timing, f Format) (text, warning string, err error) {
	seq := Plan(h, t)
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	switch f {
	case FormatSet1:
		line(HexBytes(Set1(seq)))
	case FormatUSB:
		for _, r := range USBReports(seq) {
			line(r.String())
		}
	case FormatEvdev:
		for _, e := range Evdev(seq) {
			line(e.String())
		}
	case FormatQMP:
		for _, batch := range QMPBatches(seq) {
			line(string(batch.Command()))
		}
	case FormatSendKey:
		line(string(SendKeyCommand(h, DefaultHoldTime)))
	case FormatHMP:
		line(HMPSendKey(h, DefaultHoldTime))
	case FormatVirsh:
		line("virsh send-key DOMAIN " + strings.Join(VirshSendKeyArgs(h, DefaultHoldTime), " "))
	case FormatQM:
		line(QMSendKey(h))
	case FormatVBox:
		line("VBoxManage controlvm VM keyboardputscancode " + strings.Join(VBoxScancodes(seq), " "))
	case FormatJSON:
		out, err := json.MarshalIndent(NewPlanDoc(h, seq), "", "  ")
		if err != nil {
			return "", "", err
		}
		line(string(out))
	default:
		_, err := ParseFormat(string(f))
		return "", "", err
	}
	if f.IsChord() {
		warning = ChordWarning(h)
	}
	return b.String(), warning, nil
}
