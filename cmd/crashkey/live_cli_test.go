package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/live/livetest"
	"github.com/crashkey/crashkey/vm/qmptest"
)

func TestArmApplyAndPreflightLive(t *testing.T) {
	s := qmptest.New(t)
	ag := qmptest.NewAgent(t)
	w := livetest.NewWindows()
	ag.Update(func(s *qmptest.Server) { s.Program = w.Program(s) })
	target := []string{"--qmp", s.Addr, "--agent", ag.Addr}

	out, stderr, code := runCrashkey(t, append([]string{"preflight", "--live", "--json"}, target...)...)
	var rep struct {
		OK       bool
		Problems []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitNo || rep.OK {
		t.Fatalf("unarmed: exit %d, %v, %s", code, err, stderr)
	}

	out, stderr, code = runCrashkey(t, append([]string{"arm", "--apply"}, target...)...)
	if code != 0 || !strings.Contains(out, "armed RCtrl+ScrollLock for i8042prt, kbdhid") || !strings.Contains(out, "reboot needed") {
		t.Fatalf("arm --apply: exit %d\n%s%s", code, out, stderr)
	}
	out, _, code = runCrashkey(t, append([]string{"preflight", "--live"}, target...)...)
	if code != ExitNo || !strings.Contains(out, "armed after the last boot: reboot needed") {
		t.Errorf("armed, not rebooted: exit %d\n%s", code, out)
	}
	ag.Update(func(*qmptest.Server) { w.Uptime = "0" })
	out, _, code = runCrashkey(t, append([]string{"preflight", "--live", "--json"}, target...)...)
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK {
		t.Errorf("armed and rebooted: exit %d, %+v\n%s", code, rep, out)
	}

	// Agent failures and usage errors.
	ag.Handle("guest-exec", func(json.RawMessage) (any, *qmptest.Error) {
		return nil, &qmptest.Error{Class: "CommandNotFound", Desc: "The command guest-exec has not been found"}
	})
	_, stderr, code = runCrashkey(t, append([]string{"arm", "--apply"}, target...)...)
	if code != ExitFailed || !strings.Contains(stderr, "guest agent too old") {
		t.Errorf("old agent: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{{"arm", "--apply"}, {"arm", "--reboot"}, {"arm", "--apply", "--qmp", s.Addr}, {"preflight", "--live", "x.img", "--qmp", s.Addr, "--agent", ag.Addr}} {
		if _, stderr, code := runCrashkey(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
}
