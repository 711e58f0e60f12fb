//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
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
			out, errOut, code := crashkey(t, ctx, append(args, "--libvirt", vmLibvirtURI, "--domain", g.Domain())...)
			if code != 3 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
				!strings.Contains(errOut, "no guest agent answers") || !strings.Contains(errOut, "QEMU guest agent is not configured") ||
				!strings.Contains(errOut, "no agent channel: add <channel type='unix'>") ||
				!strings.Contains(errOut, "(virsh -c '"+vmLibvirtURI+"' edit '"+g.Domain()+"')") {
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
	waitAgent(t, ctx, g, 0)
	// libvirtd chose the channel's socket and is connected to the guest's agent.
	x, err := g.Virsh(ctx, "dumpxml", g.Domain())
	if err != nil || !regexp.MustCompile(`<source mode='bind' path='[^']+'/>\s*<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>`).MatchString(x) {
		t.Errorf("domain XML without a connected agent channel: %v\n%s", err, x)
	}
	target := []string{"--libvirt", vmLibvirtURI, "--domain", g.Domain()}

	armAndReboot(t, ctx, g, target)
	// The same domain restarted (on_reboot restart), it was not destroyed and started anew.
	if st, err := g.Virsh(ctx, "domstate", g.Domain()); err != nil || strings.TrimSpace(st) != "running" {
		t.Errorf("domain state after the reboot: %q %v", st, err)
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
