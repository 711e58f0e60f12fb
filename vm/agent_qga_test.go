package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm/qmptest"
)

// TestRealQGA runs the agent calls against the real qemu-ga.
func TestRealQGA(t *testing.T) {
	addr, dir := qmptest.StartQGA(t, nil)
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
	addr, _ := qmptest.StartQGA(t, nil, "guest-exec", "guest-file-open")
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
