//go:build e2e

package e2e

// End-to-end tests of `crashkey selftest` on the stand-in Windows guest: the real crashkey
// binary boots throw-away overlays of a stand-in disk (scripts/guest/standin-disk.sh) with the
// test guest's kernel and initramfs (direct kernel boot, TCG) through package qemuboot.

import (
	"context"
	"crypto/sha256"
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
// the guest through QMP, the agent and the disk only.
func selftestArgs(t *testing.T, disk string, extra ...string) []string {
	art := guestArtifacts(t)
	cmdline := harness.Config{Mode: "windows"}.KernelCmdline() + " crashkey.out=/dev/null"
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
	cmd := exec.CommandContext(ctx, crashkeyBin(t), selftestArgs(t, disk, "--no-arm", "--keyboards", "ps2", "--triggers", "nmi",
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
