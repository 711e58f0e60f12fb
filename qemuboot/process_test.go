package qemuboot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for QEMU's stderr copier and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// bareArgs is the smallest QEMU command line with a QMP socket: no machine, no devices.
func bareArgs(dir string, extra ...string) []string {
	return append([]string{"-M", "none", "-nodefaults", "-display", "none",
		"-pidfile", filepath.Join(dir, "qemu.pid"),
		"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off"}, extra...)
}

func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	// A zombie ("Z") has exited; it only waits to be reaped.
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// TestLaunchStop launches a real QEMU, talks QMP to it, and checks that Stop kills and reaps it,
// reports the kill as its exit status and leaves the caller's directory alone.
func TestLaunchStop(t *testing.T) {
	needQEMU(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := Launch(ctx, ProcessConfig{QEMU: "qemu-system-x86_64", Args: bareArgs(dir), Dir: dir, QMP: filepath.Join(dir, "qmp.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if reply := qmp(t, filepath.Join(dir, "qmp.sock"), `{"execute":"query-status"}`); !strings.Contains(reply, `"status"`) {
		t.Errorf("query-status: %s", reply)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(p.Pid()) {
		t.Errorf("pid file %q (%v), Pid %d", b, err, p.Pid())
	}
	select {
	case <-p.Exited():
		t.Fatalf("Exited closed while QEMU runs (%v)", p.ExitErr())
	default:
	}
	if p.ExitErr() != nil {
		t.Errorf("ExitErr while running = %v", p.ExitErr())
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited not closed after Stop")
	}
	if alive(p.Pid()) {
		t.Errorf("qemu pid %d still running after Stop", p.Pid())
	}
	if err := p.ExitErr(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("ExitErr after Stop = %v, want the kill", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "qemu.stderr")); err != nil {
		t.Errorf("Stop removed the caller's files: %v", err)
	}
}

// TestLaunchExits checks Exited and ExitErr when QEMU ends by itself (a QMP quit).
func TestLaunchExits(t *testing.T) {
	needQEMU(t)
	dir := t.TempDir()
	p, err := Launch(context.Background(), ProcessConfig{QEMU: "qemu-system-x86_64", Args: bareArgs(dir), Dir: dir, QMP: filepath.Join(dir, "qmp.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	qmp(t, filepath.Join(dir, "qmp.sock"), `{"execute":"quit"}`)
	select {
	case <-p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("QEMU still running 20 s after quit")
	}
	if err := p.ExitErr(); err != nil {
		t.Errorf("ExitErr after quit = %v, want a clean exit", err)
	}
}

// TestLaunchErrors checks that failed launches say why and leave no QEMU running.
func TestLaunchErrors(t *testing.T) {
	needQEMU(t)
	tests := []struct {
		name    string
		qemu    string
		extra   []string
		qmp     string // socket name to wait for
		timeout time.Duration
		want    []string
	}{
		{"bad device", "qemu-system-x86_64", []string{"-device", "no-such-device"}, "qmp.sock", time.Minute,
			[]string{"qemu exited at once", "no-such-device"}},
		{"no binary", "/nonexistent/qemu", nil, "qmp.sock", time.Minute, []string{"install qemu-system-x86"}},
		{"socket never answers", "qemu-system-x86_64", nil, "other.sock", 2 * time.Second,
			[]string{"waiting for the QMP socket", "deadline exceeded"}},
		{"no socket", "qemu-system-x86_64", nil, "", time.Minute, []string{"no QMP socket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var stderr syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			sock := ""
			if tt.qmp != "" {
				sock = filepath.Join(dir, tt.qmp)
			}
			p, err := Launch(ctx, ProcessConfig{QEMU: tt.qemu, Args: bareArgs(dir, tt.extra...), Dir: dir, Stderr: &stderr, QMP: sock})
			if p != nil {
				p.Stop()
				t.Fatal("a failed Launch returned a process")
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want an error with %q", err, w)
				}
			}
			if tt.name == "bad device" && !strings.Contains(stderr.String(), "no-such-device") {
				t.Errorf("Stderr writer got %q, want QEMU's complaint", stderr.String())
			}
			if b, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
				if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && alive(pid) {
					t.Errorf("qemu pid %d still running after a failed Launch", pid)
				}
			}
		})
	}
}
