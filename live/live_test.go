package live

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/live/livetest"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
	"github.com/crashkey/crashkey/vm/qmptest"
)

func setup(t *testing.T) (*livetest.Windows, *qmptest.Server, vm.Agent) {
	t.Helper()
	f := livetest.NewWindows()
	ag := qmptest.NewAgent(t)
	ag.Update(func(s *qmptest.Server) { s.Program = f.Program(s) })
	return f, ag, dialAgent(t, ag.Addr, time.Second)
}

// dialAgent connects to the agent at addr through a QMP target on a fake monitor.
func dialAgent(t *testing.T, addr string, timeout time.Duration) vm.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tg, err := vm.Dial(ctx, vm.Address{QMP: qmptest.New(t).Addr}, vm.Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	a, err := tg.Agent(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func files(ag *qmptest.Server) int {
	n := 0
	ag.Update(func(s *qmptest.Server) { n = len(s.Files) })
	return n
}

func TestApplyThenPreflight(t *testing.T) {
	f, ag, a := setup(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }

	before, err := Preflight(ctx, a, PreflightOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if before.OK {
		t.Fatalf("unarmed guest passes: %+v", before.Problems)
	}
	plan, err := registry.Arm(registry.ArmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Apply(ctx, a, plan, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if !res.RebootNeeded || len(res.Checks) < 8 || files(ag) != 0 {
		t.Errorf("result %+v, %d files left in the guest", res, files(ag))
	}
	if !strings.HasPrefix(res.File, `C:\Windows\Temp\crashkey-arm-`) {
		t.Errorf("file %s", res.File)
	}
	after, err := Preflight(ctx, a, PreflightOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if after.OK || after.Problems[0].ID != "reboot-needed" || !strings.Contains(after.Problems[0].Message, "armed after the last boot: reboot needed") {
		t.Fatalf("armed, not rebooted: %+v", after.Problems)
	}
	for _, p := range after.Problems {
		if p.Severity == registry.SeverityError && p.ID != "reboot-needed" {
			t.Errorf("armed guest still has %s: %s", p.ID, p.Message)
		}
	}
	// After a reboot (uptime shorter than the time since arming) the report is clean of it.
	now = now.Add(10 * time.Minute)
	ag.Update(func(*qmptest.Server) { f.Uptime = "60.5" })
	rebooted, err := Preflight(ctx, a, PreflightOptions{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rebooted.Problems {
		if p.ID == "reboot-needed" {
			t.Errorf("rebooted guest: %s", p.Message)
		}
	}
}

func TestApplyFailuresCleanUp(t *testing.T) {
	f, ag, a := setup(t)
	plan, _ := registry.Arm(registry.ArmOptions{})
	ag.Update(func(*qmptest.Server) { f.FailImport = "ERROR: Error accessing the registry.\r\n" })
	_, err := Apply(context.Background(), a, plan, Options{})
	var ee *vm.ExitError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "Error accessing the registry") || files(ag) != 0 {
		t.Errorf("failed import: %v, %d files left", err, files(ag))
	}
	ag.Update(func(*qmptest.Server) { f.FailImport, f.Drop = "", "AutoReboot" })
	res, err := Apply(context.Background(), a, plan, Options{})
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), `AutoReboot is (absent), want REG_DWORD 0x1`) || files(ag) != 0 || res == nil {
		t.Errorf("value lost on import: %v, %d files left", err, files(ag))
	}
}

func TestApplyReboot(t *testing.T) {
	_, ag, a := setup(t)
	ag.Update(func(s *qmptest.Server) { s.RebootFor = 2 * time.Second })
	plan, _ := registry.Arm(registry.ArmOptions{})
	res, err := Apply(context.Background(), a, plan, Options{Reboot: true, RebootTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ag.Update(func(s *qmptest.Server) { n = s.Reboots })
	if !res.Rebooted || res.RebootNeeded || n != 1 || files(ag) != 0 {
		t.Errorf("result %+v, %d reboots, %d files", res, n, files(ag))
	}
}

func TestParseRegQuery(t *testing.T) {
	out := "\r\nHKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl\r\n" +
		"    (Default)    REG_SZ    \r\n    CrashDumpEnabled    REG_DWORD    0x2\r\n" +
		"    DumpFile    REG_EXPAND_SZ    %SystemRoot%\\MEMORY.DMP\r\n    Empty    REG_SZ\r\n\r\n" +
		"HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\CrashControl\\StorageTelemetry\r\n"
	vals, err := ParseRegQuery([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := vals["crashdumpenabled"].DWORD(); !ok || n != 2 || vals["dumpfile"].Data != `%SystemRoot%\MEMORY.DMP` || len(vals) != 4 {
		t.Errorf("vals = %+v", vals)
	}
	if _, err := ParseRegQuery([]byte("    garbage line\r\n")); err == nil {
		t.Error("garbage accepted")
	}
	if d, err := ParseUptime([]byte("12.5 40.1\n")); err != nil || d != 12500*time.Millisecond {
		t.Errorf("uptime %v %v", d, err)
	}
	for _, bad := range []string{"", "x", "-1", "1e300"} {
		if _, err := ParseUptime([]byte(bad)); err == nil {
			t.Errorf("uptime %q accepted", bad)
		}
	}
}

func FuzzParseRegQuery(f *testing.F) {
	f.Add([]byte("\r\nHKEY_LOCAL_MACHINE\\X\r\n    A    REG_DWORD    0x1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vals, err := ParseRegQuery(b)
		if err == nil && len(vals) > maxQueryValues {
			t.Fatal("too many values")
		}
		_, _ = ParseUptime(b)
	})
}
