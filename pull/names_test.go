package pull

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOutputName(t *testing.T) {
	long := strings.Repeat("ä", 238) + ".dmp" // 480 bytes: a real 238-character name
	tests := []struct {
		in, want string
		changed  bool
	}{
		{"MEMORY.DMP", "MEMORY.DMP", false},
		{"100%.dmp", "100%.dmp", false},
		{"a:b?.dmp", "a:b?.dmp", false},
		{"Mini.dmp", "Mini.dmp", false},
		{"mini.dmp", "mini.dmp", false},
		{`..\..\etc\passwd`, "", true},
		{"../../x.dmp", "", true},
		{"..", "", true},
		{"", "", true},
		{"a\nb.dmp", "", true},
		{"\x1b]0;owned\x07.dmp", "", true},
		{"report\u202egpj.exe", "", true},
		{"a\xffb.dmp", "", true},
		{long, "", true},
		{strings.Repeat("x", 255), strings.Repeat("x", 255), false},
		{strings.Repeat("x", 256), "", true},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got, why := outputName(tt.in)
		if (why != "") != tt.changed || (tt.want != "" && got != tt.want) {
			t.Errorf("outputName(%q) = %q, %q; want %q (changed %v)", tt.in, got, why, tt.want, tt.changed)
		}
		if len(got) > nameMax || got == "" || got == "." || got == ".." || strings.ContainsAny(got, "/\\\x00\n\x1b") || !utf8.ValidString(got) {
			t.Errorf("outputName(%q) = %q: not a safe local name", tt.in, got)
		}
		if tt.changed && !strings.Contains(got, "~") {
			t.Errorf("outputName(%q) = %q: a changed name carries its hash tag", tt.in, got)
		}
		if prev, ok := seen[got]; ok && prev != tt.in {
			t.Errorf("%q and %q both map to %q", prev, tt.in, got)
		}
		seen[got] = tt.in
		if again, _ := outputName(tt.in); again != got {
			t.Errorf("outputName(%q) is not stable: %q then %q", tt.in, got, again)
		}
	}
	got, _ := outputName(long)
	if !strings.HasSuffix(got, ".dmp") || !strings.HasPrefix(got, "ääää") || len(got) != nameMax {
		// 255 - len("~12345678.dmp") = 242 bytes of stem: 121 'ä'.
		t.Errorf("long name → %q (%d bytes)", got, len(got))
	}
	a, _ := outputName("a/b.dmp")
	b, _ := outputName("a\\b.dmp")
	if a == b {
		t.Errorf("a/b.dmp and a\\b.dmp both map to %q", a)
	}
}
