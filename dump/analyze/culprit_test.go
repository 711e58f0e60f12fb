package analyze

import "testing"

func TestLookupCodeParam(t *testing.T) {
	for _, c := range []struct {
		code  uint32
		index int
		ok    bool
	}{
		{0xD1, 4, true}, {0x1000007E, 2, true}, {0x7E, 2, true}, {0x1000000A, 4, true}, {0x10000050, 3, true},
		{0x3B, 2, true}, {0xE2, 0, false}, {0xC4, 0, false}, {0x10000000, 0, false},
	} {
		p, ok := lookupCodeParam(c.code)
		if ok != c.ok || p.index != c.index {
			t.Errorf("0x%X: parameter %d, %v; want %d, %v", c.code, p.index, ok, c.index, c.ok)
		}
	}
	if !IsMicrosoftModule("NTOSKRNL.EXE") || IsMicrosoftModule("mydriver.sys") {
		t.Error("Microsoft module list")
	}
}
