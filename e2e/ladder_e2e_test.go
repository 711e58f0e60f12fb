//go:build e2e

package e2e

// End-to-end tests of the escalation ladder (`crashkey run --trigger keys,nmi,dump`) on hung
// stand-in Windows guests (crashkey.ignore=): one that ignores its keyboard is crashed by the
// NMI rung; one that ignores keys and NMIs is dumped by the host rung (QEMU's win-dmp writer on
// the header it published).

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/run"
)

// ladderReport is the part of `crashkey run --json` the ladder tests read.
type ladderReport struct {
	winReport
	Rung     string     `json:"rung"`
	Rungs    []run.Rung `json:"rungs"`
	HostDump *hdReport  `json:"host_dump"`
}

// ladderBoot boots a hung windows-mode guest on a fresh stand-in disk (standin-disk.sh args).
func ladderBoot(t *testing.T, ctx context.Context, cfg harness.Config, diskArgs ...string) (*harness.Guest, string) {
	t.Helper()
	disk := winDisk(t, ctx, diskArgs...)
	cfg.PVPanic, cfg.Mode, cfg.AllowReboot = true, "windows", true
	cfg.Disks = []harness.Disk{{Path: disk, Format: "qcow2"}}
	g := bootGuest(t, ctx, cfg)
	if len(cfg.Ignore) > 0 {
		winLine(t, g, 0, "hung ")
	}
	return g, disk
}

// ladderRun runs crashkey run with a ladder and wants exit code want.
func ladderRun(t *testing.T, ctx context.Context, g *harness.Guest, disk, ladder string, want int) *ladderReport {
	t.Helper()
	args := []string{"run", "--qmp", g.QMPAddr(), "--disk", disk, "--json", "--out", t.TempDir(), "--poll", "1s",
		"--timeout", "4m", "--trigger", ladder, "--step-timeout", "25s"}
	start := time.Now()
	stdout, stderr, code := crashkey(t, ctx, args...)
	t.Logf("crashkey %s: exit %d in %v", strings.Join(args, " "), code, time.Since(start).Round(100*time.Millisecond))
	var rep ladderReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("crashkey run --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if code != want {
		t.Fatalf("crashkey run: exit %d (%s), want %d: %s\nstdout:\n%s\nstderr:\n%s", code, rep.Outcome, want, rep.Summary, stdout, stderr)
	}
	return &rep
}

// ladderWantRungs checks what each rung saw.
func ladderWantRungs(t *testing.T, rep *ladderReport, want ...string) {
	t.Helper()
	var got []string
	for _, r := range rep.Rungs {
		got = append(got, r.Trigger+": "+r.Result)
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("rungs %q, want %q", got, want)
	}
}

func TestLadder(t *testing.T) {
	t.Parallel()
	guestArtifacts(t)
	crashkeyBin(t)
	t.Run("ignores keys: nmi", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 6*time.Minute)
		g, disk := ladderBoot(t, ctx, harness.Config{Ignore: []string{"keys"}})
		rep := ladderRun(t, ctx, g, disk, "keys,nmi,dump", 0)
		ladderWantRungs(t, rep, "keys: no crash", "nmi: dumped")
		if rep.Rung != "nmi" || rep.HostDump != nil {
			t.Errorf("rung %q, host dump %v: want the NMI rung's dump", rep.Rung, rep.HostDump)
		}
		winWantDump(t, ctx, &rep.winReport, dump.BugCheckNMIHardwareFailure, false, "bitmap kernel")
		if !strings.Contains(rep.Rungs[0].Detail, "no crash seen within 25s") {
			t.Errorf("keys rung: %s", rep.Rungs[0].Detail)
		}
	})
	t.Run("ignores keys and nmi: host dump", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 6*time.Minute)
		g, disk := ladderBoot(t, ctx, harness.Config{Ignore: []string{"keys", "nmi"}, VMCoreInfo: true, PublishHeader: true})
		p := hdWaitPublished(t, ctx, g)
		rep := ladderRun(t, ctx, g, disk, "keys,nmi,dump", 0)
		ladderWantRungs(t, rep, "keys: no crash", "nmi: no crash", "dump: dumped")
		if rep.Rung != "dump" || rep.HostDump == nil || rep.Dump != nil {
			t.Fatalf("rung %q, host dump %v, pulled %v", rep.Rung, rep.HostDump, rep.Dump)
		}
		if rep.BugCheck == nil || *rep.BugCheck != dump.BugCheckLiveSystemDump {
			t.Errorf("bug check %v, want 0x161", rep.BugCheck)
		}
		hdWantDump(t, ctx, rep.HostDump, p)
		if winCount(g, 0, "windows") == 0 || !strings.Contains(strings.Join(obsLines(g), "\n"), "windows nmi ignored") {
			t.Errorf("the guest did not see (and ignore) the NMI")
		}
	})
}

// TestLadderBugCheckNoDump: a guest that bug-checks on the NMI but writes no dump of its own
// (dumps disabled, no reboot: a dump stack that never finishes) is dumped by the host rung,
// and QEMU's dump holds the guest's bug check from KiBugcheckData, not 0x161.
func TestLadderBugCheckNoDump(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 6*time.Minute)
	g, disk := ladderBoot(t, ctx, harness.Config{VMCoreInfo: true, PublishHeader: true}, "--dump-type", "none", "--no-autoreboot")
	p := hdWaitPublished(t, ctx, g)
	rep := ladderRun(t, ctx, g, disk, "nmi,dump", 0)
	ladderWantRungs(t, rep, "nmi: crashed, no dump", "dump: dumped")
	if rep.BugCheck == nil || *rep.BugCheck != dump.BugCheckNMIHardwareFailure || rep.HostDump == nil || rep.HostDump.Live {
		t.Fatalf("bug check %v, host dump %+v: want 0x80 from the guest's KiBugcheckData", rep.BugCheck, rep.HostDump)
	}
	if rep.HostDump.Check == nil || rep.HostDump.Check.BugCheck.Code != dump.BugCheckNMIHardwareFailure {
		t.Errorf("host dump check: %+v", rep.HostDump.Check)
	}
	p.live = false
	hdWantDump(t, ctx, rep.HostDump, p)
	winLine(t, g, 0, "halt")
}

func obsLines(g *harness.Guest) []string {
	var out []string
	for _, o := range g.Observations(0) {
		out = append(out, o.Line)
	}
	return out
}
