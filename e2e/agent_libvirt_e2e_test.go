//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/live"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// TestAgentLibvirt arms an unarmed stand-in Windows guest that runs as a libvirt domain with a
// guest agent channel, through the domain's agent as libvirt reaches it (no agent socket of
// crashkey's own): preflight --live says it is not armed; arm --apply --reboot imports the
// values and has libvirt restart the guest through its agent (virDomainReboot with the agent
// flag: guest-shutdown mode reboot) and waits until the agent answers again; the next boot arms
// the keyboard model and preflight --live says so; run --trigger exec:notmyfault crashes it
// through the agent and the dump is pulled from the domain's disk and checked. First, a domain
// without an agent channel is refused with the fix.
func TestAgentLibvirt(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 8*time.Minute)
	startLibvirtd(t, ctx)

	t.Run("no agent channel", func(t *testing.T) {
		// The domain only has to run: libvirt answers from its definition that it has no
		// agent, before the guest has booted.
		g, err := harness.StartLibvirt(ctx, harness.Config{Artifacts: guestArtifacts(t)}, harness.LibvirtOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := g.Stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		}()
		for _, args := range [][]string{
			{"preflight", "--live"},
			{"arm", "--apply"},
		} {
			out, errOut, code := crashkey(t, ctx, append(args, "--libvirt", "qemu:///system", "--domain", g.Domain())...)
			if code != 3 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
				!strings.Contains(errOut, "no guest agent answers") || !strings.Contains(errOut, "QEMU guest agent is not configured") ||
				!strings.Contains(errOut, "no agent channel: add <channel type='unix'>") {
				t.Errorf("crashkey %s on a domain without an agent channel: exit %d, want 3 and one error line with the fix\nstdout:\n%s\nstderr:\n%s",
					strings.Join(args, " "), code, out, errOut)
			}
			t.Logf("crashkey %s: exit %d: %s", args[0], code, strings.TrimSpace(errOut))
		}
	})
	if t.Failed() {
		return
	}

	disk := winDisk(t, ctx, "--unarmed")
	g := startDomain(t, ctx, harness.Config{
		PVPanic: true, Disks: []harness.Disk{{Path: disk, Format: "qcow2"}},
		Mode: "windows", AllowReboot: true, Agent: true,
	})
	if g.AgentAddr() != "" {
		t.Errorf("AgentAddr = %q for a libvirt domain, want empty (libvirt owns the channel)", g.AgentAddr())
	}
	if l := winLine(t, g, 0, "driver=i8042prt"); winField(l, "armed") != "false" {
		t.Fatalf("the unarmed disk boots armed: %s", l)
	}
	waitAgentLibvirt(t, ctx, g, 0)
	// libvirtd chose the channel's socket and is connected to the guest's agent.
	x, err := g.Virsh(ctx, "dumpxml", g.Domain())
	if err != nil || !regexp.MustCompile(`<source mode='bind' path='[^']+'/>\s*<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>`).MatchString(x) {
		t.Errorf("domain XML without a connected agent channel: %v\n%s", err, x)
	}
	target := []string{"--libvirt", "qemu:///system", "--domain", g.Domain()}

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
	// The same domain restarted (on_reboot restart), it was not destroyed and started anew.
	if st, err := g.Virsh(ctx, "domstate", g.Domain()); err != nil || strings.TrimSpace(st) != "running" {
		t.Errorf("domain state after the reboot: %q %v", st, err)
	}
	winWait(t, ctx, g, n, "move ")
	if l := winLine(t, g, n, "controlset="); winField(l, "imported") == "0" {
		t.Errorf("second boot: %s", l)
	}
	if l := winLine(t, g, n, "driver=i8042prt"); winField(l, "armed") != "true" {
		t.Fatalf("second boot: %s", l)
	}
	waitAgentLibvirt(t, ctx, g, n)
	rep = livePreflight(t, ctx, 0, target)
	if !rep.OK || hasProblem(rep, "reboot-needed") || rep.Settings.CrashControl.DumpType() != registry.DumpKernel {
		t.Errorf("preflight --live after the reboot: ok=%t dump %s problems %+v", rep.OK, rep.Settings.CrashControl.DumpType(), rep.Problems)
	}

	// The stand-in keeps imported values beside its SYSTEM hive (standin.RegStatePath), so
	// run's offline preflight of the disk still reads the unarmed hive: --force goes on.
	mark := g.Mark()
	wr, _ := winRunOn(t, ctx, target, disk, 0, "--force", "--trigger", "exec:notmyfault")
	sum := winWantDump(t, ctx, wr, dump.BugCheckManuallyInitiated, false, "bitmap kernel")
	winWait(t, ctx, g, mark, "exec-crash")
	if d := winWait(t, ctx, g, mark, "dump ").Line; winField(d, "sha256") != sum {
		t.Errorf("the guest wrote %s, crashkey pulled sha256 %s", d, sum)
	}
}

// waitAgentLibvirt waits until the domain's qemu-ga (started at or after observation from)
// answers a ping through libvirt: libvirt connects to the channel when the guest opens its
// port, and what reaches the port before qemu-ga set it up is lost.
func waitAgentLibvirt(t *testing.T, ctx context.Context, g *harness.Guest, from int) {
	t.Helper()
	o, err := g.WaitFor(ctx, from, func(o harness.Observation) bool { return o.Kind == "agent" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.Line, "agent started /dev/vport") {
		t.Fatalf("agent: %s", o.Line)
	}
	tg, err := vm.Dial(ctx, vm.Address{LibvirtURI: "qemu:///system", Domain: g.Domain()}, vm.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	ag, err := tg.Agent(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	for i := 0; ; i++ {
		if err = ag.Ping(ctx); err == nil {
			return
		}
		if i == 20 {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
