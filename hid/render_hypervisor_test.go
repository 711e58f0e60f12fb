package hid

import (
	"strings"
	"testing"
)

func TestQMSendKey(t *testing.T) {
	if got := QMSendKey(mustHotkey(t, "lshift+rshift+d")); got != "qm sendkey VMID shift-shift_r-d-d" {
		t.Errorf("QMSendKey = %q", got)
	}
	if !FormatQM.IsChord() {
		t.Error("qm is a chord format")
	}
	for _, s := range []string{"incus", "LXD"} {
		_, err := ParseFormat(s)
		if err == nil || !strings.Contains(err.Error(), "has no command or API call that sends keys") {
			t.Errorf("ParseFormat(%q): %v", s, err)
		}
	}
	if f, err := ParseFormat("QM"); err != nil || f != FormatQM {
		t.Errorf("ParseFormat(QM) = %q, %v", f, err)
	}
}
