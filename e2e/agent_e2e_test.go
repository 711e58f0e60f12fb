//go:build e2e

package e2e

import (
	"context"
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
	// qemu-ga must have its port open before crashkey's single handshake.
	waitAgent(t, ctx, g, 0)
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

// TestAgentArmReboot: an unarmed stand-in Windows guest is armed through its real qemu-ga and
// crashed with keys, as a user arms a running Windows guest: preflight --live says it is not
// armed; arm --apply --reboot writes the values (the stand-in keeps them on its disk, reg
// query shows them at once) and restarts it; at the next boot the keyboard model is armed,
// preflight --live says so, and crashkey run's keys crash it and the dump is pulled and
// checked.
func TestAgentArmReboot(t *testing.T) {
	ctx := testCtx(t, 6*time.Minute)
	disk := winDisk(t, ctx, "--unarmed")
	g := bootGuest(t, ctx, harness.Config{
		PVPanic: true, Disks: []harness.Disk{{Path: disk, Format: "qcow2"}},
		Mode: "windows", AllowReboot: true, Agent: true,
	})
	waitAgent(t, ctx, g, 0)
	target := []string{"--qmp", g.QMPAddr(), "--agent", g.AgentAddr()}
	armAndReboot(t, ctx, g, target)

	// The stand-in keeps imported values beside its SYSTEM hive (standin.RegStatePath), not in
	// it as Windows does, so run's offline preflight of the disk still reads the unarmed hive:
	// --force goes on, and the keys that fire show the armed keyboard model.
	mark := g.Mark()
	wr, _ := winRun(t, ctx, g, disk, 0, "--force")
	sum := winWantDump(t, ctx, wr, dump.BugCheckManuallyInitiated, false, "bitmap kernel")
	if f := winWait(t, ctx, g, mark, "fired ").Line; !strings.Contains(f, "bus=ps2") {
		t.Errorf("guest: %s", f)
	}
	if d := winWait(t, ctx, g, mark, "dump ").Line; winField(d, "sha256") != sum {
		t.Errorf("the guest wrote %s, crashkey pulled sha256 %s", d, sum)
	}
}

// waitAgent waits until the guest's qemu-ga (started at or after observation from) answers a
// ping, over its socket or, for a libvirt domain, through libvirt: what reaches its port before
// it set the port up is lost, and libvirtd connects to the channel only when the guest opens it.
func waitAgent(t *testing.T, ctx context.Context, g *harness.Guest, from int) {
	t.Helper()
	o, err := g.WaitFor(ctx, from, func(o harness.Observation) bool { return o.Kind == "agent" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Line, "agent started /dev/vport") {
		t.Fatalf("agent: %s", o.Line)
	}
	addr := vm.Address{QMP: g.QMPAddr()}
	if g.Domain() != "" {
		addr = vm.Address{LibvirtURI: vmLibvirtURI, Domain: g.Domain()}
	}
	tg, err := vm.Dial(ctx, addr, vm.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	for i := 0; ; i++ {
		ag, err := tg.Agent(ctx, g.AgentAddr())
		if err == nil {
			err = ag.Ping(ctx)
			ag.Close()
			if err == nil {
				return
			}
		}
		if i == 20 {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// armAndReboot arms an unarmed stand-in Windows guest whose agent answers through the target
// flags, as a user arms a running Windows guest: preflight --live says it is not armed; arm
// --apply --reboot writes the values (the stand-in keeps them on its disk, reg query shows them
// at once), restarts it and waits for its agent; at the next boot the keyboard model is armed
// and preflight --live says so.
func armAndReboot(t *testing.T, ctx context.Context, g *harness.Guest, target []string) {
	t.Helper()
	if l := winLine(t, g, 0, "driver=i8042prt"); winField(l, "armed") != "false" {
		t.Fatalf("the unarmed disk boots armed: %s", l)
	}
	rep := livePreflight(t, ctx, 1, target)
	if rep.OK || hasProblem(rep, "reboot-needed") || rep.Settings.CrashControl.DumpType() != registry.DumpNone {
		t.Errorf("preflight --live before arming: ok=%t dump %s problems %+v", rep.OK, rep.Settings.CrashControl.DumpType(), rep.Problems)
	}

	n := len(g.Observations(0))
	out := mustCrashkey(t, ctx, 0, append([]string{"arm", "--apply", "--reboot", "--reboot-timeout", "3m", "--json"}, target...)...)
	var r live.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil || !r.Rebooted || r.RebootNeeded || len(r.Checks) == 0 {
		t.Fatalf("arm --apply --reboot: %v\n%s", err, out)
	}
	if !strings.HasPrefix(r.File, "/tmp/crashkey-arm-") {
		t.Errorf("arm --apply wrote %q, want a file in the guest's temp folder", r.File)
	}
	if _, err := g.WaitFor(ctx, n, func(o harness.Observation) bool { return o.Kind == "boot" }); err != nil {
		t.Fatalf("no second boot: %v", err)
	}
	// The next boot read the imported values from the disk: the keyboard model is armed.
	winWait(t, ctx, g, n, "move ")
	if l := winLine(t, g, n, "controlset="); winField(l, "imported") == "0" {
		t.Errorf("second boot: %s", l)
	}
	if l := winLine(t, g, n, "driver=i8042prt"); winField(l, "armed") != "true" {
		t.Fatalf("second boot: %s", l)
	}
	waitAgent(t, ctx, g, n)
	rep = livePreflight(t, ctx, 0, target)
	if !rep.OK || hasProblem(rep, "reboot-needed") || rep.Settings.CrashControl.DumpType() != registry.DumpKernel {
		t.Errorf("preflight --live after the reboot: ok=%t dump %s problems %+v", rep.OK, rep.Settings.CrashControl.DumpType(), rep.Problems)
	}
}

// livePreflight runs crashkey preflight --live --json and decodes its report.
func livePreflight(t *testing.T, ctx context.Context, code int, target []string) *registry.Report {
	t.Helper()
	out := mustCrashkey(t, ctx, code, append([]string{"preflight", "--live", "--json"}, target...)...)
	var rep registry.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Settings == nil {
		t.Fatalf("preflight --live --json: %v\n%s", err, out)
	}
	return &rep
}

func hasProblem(rep *registry.Report, id string) bool {
	for _, p := range rep.Problems {
		if p.ID == id {
			return true
		}
	}
	return false
}
