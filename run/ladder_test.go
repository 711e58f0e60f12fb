package run

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm/qmptest"
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

// TestRunLadder: the disk arms kbdhid only and keys go to the PS/2 keyboard, so the preflight
// skips the keys rung (instead of stopping the run) and the NMI rung crashes the guest, whose
// dump is pulled and checked against the NMI's own bug check.
func TestRunLadder(t *testing.T) {
	disk := makeDisk(t, "--driver", "kbdhid")
	g := newGuest(t, disk, nil)
	g.events = func(s *qmptest.Server) {
		s.Event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-reset"})
		s.Event("STOP", nil)
	}
	cfg := baseConfig(g.srv, disk, t.TempDir())
	cfg.StopAfterCrash = true
	cfg.Ladder = []Trigger{{Kind: TriggerKeys}, {Kind: TriggerNMI}}
	cfg.StepTimeout = 2 * time.Second
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%+v", err, rep)
	}
	if rep.Outcome != OutcomeDumpOK || rep.Rung != "nmi" || rep.Trigger != "keys,nmi" {
		t.Fatalf("outcome %s (%s), rung %q, trigger %q", rep.Outcome, rep.Summary, rep.Rung, rep.Trigger)
	}
	if len(rep.Rungs) != 2 || rep.Rungs[0].Result != "skipped" || !strings.Contains(rep.Rungs[0].Detail, "i8042prt") ||
		rep.Rungs[1].Result != "dumped" || !rep.Rungs[1].Worked {
		t.Errorf("rungs %+v", rep.Rungs)
	}
	if len(g.keys) != 0 {
		t.Errorf("keys were sent to a guest that cannot crash on them: %v", g.keys)
	}
	if rep.BugCheck == nil || *rep.BugCheck != 0x80 {
		t.Errorf("bug check %v, want the NMI's 0x80", rep.BugCheck)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "rung:     keys     skipped") {
		t.Errorf("text report:\n%s", b.String())
	}
}
