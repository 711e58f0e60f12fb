package run

import (
	"strings"
	"testing"
)

func TestParseLadder(t *testing.T) {
	for in, want := range map[string]string{
		"keys":                "keys",
		"keys,nmi,dump":       "keys,nmi,dump",
		" nmi , dump ":        "nmi,dump",
		"dump":                "dump",
		"nmi,exec:cmd /c a,b": "nmi,exec:cmd /c a,b",
		"keys,nmi,dump,dump":  "error: listed twice",
		"dump,nmi":            "error: last rung",
		"keys,bogus":          "error: unknown trigger",
		"keys,":               "error: an empty rung",
		"exec:":               "error: give the command",
	} {
		l, err := ParseLadder(in)
		got := ""
		if err != nil {
			got = "error: " + err.Error()
		} else {
			got = ladderString(l)
		}
		if w, isErr := strings.CutPrefix(want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %s, want an error with %q", in, got, w)
			}
		} else if got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
