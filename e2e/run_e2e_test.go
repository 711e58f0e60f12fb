//go:build e2e

package e2e

// End-to-end tests of `crashkey run` against the stand-in Windows guest: the test guest in its
// "windows" mode (e2e/guest/windows.go) boots from a disk built by
// scripts/guest/standin-disk.sh, reads its crash settings from the hive on it, runs the
// keyboard drivers' model on the raw bytes its keyboard delivers, writes its dump into the
// sectors of pagefile.sys, signals pvpanic, reboots and moves the dump to Windows\MEMORY.DMP.
// The real crashkey binary drives it over QMP and must find, pull and check that dump.
//
// Five guests, at most as many at a time as `go test -parallel` allows (GOMAXPROCS: 2 here),
// about 30 s each under TCG.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/run"
)

// winDisk builds a stand-in disk (qcow2) with scripts/guest/standin-disk.sh and the given
// options, using the crashkey binary under test.
func winDisk(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "win.qcow2")
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(repoRoot(t), "scripts", "guest", "standin-disk.sh"), out}, args...)...)
	cmd.Env = append(os.Environ(), "CRASHKEY="+crashkeyBin(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("standin-disk.sh %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// winBoot boots a windows-mode guest on disk with a pvpanic device and reboots allowed, and
// checks what it read from its disk at boot.
func winBoot(t *testing.T, ctx context.Context, disk string, kbds ...harness.Keyboard) *harness.Guest {
	t.Helper()
	g := bootGuest(t, ctx, harness.Config{
		Keyboards:   kbds,
		PVPanic:     true,
		Disks:       []harness.Disk{{Path: disk, Format: "qcow2"}},
		Mode:        "windows",
		AllowReboot: true,
	})
	winLine(t, g, 0, "disk=/dev/vda format=raw scheme=gpt")
	mv := winLine(t, g, 0, "move ")
	if winField(mv, "moved") != "false" {
		t.Fatalf("first boot moved a dump: %s", mv)
	}
	return g
}

// winLine returns the first "windows …" observation from index from on whose text after
// "windows " starts with prefix. It fails the test when there is none.
func winLine(t *testing.T, g *harness.Guest, from int, prefix string) string {
	t.Helper()
	for _, o := range g.Observations(from) {
		if o.Kind == "windows" && strings.HasPrefix(strings.TrimPrefix(o.Line, "windows "), prefix) {
			return o.Line
		}
	}
	t.Fatalf("the guest wrote no \"windows %s…\" line", prefix)
	return ""
}

// winWait waits for a "windows <prefix>…" observation from index from on.
func winWait(t *testing.T, ctx context.Context, g *harness.Guest, from int, prefix string) harness.Observation {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	o, err := g.WaitFor(wctx, from, func(o harness.Observation) bool {
		return o.Kind == "windows" && strings.HasPrefix(strings.TrimPrefix(o.Line, "windows "), prefix)
	})
	if err != nil {
		t.Fatalf("waiting for \"windows %s…\": %v", prefix, err)
	}
	return o
}

// winCount counts the observations of kind from index from on.
func winCount(g *harness.Guest, from int, kind string) int {
	n := 0
	for _, o := range g.Observations(from) {
		if o.Kind == kind {
			n++
		}
	}
	return n
}

// winField returns the value of key=value in an observation line ("" when absent).
func winField(line, key string) string {
	for _, w := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			return v
		}
	}
	return ""
}

// winReport is the part of `crashkey run --json` the tests read.
type winReport struct {
	Outcome  run.Outcome `json:"outcome"`
	Summary  string      `json:"summary"`
	Hotkey   string      `json:"hotkey"`
	Seen     []string    `json:"seen"`
	BugCheck *uint32     `json:"bugcheck"`
	Send     *struct {
		Complete bool   `json:"complete"`
		Sent     string `json:"sent"`
	} `json:"send"`
	Dump *struct {
		Source       string `json:"source"`
		Output       string `json:"output"`
		Size         int64  `json:"size"`
		SHA256       string `json:"sha256"`
		FromPagefile bool   `json:"from_pagefile"`
	} `json:"dump"`
	Check *winCheck `json:"check"`
}

// winCheck is the part of a dump check report (`crashkey check --json`, or run's "check") the
// tests read.
type winCheck struct {
	DumpTypeName string `json:"dump_type_name"`
	Verdict      string `json:"verdict"`
	OK           bool   `json:"ok"`
	BugCheck     struct {
		Code       uint32   `json:"code"`
		Parameters []string `json:"parameters"`
	} `json:"bugcheck"`
}

// winRun runs `crashkey run --qmp … --disk … --json --out DIR` plus args and decodes its
// report; it fails the test unless the exit code is want.
func winRun(t *testing.T, ctx context.Context, g *harness.Guest, disk string, want int, args ...string) (*winReport, string) {
	t.Helper()
	return winRunOn(t, ctx, []string{"--qmp", g.QMPAddr()}, disk, want, args...)
}

// winRunOn is winRun against the target that the target flags name (e.g. --libvirt URI
// --domain NAME).
func winRunOn(t *testing.T, ctx context.Context, target []string, disk string, want int, args ...string) (*winReport, string) {
	t.Helper()
	out := t.TempDir()
	full := append(append([]string{"run"}, target...), "--disk", disk, "--json", "--out", out, "--poll", "1s", "--timeout", "3m")
	full = append(full, args...)
	start := time.Now()
	stdout, stderr, code := crashkey(t, ctx, full...)
	t.Logf("crashkey %s: exit %d in %v", strings.Join(full, " "), code, time.Since(start).Round(100*time.Millisecond))
	var rep winReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("crashkey run --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if code != want || rep.Outcome.ExitCode() != code {
		t.Fatalf("crashkey run: exit %d (outcome %s), want %d: %s\nstdout:\n%s\nstderr:\n%s", code, rep.Outcome, want, rep.Summary, stdout, stderr)
	}
	return &rep, out
}

// winWantDump checks a dump-ok report: the bug check, where the dump came from, the check's
// verdict, the pulled file (its digest and `crashkey check` of it) against what the guest says
// it wrote; it returns the pulled file's digest.
func winWantDump(t *testing.T, ctx context.Context, rep *winReport, code uint32, fromPagefile bool, dumpType string) string {
	t.Helper()
	if rep.Outcome != run.OutcomeDumpOK {
		t.Fatalf("outcome %s, want %s: %s", rep.Outcome, run.OutcomeDumpOK, rep.Summary)
	}
	if rep.BugCheck == nil || *rep.BugCheck != code {
		t.Errorf("report bug check %v, want %s", rep.BugCheck, dump.FormatBugCheck(code))
	}
	if rep.Dump == nil || rep.Check == nil {
		t.Fatalf("report without dump or check: %+v", rep)
	}
	wantSource := `Windows\MEMORY.DMP`
	if fromPagefile {
		wantSource = "pagefile.sys"
	}
	if !strings.EqualFold(rep.Dump.Source, wantSource) || rep.Dump.FromPagefile != fromPagefile {
		t.Errorf("dump from %s (from_pagefile %t), want %s (%t)", rep.Dump.Source, rep.Dump.FromPagefile, wantSource, fromPagefile)
	}
	if !rep.Check.OK || rep.Check.Verdict != dump.Valid.String() {
		t.Errorf("check: ok=%t verdict %s, want a valid dump", rep.Check.OK, rep.Check.Verdict)
	}
	if rep.Check.DumpTypeName != dumpType {
		t.Errorf("dump type %q, want %q", rep.Check.DumpTypeName, dumpType)
	}
	for _, m := range []string{"dump I/O started", "dump found"} {
		if !contains(rep.Seen, m) {
			t.Errorf("seen %v lacks %q", rep.Seen, m)
		}
	}
	f, err := os.Open(rep.Dump.Output)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != rep.Dump.SHA256 || n != rep.Dump.Size {
		t.Errorf("pulled file: %d bytes sha256 %s, report says %d bytes %s", n, sum, rep.Dump.Size, rep.Dump.SHA256)
	}
	out := mustCrashkey(t, ctx, 0, "check", "--json", "--expect-bugcheck", fmt.Sprintf("%#x", code), rep.Dump.Output)
	var chk winCheck
	if err := json.Unmarshal([]byte(out), &chk); err != nil {
		t.Fatalf("crashkey check --json: %v\n%s", err, out)
	}
	if !chk.OK || chk.BugCheck.Code != code || chk.DumpTypeName != dumpType {
		t.Errorf("crashkey check: ok=%t bug check %#x type %q, want ok, %#x and %q", chk.OK, chk.BugCheck.Code, chk.DumpTypeName, code, dumpType)
	}
	return sum
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// winWantCrashed checks the guest's own account of a crash from index from on: the driver
// that fired (empty for an NMI), the bug check, pvpanic CRASH_LOADED and the dump it wrote,
// whose digest it returns.
func winWantCrashed(t *testing.T, ctx context.Context, g *harness.Guest, from int, driver, bus string, code uint32) string {
	t.Helper()
	if driver != "" {
		fired := winWait(t, ctx, g, from, "fired ").Line
		if !strings.HasPrefix(fired, "windows fired "+driver+" bus="+bus+" ") {
			t.Errorf("guest: %s, want the %s model to fire on %s input", fired, driver, bus)
		}
	} else {
		winWait(t, ctx, g, from, "nmi")
	}
	bc := winWait(t, ctx, g, from, "bugcheck ").Line
	if winField(bc, "code") != dump.FormatBugCheck(code)[:10] {
		t.Errorf("guest: %s, want code %s", bc, dump.FormatBugCheck(code))
	}
	if p := winWait(t, ctx, g, from, "panic ").Line; p != "windows panic crash-loaded" {
		t.Errorf("guest: %s, want pvpanic crash-loaded without error", p)
	}
	d := winWait(t, ctx, g, from, "dump ").Line
	if winField(d, "target") != "pagefile.sys" {
		t.Errorf("guest: %s, want the dump in pagefile.sys", d)
	}
	return winField(d, "sha256")
}

func TestRunStandin(t *testing.T) {
	// Build what every case needs once, before the cases run in parallel.
	guestArtifacts(t)
	crashkeyBin(t)

	t.Run("ps2-default-then-nmi", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 5*time.Minute)
		disk := winDisk(t, ctx)
		g := winBoot(t, ctx, disk)

		// The default hotkey on PS/2: i8042prt fires, the dump goes into pagefile.sys, the guest
		// reboots and moves it to MEMORY.DMP, where crashkey finds it.
		mark := g.Mark()
		rep, _ := winRun(t, ctx, g, disk, 0)
		sum := winWantDump(t, ctx, rep, dump.BugCheckManuallyInitiated, false, "bitmap kernel")
		if rep.Send == nil || !rep.Send.Complete || rep.Hotkey != "RCtrl+ScrollLock" {
			t.Errorf("send %+v, hotkey %q", rep.Send, rep.Hotkey)
		}
		if !contains(rep.Seen, "guest reset") {
			t.Errorf("seen %v lacks the guest's reset", rep.Seen)
		}
		if got := winWantCrashed(t, ctx, g, mark, "i8042prt", "ps2", dump.BugCheckManuallyInitiated); got != sum {
			t.Errorf("the guest wrote sha256 %s, crashkey pulled %s", got, sum)
		}
		winWait(t, ctx, g, mark, "reboot")
		mv := winWait(t, ctx, g, mark, "move ")
		if winField(mv.Line, "moved") != "true" || winField(mv.Line, "sha256") != sum || winField(mv.Line, "verified") != "true" || winField(mv.Line, "wiped") != "true" {
			t.Errorf("guest's SMSS step: %s, want the dump %s moved, verified and wiped", mv.Line, sum)
		}
		if winCount(g, mark, harness.KindBoot) != 1 {
			t.Errorf("%d boots after the crash, want 1", winCount(g, mark, harness.KindBoot))
		}

		// An NMI on the rebooted guest: bug check 0x80, and the new dump replaces MEMORY.DMP.
		rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if _, err := g.WaitFor(rctx, mv.Index, func(o harness.Observation) bool { return o.Kind == harness.KindReady }); err != nil {
			t.Fatalf("the guest is not ready again after its reboot: %v", err)
		}
		mark = g.Mark()
		rep, _ = winRun(t, ctx, g, disk, 0, "--trigger", "nmi")
		nmiSum := winWantDump(t, ctx, rep, dump.BugCheckNMIHardwareFailure, false, "bitmap kernel")
		if nmiSum == sum {
			t.Error("the NMI run pulled the earlier dump again")
		}
		if got := winWantCrashed(t, ctx, g, mark, "", "", dump.BugCheckNMIHardwareFailure); got != nmiSum {
			t.Errorf("the guest wrote sha256 %s, crashkey pulled %s", got, nmiSum)
		}
		if p := rep.Check.BugCheck.Parameters; len(p) == 0 || p[0] != "0x4F4454" {
			t.Errorf("NMI dump parameters %v, want the first to be 0x4F4454 (Windows 8+)", p)
		}
	})

	t.Run("usb-chord-then-default", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 5*time.Minute)
		disk := winDisk(t, ctx)
		g := winBoot(t, ctx, disk, harness.USBXHCI)

		// A send-key chord presses Scroll Lock once on USB: kbdhid never fires.
		mark := g.Mark()
		rep, _ := winRun(t, ctx, g, disk, 4, "--method", "chord", "--crash-timeout", "15s")
		if rep.Outcome != run.OutcomeNoCrash || !strings.Contains(rep.Summary, "chord") || !strings.Contains(rep.Summary, "does not crash") {
			t.Errorf("chord: outcome %s, summary %q: want no-crash explained by the chord", rep.Outcome, rep.Summary)
		}
		if n := winCount(g, mark, harness.KindUSB); n == 0 {
			t.Error("the guest received no USB reports from the chord")
		}
		for _, o := range g.Observations(mark) {
			if o.Kind == "windows" {
				t.Errorf("the chord made the guest do something: %s", o.Line)
			}
		}

		// The exact events on the same keyboard: kbdhid fires.
		mark = g.Mark()
		rep, _ = winRun(t, ctx, g, disk, 0)
		sum := winWantDump(t, ctx, rep, dump.BugCheckManuallyInitiated, false, "bitmap kernel")
		if got := winWantCrashed(t, ctx, g, mark, "kbdhid", "usb", dump.BugCheckManuallyInitiated); got != sum {
			t.Errorf("the guest wrote sha256 %s, crashkey pulled %s", got, sum)
		}
	})

	t.Run("custom-hotkey-complete-dump", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 5*time.Minute)
		disk := winDisk(t, ctx, "--hotkey", "lshift+rshift+d", "--dump-type", "complete")
		g := winBoot(t, ctx, disk)
		if l := winLine(t, g, 0, "driver=i8042prt"); winField(l, "registry") != "0x11/0x21" || winField(l, "armed") != "true" {
			t.Errorf("guest armed as %s, want 0x11/0x21 (LShift+RShift+D)", l)
		}
		mark := g.Mark()
		rep, _ := winRun(t, ctx, g, disk, 0, "--hotkey", "lshift+rshift+d")
		sum := winWantDump(t, ctx, rep, dump.BugCheckManuallyInitiated, false, "full")
		if got := winWantCrashed(t, ctx, g, mark, "i8042prt", "ps2", dump.BugCheckManuallyInitiated); got != sum {
			t.Errorf("the guest wrote sha256 %s, crashkey pulled %s", got, sum)
		}
	})

	t.Run("armed-for-usb-keys-to-ps2", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 3*time.Minute)
		disk := winDisk(t, ctx, "--driver", "kbdhid")
		g := winBoot(t, ctx, disk)
		mark := g.Mark()
		rep, _ := winRun(t, ctx, g, disk, 1)
		if rep.Outcome != run.OutcomePreflight || !strings.Contains(rep.Summary, "crashkey arm") || !strings.Contains(rep.Summary, "i8042prt") {
			t.Errorf("outcome %s, summary %q: want a preflight stop naming i8042prt and the crashkey arm fix", rep.Outcome, rep.Summary)
		}
		if rep.Send != nil {
			t.Errorf("keys were sent: %+v", rep.Send)
		}
		time.Sleep(2 * time.Second) // anything sent would have arrived by now
		if n := winCount(g, mark, harness.KindPS2); n != 0 {
			t.Errorf("the guest received %d PS/2 bytes; nothing should have been sent", n)
		}
	})

	// CrashControl\AutoReboot=0: the guest writes its dump and stays at its "blue screen"
	// (running, never rebooting); the dump is in pagefile.sys. `crashkey run` waits for a
	// reboot that never comes (see the report of issue 6), so this case drives the pieces:
	// `crashkey send`, the guest's own account, and `crashkey pull --force-share`.
	t.Run("no-autoreboot-send-and-pull", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 3*time.Minute)
		disk := winDisk(t, ctx, "--no-autoreboot")
		g := winBoot(t, ctx, disk)
		if l := winLine(t, g, 0, "crash "); winField(l, "autoreboot") != "false" {
			t.Fatalf("guest: %s, want autoreboot=false", l)
		}
		mark := g.Mark()
		mustCrashkey(t, ctx, 0, "send", "--qmp", g.QMPAddr())
		sum := winWantCrashed(t, ctx, g, mark, "i8042prt", "ps2", dump.BugCheckManuallyInitiated)
		halt := winWait(t, ctx, g, mark, "halt")
		time.Sleep(3 * time.Second) // a reboot would show as a new boot line by now
		if n := winCount(g, halt.Index, harness.KindBoot); n != 0 {
			t.Errorf("the guest rebooted %d times with AutoReboot=0", n)
		}
		out := t.TempDir()
		js := mustCrashkey(t, ctx, 0, "pull", disk, "--force-share", "--json", "--out", out)
		var res struct {
			Source       string `json:"source"`
			SHA256       string `json:"sha256"`
			FromPagefile bool   `json:"from_pagefile"`
		}
		if err := json.Unmarshal([]byte(js), &res); err != nil {
			t.Fatalf("crashkey pull --json: %v\n%s", err, js)
		}
		if !res.FromPagefile || !strings.EqualFold(res.Source, "pagefile.sys") || res.SHA256 != sum {
			t.Errorf("pulled %s (from_pagefile %t) sha256 %s; want the guest's dump %s cut from pagefile.sys", res.Source, res.FromPagefile, res.SHA256, sum)
		}
	})

	t.Run("stop-after-crash", func(t *testing.T) {
		t.Parallel()
		ctx := testCtx(t, 4*time.Minute)
		disk := winDisk(t, ctx)
		g := winBoot(t, ctx, disk)
		mark := g.Mark()
		rep, _ := winRun(t, ctx, g, disk, 0, "--stop-after-crash")
		sum := winWantDump(t, ctx, rep, dump.BugCheckManuallyInitiated, true, "bitmap kernel")
		if got := winWantCrashed(t, ctx, g, mark, "i8042prt", "ps2", dump.BugCheckManuallyInitiated); got != sum {
			t.Errorf("the guest wrote sha256 %s, crashkey pulled %s", got, sum)
		}
		if !contains(rep.Seen, "guest stopped") {
			t.Errorf("seen %v lacks the stop", rep.Seen)
		}
		select {
		case <-g.Exited():
			t.Fatalf("QEMU exited (%v); the VM should be stopped, not gone", g.ExitErr())
		default:
		}
		q := mustQMP(t, ctx, g.QMPPath())
		if st, err := q.status(ctx); err != nil || (st != "shutdown" && st != "paused") {
			t.Errorf("VM status %q (%v), want it stopped (shutdown or paused)", st, err)
		}
		if n := winCount(g, mark, harness.KindBoot); n != 0 {
			t.Errorf("the guest booted %d times after the crash; its reboot should have stopped the VM", n)
		}
	})
}
