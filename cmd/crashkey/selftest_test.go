package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelftestNoAgent runs selftest on a blank image under a real QEMU: no guest agent can
// answer, so it stops with exit 1 and the fix, and leaves no QEMU file behind.
func TestSelftestNoAgent(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	img := filepath.Join(tmp, "blank.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	junit := filepath.Join(tmp, "selftest.xml")
	_, stderr, code := runCrashkey(t, "selftest", img, "--no-arm", "--keyboards", "ps2", "--triggers", "nmi",
		"--memory", "64", "--cpus", "1", "--agent-timeout", "3s", "--junit", junit)
	if code != 1 || !strings.Contains(stderr, "no guest agent answers") || !strings.Contains(stderr, "virtio-win's guest tools") {
		t.Fatalf("exit %d, stderr %q: want 1 with the fix", code, stderr)
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Errorf("stderr is more than the TCG warning and one error line: %q", stderr)
	}
	if b, err := os.ReadFile(junit); err != nil || !strings.Contains(string(b), `<error message="selftest: no guest agent answers`) {
		t.Errorf("JUnit XML (%v) does not carry the refusal: %s", err, b)
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if e.Name() != "blank.raw" && e.Name() != "selftest.xml" {
			t.Errorf("%s left behind", e.Name())
		}
	}
}

func TestSelftestUsage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img.raw")
	os.WriteFile(img, []byte("x"), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"selftest", img, "--keyboards", "ps2,hyperv"}, `unknown keyboard "hyperv"`},
		{[]string{"selftest", img, "--triggers", "exec:calc"}, "use keys or nmi"},
		{[]string{"selftest", img, "--ovmf", "code.fd"}, "CODE,VARS"},
		{[]string{"selftest", img + ".missing", "--no-arm"}, "no such file"},
		{[]string{"selftest", img, "--no-arm", "--memory", "8"}, "too small"},
	}
	for _, tt := range tests {
		_, stderr, code := runCrashkey(t, tt.args...)
		if code != ExitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q: want 2 with %q", tt.args, code, stderr, tt.want)
		}
	}
}
