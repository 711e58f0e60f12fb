package vm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm/qmptest"
)

// qgaBlocked are the commands the host's qemu-ga must never run in these tests (it runs on the
// test host itself, not in a guest).
var qgaBlocked = []string{"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
	"guest-set-time", "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fstrim",
	"guest-set-user-password", "guest-set-vcpus", "guest-set-memory-blocks"}

// startQGA runs Debian's real qemu-ga (package qemu-guest-agent, scripts/deps.sh) on a unix
// socket in a temporary directory, with the dangerous commands and extra blocked.
func startQGA(t *testing.T, extra ...string) (addr, dir string) {
	t.Helper()
	bin, err := exec.LookPath("qemu-ga")
	if err != nil {
		bin = "/usr/sbin/qemu-ga"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("qemu-ga not found: install qemu-guest-agent (bash scripts/deps.sh)")
		}
	}
	dir = t.TempDir()
	sock := filepath.Join(dir, "qga.sock")
	cmd := exec.Command(bin, "-m", "unix-listen", "-p", sock, "-t", dir, "-f", filepath.Join(dir, "qga.pid"),
		"-b", strings.Join(append(append([]string(nil), qgaBlocked...), extra...), ","))
	cmd.Stderr = &strings.Builder{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 200 {
			t.Fatalf("qemu-ga did not create %s: %s", sock, cmd.Stderr)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return "unix:" + sock, dir
}

// TestRealQGA runs the agent calls against the real qemu-ga.
func TestRealQGA(t *testing.T) {
	addr, dir := startQGA(t)
	tg := dialFakeTarget(t)
	ctx := context.Background()
	a, err := tg.Agent(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Windows(ctx) {
		t.Error("the Linux host's agent is taken for Windows")
	}
	res, err := a.Run(ctx, "/bin/sh", "-c", "printf 'out\\n'; printf 'err\\n' >&2")
	if err != nil || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 0 {
		t.Fatalf("run: %+v %v", res, err)
	}
	_, err = a.Run(ctx, "/bin/sh", "-c", "echo failing >&2; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Result.ExitCode != 3 || !strings.Contains(err.Error(), "failing") {
		t.Errorf("exit 3: %v", err)
	}
	_, err = a.Run(ctx, "/bin/sh", "-c", "kill -9 $$")
	if !errors.As(err, &ee) || ee.Result.Signal != 9 {
		t.Errorf("killed: %v", err)
	}
	if _, err := a.Run(ctx, filepath.Join(dir, "no-such-program")); err == nil {
		t.Error("a missing program ran")
	}

	file := filepath.Join(dir, "crashkey.reg")
	data := []byte(strings.Repeat("Windows Registry Editor Version 5.00\r\n", 3000)) // several chunks
	if err := a.WriteFile(ctx, file, data); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != string(data) {
		t.Fatalf("written file: %d bytes, %v", len(got), err)
	}
	if err := a.RemoveFile(ctx, file); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
}

// TestRealQGADenied: a command the agent disables is ErrAgentDenied, with the fix.
func TestRealQGADenied(t *testing.T) {
	addr, _ := startQGA(t, "guest-exec", "guest-file-open")
	a, err := dialFakeTarget(t).Agent(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Run(context.Background(), "/bin/true"); !errors.Is(err, ErrAgentDenied) {
		t.Errorf("blocked guest-exec: %v", err)
	}
	if err := a.WriteFile(context.Background(), "/nonexistent/x", []byte("x")); !errors.Is(err, ErrAgentDenied) {
		t.Errorf("blocked guest-file-open: %v", err)
	}
}

// dialFakeTarget is a QMP target on a fake monitor (the agent socket is separate).
func dialFakeTarget(t *testing.T) Target {
	return dialFake(t, qmptest.New(t), Options{Timeout: 5 * time.Second})
}
