package pull

import (
	"bytes"
	"encoding/binary"
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
		{".hidden.dmp", "", true},
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
		if len(got) > nameMax || got == "" || got[0] == '.' || strings.ContainsAny(got, "/\\\x00\n\x1b") || !utf8.ValidString(got) {
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

// FuzzTriageLength: whatever follows a triage dump in a pagefile, the length taken stays
// between SizeOfDump and the limits, and the walk ends.
func FuzzTriageLength(f *testing.F) {
	blob := func(data, post uint32) []byte {
		b := make([]byte, 32+min(data+post, 4096)) // a header may claim more than follows
		binary.LittleEndian.PutUint32(b, 32)
		binary.LittleEndian.PutUint32(b[20:], data)
		binary.LittleEndian.PutUint32(b[28:], post)
		return b
	}
	fh := append([]byte("DumpBlob"), 16, 0, 0, 0, 0x61, 0x4a, 0, 0)
	f.Add(append(append(bytes.Clone(fh), blob(100, 4)...), blob(64, 0)...), int64(0))
	f.Add(append(bytes.Clone(fh), blob(0xFFFFFFF0, 0)...), int64(200))
	f.Add(append([]byte("DumpBlob"), make([]byte, 100)...), int64(0))
	f.Add([]byte("not a blob"), int64(-1))
	f.Fuzz(func(t *testing.T, tail []byte, required int64) {
		const sizeOfDump = 0x100
		data := append(make([]byte, sizeOfDump), tail...)
		n, _, _ := triageLength(bytes.NewReader(data), sizeOfDump, required, int64(len(data)))
		if n < sizeOfDump || n > int64(len(data)) || (required > sizeOfDump && n > required) {
			t.Fatalf("length %d of %d bytes (required %d)", n, len(data), required)
		}
	})
}
