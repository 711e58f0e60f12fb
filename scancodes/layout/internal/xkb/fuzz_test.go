package xkb

import "testing"

// FuzzParseSymbols: any input gives sections or an error, never a panic or a hang.
func FuzzParseSymbols(f *testing.F) {
	f.Add(`default partial alphanumeric_keys
xkb_symbols "basic" {
    include "latin(type4)"
    name[Group1]="German";
    key.type[Group1]="FOUR_LEVEL";
    key <AE01> { [ 1, exclam, onesuperior, exclamdown ] };
    key <AC01> { type[Group1]="ALPHABETIC", symbols[Group1]= [ a, A ], actions[Group1]= [ SetMods(modifiers=Shift) ] };
    modifier_map Mod5 { <LVL3> };
    replace key <RALT> { [ ISO_Level3_Shift ] };
};`)
	f.Add(`xkb_symbols "x" { key <A> { [ a, ] }; };`)
	f.Add(`xkb_symbols "x" { key <A> { [ { a, b } ] }; }`)
	f.Fuzz(func(t *testing.T, src string) {
		secs, err := ParseSymbols(src)
		if err == nil {
			for _, s := range secs {
				_ = s.Stmts
			}
		}
	})
}

func TestParseSymbols(t *testing.T) {
	secs, err := ParseSymbols(`default partial xkb_symbols "basic" {
    include "latin(type4)"
    name[Group1]="German";
    key <AE01> { [ 1, exclam ] };
    key <AC01> { type[Group1]="ALPHABETIC", symbols[Group1]= [ a, A ] };
    augment key <AB01> { [ y, Y ], [ Cyrillic_ya ] };
};
xkb_symbols "other" { key.type = "TWO_LEVEL"; key <AE02> { [ 2, at ] }; };`)
	if err != nil || len(secs) != 2 {
		t.Fatalf("ParseSymbols = %d sections, %v", len(secs), err)
	}
	s := secs[0]
	if !s.Default || s.Name != "basic" || s.Description != "German" || len(s.Stmts) != 4 {
		t.Fatalf("section = %+v", s)
	}
	want := []Stmt{
		{Merge: "override", Include: "latin(type4)"},
		{Merge: "override", Key: "AE01", Syms: []string{"1", "exclam"}},
		{Merge: "override", Key: "AC01", Syms: []string{"a", "A"}, Typed: true},
		{Merge: "augment", Key: "AB01", Syms: []string{"y", "Y"}},
	}
	for i, w := range want {
		g := s.Stmts[i]
		if g.Merge != w.Merge || g.Include != w.Include || g.Key != w.Key || g.Typed != w.Typed || len(g.Syms) != len(w.Syms) {
			t.Errorf("stmt %d = %+v, want %+v", i, g, w)
			continue
		}
		for j := range w.Syms {
			if g.Syms[j] != w.Syms[j] {
				t.Errorf("stmt %d syms = %v, want %v", i, g.Syms, w.Syms)
			}
		}
	}
	if st := secs[1].Stmts[0]; !st.Typed || st.Key != "AE02" {
		t.Errorf("key.type default: %+v", st)
	}
}
