package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/vm/qmptest"
)

// TestFleetSend sends the hotkey to two guests at once and reports a third target that does
// not exist: each guest gets the whole sequence, the paused one refuses, and the exit code is
// the worst outcome.
func TestFleetSend(t *testing.T) {
	a, b, paused := qmptest.New(t), qmptest.New(t), qmptest.New(t)
	paused.Update(func(s *qmptest.Server) { s.Status = "paused" })
	missing := "unix:" + filepath.Join(t.TempDir(), "gone.qmp")
	stdout, stderr, code := runCrashkey(t, "send", "--qmp", a.Addr, "--qmp", b.Addr, "--qmp", paused.Addr, "--qmp", missing,
		"--step", "1ms", "--settle", "1ms", "--parallel", "2", "--json")
	if code != 3 || stderr != "" {
		t.Fatalf("exit %d, want 3 (one target cannot be reached); stderr %q", code, stderr)
	}
	want := "+ctrl_r +scroll_lock -scroll_lock +scroll_lock -scroll_lock -ctrl_r"
	for _, s := range []*qmptest.Server{a, b} {
		if got := strings.Join(s.Keys(), " "); got != want {
			t.Errorf("%s received %q, want %q", s.Addr, got, want)
		}
	}
	if k := paused.Keys(); len(k) != 0 {
		t.Errorf("the paused guest received %v", k)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 4 targets and a summary:\n%s", len(lines), stdout)
	}
	codes := map[string]int{}
	for _, l := range lines[:4] {
		var r struct {
			Target string `json:"target"`
			Code   int    `json:"exit_code"`
			Report struct {
				Result struct {
					Complete bool `json:"complete"`
				} `json:"result"`
			} `json:"report"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		codes[r.Target] = r.Code
		if r.Code == 0 && !r.Report.Result.Complete {
			t.Errorf("%s: exit 0 but the report says incomplete: %s", r.Target, l)
		}
	}
	wantCodes := map[string]int{"qmp " + a.Addr: 0, "qmp " + b.Addr: 0, "qmp " + paused.Addr: 1, "qmp " + missing: 3}
	for k, v := range wantCodes {
		if codes[k] != v {
			t.Errorf("%s: exit %d, want %d", k, codes[k], v)
		}
	}
	var sum struct {
		Summary struct {
			Targets, OK, Failed int
			Code                int `json:"exit_code"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[4]), &sum); err != nil || sum.Summary.Targets != 4 || sum.Summary.OK != 2 || sum.Summary.Code != 3 {
		t.Errorf("summary %s (%v)", lines[4], err)
	}
}

// TestFleetStatusText: the text form prints a line per target and a table, from a targets file.
func TestFleetStatusText(t *testing.T) {
	a, b := qmptest.New(t), qmptest.New(t)
	withUSB(b)
	file := filepath.Join(t.TempDir(), "targets")
	os.WriteFile(file, []byte("# two guests\n"+a.Addr+"\n"+b.Addr+" disk=/ignored.qcow2\n"), 0o644)
	stdout, _, code := runCrashkey(t, "status", "--targets", file)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	for _, want := range []string{
		"[ok]    qmp " + a.Addr + ": running; keys go to ps2 i8042 (i8042prt)",
		"[ok]    qmp " + b.Addr + ": running; keys go to usb usb-kbd (kbdhid); panic devices pvpanic",
		"TARGET", "2 targets: 2 ok, 0 not (2× exit 0); exit 0",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("%q not in\n%s", want, stdout)
		}
	}
	_, stderr, code := runCrashkey(t, "status", "--targets", file, "--qmp", a.Addr)
	if code != 2 || !strings.Contains(stderr, "targets") {
		t.Errorf("--targets with --qmp: exit %d: %s", code, stderr)
	}
	_, stderr, code = runCrashkey(t, "run", "--qmp", a.Addr, "--qmp", b.Addr, "--disk", "/x.qcow2")
	if code != 2 || !strings.Contains(stderr, "disk=IMAGE") {
		t.Errorf("run --disk with two targets: exit %d: %s", code, stderr)
	}
}

// dump works on one guest: several targets are refused before anything is dialled (exit 2),
// with a line that says what to give instead.
func TestDumpRefusesFleet(t *testing.T) {
	a, b := qmptest.New(t), qmptest.New(t)
	out := t.TempDir()
	_, stderr, code := runCrashkey(t, "dump", "--qmp", a.Addr, "--qmp", b.Addr, "--out", out)
	if code != ExitUsage || !strings.Contains(stderr, "works on one guest") || !strings.Contains(stderr, "one --qmp") {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, stderr)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("dump left %d files in --out", len(entries))
	}
}
