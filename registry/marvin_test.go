package registry

import (
	"encoding/hex"
	"testing"
)

// TestMarvin32 checks the hash against published vectors: .NET's MarvinTests (64-bit
// results) and, for the registry's own seed, a Rust marvin32 crate's tests (results folded
// to 32 bits as hi^lo).
func TestMarvin32(t *testing.T) {
	const seed1 = 0x4FB61A001BDBCC
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0x30ED35C100CD3C7D},
		{"af", 0x48E73FC77D75DDC1},
		{"e70f", 0xB5F6E1FC485DBFF8},
		{"37f495", 0xF0B07C789B8CF7E8},
		{"8642dc59", 0x7008F2E87E9CF556},
		{"153fb79826", 0xE6C08C6DA2AFA997},
		{"0932e6246c47", 0x6F04BF1A5EA24060},
		{"ab427ea8d10fc7", 0xE11847E4F0678C41},
	} {
		b, _ := hex.DecodeString(tc.in)
		if got := marvin32(b, seed1); got != tc.want {
			t.Errorf("marvin32(%s) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want uint32
	}{{"", 0xb00892ac}, {"h", 0xf41a608e}, {"he", 0x11107c6b}, {"hel", 0x24056a46}, {"hell", 0x7f91e021}} {
		h := marvin32([]byte(tc.in), logSeed)
		if got := uint32(h>>32) ^ uint32(h); got != tc.want {
			t.Errorf("marvin32(%q, registry seed) folds to %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
