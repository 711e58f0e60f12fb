//go:build e2e

package e2e

// End-to-end tests of `crashkey selftest` on the stand-in Windows guest: the real crashkey
// binary boots throw-away overlays of a stand-in disk (scripts/guest/standin-disk.sh) with the
// test guest's kernel and initramfs (direct kernel boot, TCG) through package qemuboot.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/e2e/harness"
)

// selftestArgs are the selftest arguments that boot the stand-in image disk: its kernel and
// initramfs in windows mode, lean TCG guests. Observation lines go nowhere: selftest watches
// the guest through QMP, the agent and the disk only. Without agent the stand-in plays an
// image without the guest agent installed (crashkey.agent=off): qemuboot's agent channel is
// there, nothing answers on it.
func selftestArgs(t *testing.T, disk string, agent bool, extra ...string) []string {
	art := guestArtifacts(t)
	cmdline := harness.Config{Mode: "windows"}.KernelCmdline() + " crashkey.out=/dev/null"
	if !agent {
		cmdline += " crashkey.agent=off"
	}
	return append([]string{"selftest", disk, "--kernel", art.Kernel, "--initrd", art.Initramfs, "--append", cmdline,
		"--memory", "256", "--cpus", "1"}, extra...)
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestSelftestNoAgent: a stand-in image whose guest runs no agent is refused with the fix,
// nothing is left behind and the image is unchanged.
func TestSelftestNoAgent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	disk := winDisk(t, ctx)
	before := fileSum(t, disk)
	tmp := t.TempDir()
	junit := filepath.Join(tmp, "selftest.xml")
	cmd := exec.CommandContext(ctx, crashkeyBin(t), selftestArgs(t, disk, false, "--no-arm", "--keyboards", "ps2", "--triggers", "nmi",
		"--agent-timeout", "25s", "--junit", junit)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 1 || !strings.Contains(stderr.String(), "no guest agent answers") || !strings.Contains(stderr.String(), "virtio-win's guest tools") {
		t.Fatalf("exit %d (%v), stderr %q: want exit 1 naming the fix", code, err, stderr.String())
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `<error message="selftest: no guest agent answers`) {
		t.Errorf("JUnit XML (%v) does not carry the refusal: %s", err, b)
	}
	if fileSum(t, disk) != before {
		t.Error("selftest wrote the image")
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if e.Name() != "selftest.xml" {
			t.Errorf("%s left behind in TMPDIR", e.Name())
		}
	}
}

// TestSelftestStandin: selftest of a stand-in image passes: PS/2 and USB keyboards × keys and
// NMI, each cell a throw-away overlay armed through the stand-in's real qemu-ga on the
// virtio-serial channel, rebooted, crashed, its dump pulled and checked; the JSON result and
// the JUnit XML say so; the image is unchanged, nothing is left in TMPDIR, no QEMU is left.
func TestSelftestStandin(t *testing.T) {
	// Not parallel: its two QEMUs (--parallel 2) are enough for CI's two cores.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	disk := winDisk(t, ctx)
	before := fileSum(t, disk)
	tmp := t.TempDir()
	junit := filepath.Join(t.TempDir(), "selftest.xml")
	cmd := exec.CommandContext(ctx, crashkeyBin(t), selftestArgs(t, disk, true, "--keyboards", "ps2,usb", "--triggers", "keys,nmi",
		"--parallel", "2", "--timeout", "4m", "--json", "--junit", junit)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("selftest: %v in %v", err, time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("selftest: %v\nstdout:\n%s\nstderr:\n%s", err, clipOut(stdout.String()), stderr.String())
	}
	var res struct {
		Passed bool `json:"passed"`
		Cells  []struct {
			Keyboard, Trigger, Outcome, Summary string
			Passed                              bool
		} `json:"cells"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("selftest --json: %v\n%s", err, stdout.String())
	}
	cells := map[string]bool{}
	for _, c := range res.Cells {
		cells[c.Keyboard+"/"+c.Trigger] = true
		if !c.Passed || c.Outcome != "dump-ok" {
			t.Errorf("cell %s/%s: %s: %s", c.Keyboard, c.Trigger, c.Outcome, c.Summary)
		}
	}
	if !res.Passed || len(res.Cells) != 4 || !cells["ps2/keys"] || !cells["ps2/nmi"] || !cells["usb/keys"] || !cells["usb/nmi"] {
		t.Errorf("result: passed=%t cells %v", res.Passed, cells)
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var x struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string    `xml:"name,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &x); err != nil {
		t.Fatalf("JUnit XML: %v\n%s", err, b)
	}
	n := 0
	for _, s := range x.Suites {
		for _, c := range s.Cases {
			n++
			if c.Failure != nil || c.Error != nil {
				t.Errorf("JUnit test case %s failed", c.Name)
			}
		}
	}
	if n != 4 || x.Tests != 4 || x.Failures != 0 || x.Errors != 0 {
		t.Errorf("JUnit XML: %d test cases, tests=%d failures=%d errors=%d\n%s", n, x.Tests, x.Failures, x.Errors, b)
	}
	if fileSum(t, disk) != before {
		t.Error("selftest wrote the image")
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		for _, e := range ents {
			t.Errorf("%s left behind in TMPDIR", e.Name())
		}
	}
	if procs := processesMentioning(t, tmp); len(procs) != 0 {
		t.Errorf("processes left running: %v", procs)
	}
}

// processesMentioning lists the processes whose command line contains s (selftest's QEMUs
// have their overlays and sockets under its TMPDIR).
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, filepath.Base(filepath.Dir(d))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// clipOut keeps a JSON result readable in a failure message: the run reports inside are long.
func clipOut(s string) string {
	if len(s) > 20000 {
		return s[:20000] + "…"
	}
	return s
}
