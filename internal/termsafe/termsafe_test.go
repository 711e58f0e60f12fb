package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/crashkey/crashkey/internal/golden"
)

// hostile holds names an attacker could put into an image or a QMP reply.
var hostile = []struct{ name, in string }{
	{"plain", `Windows\Minidump\112026-01.dmp`},
	{"percent and colon", `100%.dmp a:b?.dmp`},
	{"unicode", "Ünïcödé 名前 🦀.dmp"},
	{"newline forges a line", "a.dmp\npulled  \\Windows\\MEMORY.DMP (volume 3) to /etc/passwd"},
	{"carriage return overwrites", "evil.dmp\rgood.dmp"},
	{"tab", "a\tb"},
	{"clear screen", "\x1b[2J\x1b[Hx.dmp"},
	{"recolour", "\x1b[31mred\x1b[0m"},
	{"OSC title BEL", "\x1b]0;owned\x07.dmp"},
	{"OSC title ST", "\x1b]2;owned\x1b\\.dmp"},
	{"OSC 8 hyperlink", "\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\"},
	{"8-bit CSI", "\u009b2J.dmp"},
	{"NEL", "a\u0085b"},
	{"DEL and NUL", "a\x7fb\x00c"},
	{"bell backspace", "\x07\x08\x08x"},
	{"invalid UTF-8", "a\xff\xfeb\xc3"},
	{"RLO spoof", "report\u202egpj.exe"},
	{"isolates and marks", "\u2066a\u2069\u200e\u200f\u061c"},
	{"line separator", "a\u2028b\u2029c"},
}

func TestGolden(t *testing.T) {
	var b strings.Builder
	for _, h := range hostile {
		b.WriteString(h.name + ": " + String(h.in) + "\n")
	}
	golden.CheckString(t, "testdata/hostile.golden", b.String())
}

func TestProperties(t *testing.T) {
	for _, h := range hostile {
		got := String(h.in)
		if !utf8.ValidString(got) {
			t.Errorf("%s: result is not valid UTF-8: %q", h.name, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || unsafeRune(r) {
				t.Errorf("%s: result keeps %U: %q", h.name, r, got)
			}
		}
	}
	if s := `C:\Windows\MEMORY.DMP 名前`; String(s) != s {
		t.Errorf("a safe string changed: %q", String(s))
	}
}

func FuzzString(f *testing.F) {
	for _, h := range hostile {
		f.Add(h.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := String(s)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 out of %q", s)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || unsafeRune(r) {
				t.Fatalf("%U survived in %q", r, got)
			}
		}
		if clean(s) != (got == s) {
			t.Fatalf("clean(%q) = %v but String changed it to %q", s, clean(s), got)
		}
	})
}
