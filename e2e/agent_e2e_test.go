//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/live"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// TestAgent boots a guest running Debian's real qemu-ga (harness.Config.Agent) and arms it
// through the agent: reg import/query by the stand-in's reg command, the temp file removed,
// live preflight's "reboot needed", then a reboot through guest-shutdown after which the
// agent answers again.
func TestAgent(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	g := bootGuest(t, ctx, harness.Config{Agent: true, AllowReboot: true})
	if _, err := g.WaitFor(ctx, 0, func(o harness.Observation) bool { return o.Kind == "agent" }); err != nil {
		t.Fatal(err)
	}
	if o := g.Observations(0); !strings.Contains(observed(o, "agent"), "agent started /dev/vport") {
		t.Fatalf("agent: %s", observed(o, "agent"))
	}
	tg, err := vm.Dial(ctx, vm.Address{QMP: g.QMPAddr()}, vm.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	// qemu-ga needs a moment after it started to open and set up its serial port: what
	// reaches the port before is lost, so the first handshakes may get no answer.
	var ag vm.Agent
	for i := 0; ; i++ {
		if ag, err = tg.Agent(ctx, g.AgentAddr()); err == nil {
			break
		}
		if i == 10 {
			t.Fatal(err)
		}
	}
	defer ag.Close()
	if err := ag.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if ag.Windows(ctx) {
		t.Error("the stand-in's agent reports Windows")
	}
	_, err = ag.Run(ctx, "reg", "query", `HKLM\SYSTEM\CurrentControlSet\Control\CrashControl`)
	var ee *vm.ExitError
	if !errors.As(err, &ee) || ee.Result.ExitCode != 1 || !strings.Contains(string(ee.Result.Stderr), "unable to find") {
		t.Fatalf("query before arming: %v", err)
	}
	plan, err := registry.Arm(registry.ArmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := live.Apply(ctx, ag, plan, live.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.RebootNeeded || !strings.HasPrefix(res.File, "/tmp/crashkey-arm-") {
		t.Errorf("apply: %+v", res)
	}
	if _, err := ag.Run(ctx, "cat", res.File); err == nil {
		t.Errorf("%s left in the guest", res.File)
	}
	rep, err := live.Preflight(ctx, ag, live.PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) == 0 || rep.Problems[0].ID != "reboot-needed" {
		t.Errorf("preflight --live after arming: %+v", rep.Problems)
	}
	if rep.Settings.CrashControl.DumpType() != registry.DumpKernel {
		t.Errorf("dump type read live: %s", rep.Settings.CrashControl.DumpType())
	}

	// The CLI on the same guest (QMP and agent sockets serve one client at a time): preflight
	// --live says a reboot is needed; arm --apply --reboot arms again and reboots through
	// guest-shutdown (qemu-ga runs the guest's /sbin/shutdown -r) and waits for the agent.
	ag.Close()
	tg.Close()
	target := []string{"--qmp", g.QMPAddr(), "--agent", g.AgentAddr()}
	out := mustCrashkey(t, ctx, 1, append([]string{"preflight", "--live", "--json"}, target...)...)
	if !strings.Contains(out, `"reboot-needed"`) || !strings.Contains(out, "armed after the last boot: reboot needed") {
		t.Errorf("preflight --live:\n%s", out)
	}
	n := len(g.Observations(0))
	out = mustCrashkey(t, ctx, 0, append([]string{"arm", "--apply", "--reboot", "--reboot-timeout", "3m", "--json"}, target...)...)
	var r live.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil || !r.Rebooted || r.RebootNeeded {
		t.Errorf("arm --apply --reboot: %v\n%s", err, out)
	}
	if _, err := g.WaitFor(ctx, n, func(o harness.Observation) bool { return o.Kind == "boot" }); err != nil {
		t.Fatalf("no second boot: %v", err)
	}
	// The rebooted guest's agent answers; its registry state was in the initramfs, so it is
	// unarmed again and preflight --live says so (no reboot-needed: nothing armed since boot).
	out = mustCrashkey(t, ctx, 1, append([]string{"preflight", "--live", "--json"}, target...)...)
	if strings.Contains(out, `"reboot-needed"`) {
		t.Errorf("preflight --live after the reboot:\n%s", out)
	}
}

func observed(os []harness.Observation, kind string) string {
	var b strings.Builder
	for _, o := range os {
		if o.Kind == kind {
			b.WriteString(o.Line + "\n")
		}
	}
	return b.String()
}

// TestAgentExecTrigger: crashkey run --trigger exec:notmyfault crashes a stand-in Windows
// guest through its real qemu-ga (guest-exec of sh -c notmyfault, which asks the stand-in for
// its bug check), and the dump is pulled and checked.
func TestAgentExecTrigger(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	disk := winDisk(t, ctx)
	g := bootGuest(t, ctx, harness.Config{
		PVPanic: true, Disks: []harness.Disk{{Path: disk, Format: "qcow2"}},
		Mode: "windows", AllowReboot: true, Agent: true,
	})
	// qemu-ga must have its serial port open before crashkey's single handshake.
	if _, err := g.WaitFor(ctx, 0, func(o harness.Observation) bool { return o.Kind == "agent" }); err != nil {
		t.Fatal(err)
	}
	tg, err := vm.Dial(ctx, vm.Address{QMP: g.QMPAddr()}, vm.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		ag, err := tg.Agent(ctx, g.AgentAddr())
		if err == nil {
			ag.Close()
			break
		}
		if i == 10 {
			t.Fatal(err)
		}
	}
	tg.Close()
	mark := g.Mark()
	rep, _ := winRun(t, ctx, g, disk, 0, "--agent", g.AgentAddr(), "--trigger", "exec:notmyfault")
	sum := winWantDump(t, ctx, rep, dump.BugCheckManuallyInitiated, false, "bitmap kernel")
	winWait(t, ctx, g, mark, "exec-crash")
	if bc := winWait(t, ctx, g, mark, "bugcheck ").Line; winField(bc, "code") != dump.FormatBugCheck(dump.BugCheckManuallyInitiated)[:10] {
		t.Errorf("guest: %s, want 0xE2", bc)
	}
	if d := winWait(t, ctx, g, mark, "dump ").Line; winField(d, "sha256") != sum {
		t.Errorf("the guest wrote %s, crashkey pulled sha256 %s", d, sum)
	}
}
