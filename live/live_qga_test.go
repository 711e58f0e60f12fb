package live

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm/qmptest"
)

// TestApplyRealQGA arms through Debian's real qemu-ga (on the host, on a unix socket), with the
// stand-in guest's reg command (e2e/cmd/reg) as reg.exe, and reads the result back live.
func TestApplyRealQGA(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "reg"), "github.com/crashkey/crashkey/e2e/cmd/reg")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build reg: %v: %s", err, out)
	}
	state := filepath.Join(t.TempDir(), "reg.json")
	addr, dir := qmptest.StartQGA(t, []string{"PATH=" + bin + ":/usr/bin:/bin", "CRASHKEY_REG_STATE=" + state})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := dialAgent(t, addr, 10*time.Second)

	plan, err := registry.Arm(registry.ArmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Apply(ctx, a, plan, Options{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !res.RebootNeeded || len(res.Checks) == 0 {
		t.Errorf("result %+v", res)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "crashkey-arm-*")); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
	// The state the reg command kept, read by it outside the agent (this package's tests do
	// not import e2e packages).
	q := exec.Command(filepath.Join(bin, "reg"), "query", `HKLM\SYSTEM\CurrentControlSet\Services\i8042prt\Parameters`)
	q.Env = []string{"CRASHKEY_REG_STATE=" + state}
	if out, err := q.Output(); err != nil || !strings.Contains(string(out), "CrashOnCtrlScroll    REG_DWORD    0x1") {
		t.Errorf("reg state: %v %q", err, out)
	}
	// Armed just now, the host up for longer: live preflight says a reboot is needed.
	rep, err := Preflight(ctx, a, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || rep.Problems[0].ID != "reboot-needed" {
		t.Errorf("problems %+v", rep.Problems)
	}
	if d := rep.Settings.CrashControl.DumpType(); d != registry.DumpKernel {
		t.Errorf("dump type read back live: %s", d)
	}
	if _, err := os.Stat(state); err != nil {
		t.Error(err)
	}
}
