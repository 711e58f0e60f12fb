package run

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/standin"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/vm"
	"github.com/crashkey/crashkey/vm/qmptest"
)

var (
	crashkeyOnce sync.Once
	crashkeyBin  string
	crashkeyErr  error
)

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// makeDisk builds a stand-in Windows disk (raw GPT + NTFS with a SYSTEM hive and a pagefile)
// with scripts/guest/standin-disk.sh.
func makeDisk(t *testing.T, args ...string) string {
	t.Helper()
	for _, tool := range []string{"mkntfs", "ntfscp", "hivexregedit", "sfdisk", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (scripts/deps.sh installs it)", tool)
		}
	}
	crashkeyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crashkey-run-test")
		if err != nil {
			crashkeyErr = err
			return
		}
		crashkeyBin = filepath.Join(dir, "crashkey")
		out, err := exec.Command("go", "build", "-o", crashkeyBin, filepath.Join(repoRoot(t), "cmd", "crashkey")).CombinedOutput()
		if err != nil {
			crashkeyErr = fmt.Errorf("go build ./cmd/crashkey: %v\n%s", err, out)
		}
	})
	if crashkeyErr != nil {
		t.Fatalf("building crashkey: %v", crashkeyErr)
	}
	out := filepath.Join(t.TempDir(), "win.raw")
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "scripts", "guest", "standin-disk.sh"), out, "--format", "raw"}, args...)...)
	cmd.Env = append(os.Environ(), "CRASHKEY="+crashkeyBin)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("standin-disk.sh: %v\n%s", err, b)
	}
	return out
}

// guest makes the fake monitor behave like a Windows guest armed as its disk says: when the
// planned hotkey (or an NMI) arrives and the driver model fires, it writes the dump into the
// pagefile's sectors, as Windows does, and sends the events QEMU would.
type guest struct {
	t      *testing.T
	srv    *qmptest.Server
	disk   string
	keys   []string
	events func(s *qmptest.Server)
	fired  chan uint32
	once   sync.Once
}

func newGuest(t *testing.T, disk string, keyboards []qmptest.Device) *guest {
	g := &guest{t: t, srv: qmptest.New(t), disk: disk, fired: make(chan uint32, 1)}
	if keyboards != nil {
		g.srv.Update(func(s *qmptest.Server) { s.Devices = keyboards })
	}
	g.srv.Handle("input-send-event", func(args json.RawMessage) (any, *qmptest.Error) {
		var a struct {
			Events []struct {
				Data struct {
					Down bool `json:"down"`
					Key  struct {
						Data any `json:"data"`
					} `json:"key"`
				} `json:"data"`
			} `json:"events"`
		}
		_ = json.Unmarshal(args, &a)
		for _, e := range a.Events {
			sign := "-"
			if e.Data.Down {
				sign = "+"
			}
			g.keys = append(g.keys, sign+toString(e.Data.Key.Data))
		}
		seq, err := hid.ParseSequence(strings.Join(g.keys, " "))
		if err == nil && g.armedFires(seq) {
			g.once.Do(func() { go g.crash(0xE2) }) // a bug check happens once
		}
		return map[string]any{}, nil
	})
	g.srv.Handle("inject-nmi", func(json.RawMessage) (any, *qmptest.Error) {
		g.once.Do(func() { go g.crash(0x80) })
		return map[string]any{}, nil
	})
	return g
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// armedFires runs the stand-in's detector (the disk's own settings) on what was typed.
func (g *guest) armedFires(seq hid.Sequence) bool {
	m, err := standin.Load(g.disk)
	if err != nil {
		g.t.Errorf("standin.Load: %v", err)
		return false
	}
	d := standin.NewDetector(m)
	for _, b := range hid.Set1(seq) {
		if d.FeedPS2(b) {
			return true
		}
	}
	return false
}

func (g *guest) crash(code uint32) {
	m, err := standin.Load(g.disk)
	if err != nil {
		g.t.Errorf("standin.Load: %v", err)
		return
	}
	params := [4]uint64{}
	if code == 0x80 {
		params = standin.NMIParams
	}
	g.srv.Event("GUEST_CRASHLOADED", map[string]any{"action": "run"})
	// the machine of a small test guest: 2 CPUs, 256 MiB in two runs, as QEMU's pc lays it out
	opts := standin.DumpOptions{Processors: 2, UpTime: 90 * time.Second,
		Memory: []standin.MemRange{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x10000000}}}
	if _, err := standin.WriteCrashDumpWith(m, g.disk, code, params, time.Now(), opts); err != nil {
		g.t.Errorf("WriteCrashDump: %v", err)
		return
	}
	g.fired <- code
	if g.events != nil {
		g.events(g.srv)
	}
}

func baseConfig(srv *qmptest.Server, disk string, out string) Config {
	return Config{
		Target:       vm.Address{QMP: srv.Addr},
		VM:           vm.Options{Timeout: 5 * time.Second},
		Disk:         disk,
		OutDir:       out,
		Timeout:      60 * time.Second,
		CrashTimeout: 10 * time.Second,
		Poll:         100 * time.Millisecond,
	}
}

func stepStatus(r *Report, name string) StepStatus {
	for _, s := range r.Steps {
		if s.Name == name {
			return s.Status
		}
	}
	return ""
}

// TestRunStopAfterCrash: default hotkey, the guest writes its dump, its reboot pauses the VM
// (set-action), and the dump is pulled from pagefile.sys and checked.
func TestRunStopAfterCrash(t *testing.T) {
	disk := makeDisk(t)
	g := newGuest(t, disk, nil)
	g.events = func(s *qmptest.Server) {
		s.Event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-reset"})
		s.Event("STOP", nil)
	}
	cfg := baseConfig(g.srv, disk, t.TempDir())
	cfg.StopAfterCrash = true
	var steps []string
	cfg.OnStep = func(s Step) { steps = append(steps, s.Name+":"+string(s.Status)) }
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v\n%+v", err, rep)
	}
	if rep.Outcome != OutcomeDumpOK || rep.ExitCode() != 0 {
		t.Fatalf("outcome %s (%s); steps %v", rep.Outcome, rep.Summary, steps)
	}
	if rep.Dump == nil || !rep.Dump.FromPagefile {
		t.Errorf("dump %+v, want it cut from the pagefile", rep.Dump)
	}
	if rep.BugCheck == nil || *rep.BugCheck != 0xE2 || rep.Check == nil || rep.Check.Verdict != dump.Valid {
		t.Errorf("bugcheck %v, check %+v", rep.BugCheck, rep.Check)
	}
	if got := strings.Join(g.keys, " "); got != hid.Plan(hid.CrashOnCtrlScroll(), hid.DefaultTiming).String() {
		t.Errorf("guest received %q", got)
	}
	cmds := strings.Join(g.srv.Executed(), " ")
	if !strings.Contains(cmds, "set-action") {
		t.Errorf("no set-action among %s", cmds)
	}
	for _, want := range []string{"connect:ok", "preflight:", "prepare:", "trigger:ok", "crash:ok", "dump:ok", "check:ok"} {
		if !strings.Contains(strings.Join(steps, " "), want) {
			t.Errorf("steps %v lack %s", steps, want)
		}
	}
	if _, err := os.Stat(rep.Dump.Output); err != nil {
		t.Error(err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "dump-ok") || !strings.Contains(b.String(), "MANUALLY_INITIATED_CRASH") {
		t.Errorf("text report:\n%s", b.String())
	}
}

// TestRunPreflightStops: the guest is armed for kbdhid only and keys go to its PS/2 keyboard:
// run stops before sending anything, with the fix.
func TestRunPreflightStops(t *testing.T) {
	disk := makeDisk(t, "--driver", "kbdhid")
	g := newGuest(t, disk, nil)
	rep, err := Run(context.Background(), baseConfig(g.srv, disk, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != OutcomePreflight || rep.ExitCode() != 1 || rep.Code != 1 {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Summary)
	}
	if len(g.srv.Keys()) != 0 || len(g.keys) != 0 {
		t.Errorf("keys were sent: %v", g.keys)
	}
	if !strings.Contains(rep.Summary, "crashkey arm") || !strings.Contains(rep.Summary, "i8042prt") {
		t.Errorf("summary lacks the driver and the fix: %s", rep.Summary)
	}
	if stepStatus(rep, "preflight") != StepFailed || stepStatus(rep, "trigger") != "" {
		t.Errorf("steps %+v", rep.Steps)
	}
}

// TestRunNMIAfterPowerOff: an NMI; the guest writes a 0x80 dump and powers off; the dump is
// still in the pagefile and is pulled from there.
func TestRunNMIAfterPowerOff(t *testing.T) {
	disk := makeDisk(t)
	g := newGuest(t, disk, nil)
	g.events = func(s *qmptest.Server) {
		s.Event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-shutdown"})
	}
	cfg := baseConfig(g.srv, disk, t.TempDir())
	cfg.Trigger = Trigger{Kind: TriggerNMI}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != OutcomeDumpOK || rep.BugCheck == nil || *rep.BugCheck != 0x80 {
		t.Fatalf("outcome %s (%s), bugcheck %v", rep.Outcome, rep.Summary, rep.BugCheck)
	}
	if rep.Hotkey != "" {
		t.Errorf("hotkey %q reported for an NMI", rep.Hotkey)
	}
}

// TestRunWrongBugCheck: the dump holds 0x80 but 0xE2 was expected.
func TestRunWrongBugCheck(t *testing.T) {
	disk := makeDisk(t)
	g := newGuest(t, disk, nil)
	g.events = func(s *qmptest.Server) {
		s.Event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-shutdown"})
	}
	cfg := baseConfig(g.srv, disk, t.TempDir())
	cfg.Trigger = Trigger{Kind: TriggerNMI}
	want := uint32(0xE2)
	cfg.ExpectBugCheck = &want
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != OutcomeWrongBugCheck || rep.ExitCode() != 6 || !strings.Contains(rep.Summary, "0x00000080") {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Summary)
	}
}

// TestRunChordOnUSBDoesNotCrash: a send-key chord to a guest whose keys go to a USB keyboard:
// QEMU presses Scroll Lock once, nothing crashes, and the report says why.
func TestRunChordOnUSBDoesNotCrash(t *testing.T) {
	srv := qmptest.New(t)
	srv.Update(func(s *qmptest.Server) {
		s.Devices = append(s.Devices, qmptest.Device{Container: "/machine/peripheral-anon", Name: "device[0]", Type: "usb-kbd"})
	})
	cfg := baseConfig(srv, "", t.TempDir())
	cfg.Chord = true
	cfg.CrashTimeout = 500 * time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != OutcomeNoCrash || rep.ExitCode() != 4 {
		t.Fatalf("outcome %s: %s", rep.Outcome, rep.Summary)
	}
	for _, want := range []string{"usb keyboard", "does not crash", "chord"} {
		if !strings.Contains(rep.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, rep.Summary)
		}
	}
	if !strings.Contains(strings.Join(rep.NotSeen, ","), "crash announced") {
		t.Errorf("not seen: %v", rep.NotSeen)
	}
}

// TestRunExecNeedsAgent: exec without an agent socket is a clear error; with one, the
// command is started through guest-exec.
func TestRunExecNeedsAgent(t *testing.T) {
	srv := qmptest.New(t)
	cfg := baseConfig(srv, "", t.TempDir())
	cfg.Trigger = Trigger{Kind: TriggerExec, Command: `C:\tools\notmyfault64.exe /crash`}
	cfg.CrashTimeout = 500 * time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err == nil || rep.Outcome != OutcomeFailed || !strings.Contains(rep.Summary, "agent") {
		t.Fatalf("err %v, outcome %s: %s", err, rep.Outcome, rep.Summary)
	}
	ag := qmptest.NewAgent(t)
	ag.Update(func(s *qmptest.Server) { s.OSID = "mswindows" })
	cfg.Agent = ag.Addr
	rep, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if execs := ag.Execs(); len(execs) != 1 || !strings.Contains(execs[0], "notmyfault64.exe /crash") {
		t.Errorf("agent execs %v", execs)
	}
	if rep.Outcome != OutcomeNoCrash {
		t.Errorf("outcome %s", rep.Outcome)
	}
}

func TestParseTrigger(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{"", "keys", false}, {"keys", "keys", false}, {"nmi", "nmi", false},
		{"exec:notmyfault64.exe /crash", "exec:notmyfault64.exe /crash", false},
		{"exec:", "", true}, {"reboot", "", true},
	}
	for _, tt := range tests {
		tr, err := ParseTrigger(tt.in)
		if (err != nil) != tt.err || (err == nil && tr.String() != tt.want) {
			t.Errorf("ParseTrigger(%q) = %v, %v", tt.in, tr, err)
		}
	}
}

// TestRunNoAutoReboot: a guest with AutoReboot=0 writes its dump and stays at its bug check
// (no reset, no stop), and the monitor connection then goes away: the dump is taken from
// pagefile.sys once it stops changing.
func TestRunNoAutoReboot(t *testing.T) {
	disk := makeDisk(t, "--no-autoreboot")
	g := newGuest(t, disk, nil)
	g.events = func(s *qmptest.Server) { s.Close() }
	cfg := baseConfig(g.srv, disk, t.TempDir())
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcome != OutcomeDumpOK || rep.Dump == nil || !rep.Dump.FromPagefile {
		t.Fatalf("outcome %s (%s), dump %+v", rep.Outcome, rep.Summary, rep.Dump)
	}
	if !strings.Contains(strings.Join(rep.Steps[len(rep.Steps)-2].Notes, " "), "AutoReboot is 0") {
		t.Errorf("dump step notes %v", rep.Steps[len(rep.Steps)-2].Notes)
	}
}
