package registry

import (
	"fmt"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes/layout"
)

// layoutFields reads the plan's hotkey on the layout it was given on.
func (p *Plan) layoutFields(h hid.Hotkey) {
	p.Layout, p.Labels, p.Description, p.Press = h.Layout.String(), h.Labels(), h.Describe(), h.Press()
}

// layoutComments is the comment line that says what to press on a non-US keyboard.
func (p *Plan) layoutComments() []string {
	if p.Layout == "" || p.Layout == layout.Default {
		return nil
	}
	return []string{fmt.Sprintf("on a %s keyboard: %s; %s", p.Layout, p.Press, p.Description)}
}

// applyLayout says, for each armed driver and for the hotkey asked about, what a person at a
// keyboard with layout l (or the asked hotkey's layout, unless US) must press.
func (r *Report) applyLayout(l *layout.Layout, asked *hid.Hotkey) {
	if l == nil && asked != nil && !asked.Layout.IsUS() {
		l = asked.Layout
	}
	if l == nil {
		return
	}
	r.Layout = l.Name
	for i := range r.Drivers {
		d := &r.Drivers[i]
		if d.hotkey != nil {
			h := d.hotkey.On(l)
			d.Labels, d.Press = h.Labels(), h.Press()
		}
	}
	if r.Hotkey != nil && asked != nil {
		h := asked.On(l)
		r.Hotkey.Labels, r.Hotkey.Description, r.Hotkey.Press = h.Labels(), h.Describe(), h.Press()
	}
}

// driverLayoutLine is the text report's line on what to press at the guest's keyboard for a
// driver's armed hotkey ("" without a layout or hotkey).
func (r *Report) driverLayoutLine(d DriverReport) string {
	if r.Layout == "" || d.Press == "" {
		return ""
	}
	return fmt.Sprintf("at a %s keyboard: %s (%s)", r.Layout, d.Press, d.Labels)
}

// hotkeyLayoutLine is the text report's line on the asked hotkey read on the layout.
func (r *Report) hotkeyLayoutLine() string {
	if r.Layout == "" || r.Hotkey == nil || r.Hotkey.Press == "" {
		return ""
	}
	return fmt.Sprintf("at a %s keyboard: %s: %s", r.Layout, r.Hotkey.Press, r.Hotkey.Description)
}
