//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
)

// TestRunStandinLibvirt runs `crashkey run --libvirt` against the stand-in Windows guest as a
// libvirt domain: the default hotkey goes through the QEMU monitor passthrough, the crash and
// the reboot arrive as libvirt events, and MEMORY.DMP is pulled after the domain restarted.
func TestRunStandinLibvirt(t *testing.T) {
	ctx := testCtx(t, 6*time.Minute)
	startLibvirtd(t, ctx)
	disk := winDisk(t, ctx)
	g := startDomain(t, ctx, harness.Config{
		Keyboards:   []harness.Keyboard{harness.PS2},
		PVPanic:     true,
		Disks:       []harness.Disk{{Path: disk, Format: "qcow2"}},
		Mode:        "windows",
		AllowReboot: true,
	})
	winLine(t, g, 0, "disk=/dev/vda format=raw scheme=gpt")
	mark := g.Mark()

	args := []string{"run", "--libvirt", "qemu:///system", "--domain", g.Domain(), "--disk", disk,
		"--json", "--out", t.TempDir(), "--poll", "1s", "--timeout", "3m"}
	stdout, stderr, code := crashkey(t, ctx, args...)
	var rep winReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("crashkey run --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if code != 0 {
		t.Fatalf("crashkey run --libvirt: exit %d (%s): %s\nstderr:\n%s", code, rep.Outcome, rep.Summary, stderr)
	}
	sum := winWantDump(t, ctx, &rep, dump.BugCheckManuallyInitiated, false, "bitmap kernel")
	if rep.Send == nil || !rep.Send.Complete || !strings.Contains(rep.Send.Sent, "+ctrl_r +scroll_lock -scroll_lock +scroll_lock -scroll_lock") {
		t.Errorf("send %+v", rep.Send)
	}
	if got := winWantCrashed(t, ctx, g, mark, "i8042prt", "ps2", dump.BugCheckManuallyInitiated); got != sum {
		t.Errorf("the guest wrote sha256 %s, crashkey pulled %s", got, sum)
	}
	mv := winWait(t, ctx, g, mark, "move ")
	if winField(mv.Line, "moved") != "true" || winField(mv.Line, "sha256") != sum {
		t.Errorf("guest's SMSS step: %s, want the dump %s moved", mv.Line, sum)
	}
}
