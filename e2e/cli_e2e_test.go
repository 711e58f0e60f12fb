//go:build e2e

package e2e

// End-to-end tests of `crashkey send`, `nmi`, `watch` and `status`: the real binary against the
// real test guest. They run on the guests booted by vm_e2e_test.go and libvirt_e2e_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/hid"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// crashkeyBin builds cmd/crashkey once per test binary.
func crashkeyBin(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ck-bin-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "crashkey")
		cmd := exec.Command("go", "build", "-o", cliPath, "./cmd/crashkey")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = errors.New("go build ./cmd/crashkey: " + err.Error() + "\n" + string(out))
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// crashkey runs the binary and returns stdout, stderr and the exit code.
func crashkey(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, crashkeyBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("crashkey %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// mustCrashkey runs crashkey and fails the test unless it exits with want.
func mustCrashkey(t *testing.T, ctx context.Context, want int, args ...string) string {
	t.Helper()
	out, errOut, code := crashkey(t, ctx, args...)
	if code != want {
		t.Fatalf("crashkey %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// cliKeyboards drives `crashkey status` and `crashkey send` (default and custom hotkeys) on
// a guest whose receiving keyboard is on bus, and on the PS/2 guest also a paused guest and a
// connection cut midway.
func cliKeyboards(t *testing.T, ctx context.Context, g *harness.Guest, mon2, bus string) {
	t.Helper()
	target := []string{"--qmp", g.QMPAddr()}
	var st struct {
		State    string `json:"state"`
		Running  bool   `json:"running"`
		Receiver struct {
			Bus    string `json:"bus"`
			Driver string `json:"driver"`
		} `json:"receiver"`
	}
	out := mustCrashkey(t, ctx, 0, append([]string{"status", "--json"}, target...)...)
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Running || st.Receiver.Bus != bus {
		t.Fatalf("crashkey status --json = %s (%v), want running with %s receiving", out, err, bus)
	}

	for _, spec := range vmHotkeys {
		h := vmHotkey(t, spec)
		m := g.Mark()
		out := mustCrashkey(t, ctx, 0, append([]string{"send", "--hotkey", spec}, target...)...)
		if !strings.Contains(out, "sent (events, ") || !strings.Contains(out, "keys go to: "+bus+" keyboard") {
			t.Errorf("crashkey send --hotkey %s printed:\n%s", spec, out)
		}
		vmWantStream(t, ctx, g, bus, m, hid.Plan(h, hid.DefaultTiming), h, true)
	}
	// The registry-value flags and JSON output.
	h := vmHotkey(t, "0x11/1")
	m := g.Mark()
	out = mustCrashkey(t, ctx, 0, append([]string{"send", "--dump1keys", "lshift+rshift", "--dump2key", "1", "--json"}, target...)...)
	var rep struct {
		Result struct {
			Complete bool   `json:"complete"`
			Sent     string `json:"sent"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Result.Complete || rep.Result.Sent != hid.Plan(h, hid.DefaultTiming).String() {
		t.Errorf("send --json = %s (%v)", out, err)
	}
	vmWantStream(t, ctx, g, bus, m, hid.Plan(h, hid.DefaultTiming), h, true)

	if bus != "ps2" {
		return
	}
	// A paused guest is refused with exit 1 and receives nothing.
	vmMonitor(t, mon2, "stop")
	m = g.Mark()
	_, errOut, code := crashkey(t, ctx, append([]string{"send"}, target...)...)
	if code != 1 || !strings.Contains(errOut, "not running") {
		t.Fatalf("send to a paused guest: exit %d, stderr %q; want 1 and the reason", code, errOut)
	}
	vmMonitor(t, mon2, "cont")
	time.Sleep(quiet)
	noneOf(t, g, m, harness.KindPS2)

	// The connection is cut after the guest got +ctrl_r +scroll_lock: crashkey reconnects,
	// releases both keys, reports it and exits 3.
	p := startCutProxy(t, g.QMPPath(), 2)
	m = g.Mark()
	out, errOut, code = crashkey(t, ctx, "send", "--qmp", "unix:"+p.path)
	if code != 3 || !p.didCut() {
		t.Fatalf("send through the cutting proxy: exit %d cut %v\n%s%s", code, p.didCut(), out, errOut)
	}
	for _, want := range []string{"sent: +ctrl_r\n", "may have been sent: +scroll_lock\n", "released (after reconnecting): -scroll_lock -ctrl_r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	wantPS2(t, ctx, g, m, "e0 1d 46 c6 e0 9d")
}

// cliNMI runs `crashkey nmi` on addr.
func cliNMI(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	out := mustCrashkey(t, ctx, 0, "nmi", "--qmp", addr)
	if !strings.Contains(out, "panic action: none (set by crashkey)") || !strings.Contains(out, "nmi: injected") {
		t.Errorf("crashkey nmi printed:\n%s", out)
	}
}

// cliPanicWatch runs `crashkey watch --json --until crash` on addr while trigger runs, and
// checks that it printed GUEST_PANICKED with action "run" as a JSON line and exited 0.
func cliPanicWatch(t *testing.T, ctx context.Context, g *harness.Guest, addr string, trigger func()) {
	t.Helper()
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, code := crashkey(t, ctx, "watch", "--qmp", addr, "--json", "--until", "crash", "--timeout", "90s")
		done <- result{out, errOut, code}
	}()
	vmWaitClient(t, ctx, g.QMPPath(), strings.TrimPrefix(addr, "unix:"))
	trigger()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("crashkey watch did not end")
	}
	if r.code != 0 {
		t.Fatalf("crashkey watch: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	var last struct {
		Time   time.Time `json:"time"`
		Event  string    `json:"event"`
		Action string    `json:"action"`
		Source string    `json:"source"`
	}
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("watch line %d is not one JSON object: %q", i, l)
		}
	}
	if last.Event != "GUEST_PANICKED" || last.Action != "run" || last.Source != "qmp" || time.Since(last.Time) > 5*time.Minute {
		t.Fatalf("last watch line = %q, want GUEST_PANICKED action run", lines[len(lines)-1])
	}
}

// vmWaitClient waits until a client is connected to QEMU's socket chardev at path, asking QEMU
// (query-chardev through the monitor socket mon) until the chardev's filename loses its
// "disconnected:" prefix.
func vmWaitClient(t *testing.T, ctx context.Context, mon, path string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m, err := qmp.NewSocketMonitor("unix", mon, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Connect(); err != nil {
			t.Fatal(err)
		}
		out, err := m.Run([]byte(`{"execute":"query-chardev"}`))
		m.Disconnect()
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Return []struct {
				Filename string `json:"filename"`
			} `json:"return"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Return {
			if strings.Contains(c.Filename, path) && !strings.HasPrefix(c.Filename, "disconnected:") {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no client connected to %s", path)
}
