package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm/qmptest"
)

var (
	reTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
)

// vmGolden runs crashkey against s and compares stdout, stderr and the exit code with
// testdata/DIR/NAME.golden; the socket path becomes SOCK and times become TIME.
func vmGolden(t *testing.T, s *qmptest.Server, golden string, wantCode int, args ...string) string {
	t.Helper()
	for i, a := range args {
		if a == "SOCK" {
			args[i] = s.Addr
		}
	}
	stdout, stderr, code := runCrashkey(t, args...)
	clean := func(x string) string {
		if s != nil {
			x = strings.ReplaceAll(x, s.Path, "SOCK")
		}
		return reTime.ReplaceAllString(x, "TIME")
	}
	got := fmt.Sprintf("$ crashkey %s\n--- exit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(cleanArgs(args, s), " "), code, clean(stdout), clean(stderr))
	checkGolden(t, golden, got)
	if code != wantCode {
		t.Errorf("exit %d, want %d\nstderr: %s", code, wantCode, stderr)
	}
	return stdout
}

func cleanArgs(args []string, s *qmptest.Server) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if s != nil {
			a = strings.ReplaceAll(a, s.Path, "SOCK")
		}
		out[i] = a
	}
	return out
}

func withUSB(s *qmptest.Server) {
	s.Devices = append(s.Devices,
		qmptest.Device{Container: "/machine/peripheral-anon", Name: "device[0]", Type: "usb-kbd"},
		qmptest.Device{Container: "/machine/peripheral-anon", Name: "device[1]", Type: "pvpanic"})
}

func TestSendGolden(t *testing.T) {
	fast := []string{"--step", "1ms", "--settle", "1ms"}
	tests := []struct {
		name  string
		setup func(s *qmptest.Server)
		args  []string
		code  int
		keys  string
	}{
		{"default", nil, fast, 0, "+ctrl_r +scroll_lock -scroll_lock +scroll_lock -scroll_lock -ctrl_r"},
		{"custom-json", nil, append([]string{"--hotkey", "lshift+rshift+d", "--json"}, fast...), 0, "+shift +shift_r +d -d +d -d -shift_r -shift"},
		{"registry-usb", withUSB, append([]string{"--dump1keys", "0x24", "--dump2key", "61"}, fast...), 0, "+ctrl +alt_r +spc -spc +spc -spc -alt_r -ctrl"},
		{"paused", func(s *qmptest.Server) { s.Status = "paused" }, fast, 1, ""},
		{"paused-force", func(s *qmptest.Server) { s.Status = "paused" }, append([]string{"--force"}, fast...), 3, ""},
		{"chord", nil, []string{"--method", "chord", "--hold-ms", "50"}, 0, ""},
		{"sequence", nil, []string{"--sequence", "+ctrl_r -ctrl_r", "--json", "--keep-panic-action"}, 0, "+ctrl_r -ctrl_r"},
		// qmp_capabilities excluded: query-status, 3 qom-list, query-cpus-fast, qom-get,
		// set-action, query-status, 3 qom-list, query-cpus-fast, qom-get = 13; the 16th command
		// is the third key call.
		{"broken-connection", func(s *qmptest.Server) { s.BreakAfter = 16 }, fast, 3, "+ctrl_r +scroll_lock -scroll_lock -ctrl_r"},
		// The key calls and the release hang: the report names the stuck keys and the command
		// that releases them (on stdout and in the error line).
		{"release-timeout", func(s *qmptest.Server) {
			s.Hang = func(cmd string) bool { return cmd == "input-send-event" }
		}, append([]string{"--call-timeout", "100ms", "--release-timeout", "200ms"}, fast...), 3, ""},
		// Strings from QMP replies are escaped: a run state with ANSI and OSC escapes and a
		// newline cannot forge lines or retitle the terminal.
		{"hostile-status", func(s *qmptest.Server) { s.Status = "paused\x1b[2J\x1b]0;owned\x07\nsent: everything" }, fast, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := qmptest.New(t)
			if tt.setup != nil {
				s.Update(tt.setup)
			}
			vmGolden(t, s, "send/"+tt.name+".golden", tt.code, append([]string{"send", "--qmp", "SOCK"}, tt.args...)...)
			if got := strings.Join(s.Keys(), " "); got != tt.keys {
				t.Errorf("QEMU received %q, want %q", got, tt.keys)
			}
		})
	}
}

func TestTargetFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no-target", []string{"send"}, 2},
		{"both-targets", []string{"status", "--qmp", "unix:/x", "--libvirt", "qemu:///system", "--domain", "d"}, 2},
		{"libvirt-without-domain", []string{"nmi", "--libvirt", "qemu:///system"}, 2},
		{"bad-qmp-address", []string{"status", "--qmp", "tcp:nohostport"}, 2},
		{"bad-method", []string{"send", "--qmp", "unix:/x", "--method", "typing"}, 2},
		{"no-socket", []string{"status", "--qmp", "unix:/nonexistent/crashkey.sock"}, 3},
		{"watch-bad-timeout", []string{"watch", "--qmp", "unix:/x", "--timeout", "-1s"}, 2},
		{"sequence-and-hotkey", []string{"send", "--qmp", "unix:/x", "--sequence", "+a -a", "--hotkey", "rctrl+scroll"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmGolden(t, nil, "send/flags-"+tt.name+".golden", tt.code, tt.args...)
		})
	}
}

func TestStatusGolden(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *qmptest.Server)
		args  []string
	}{
		{"ps2", nil, nil},
		{"usb-pvpanic-json", withUSB, []string{"--json"}},
		{"virtio-hvcrash-paused", func(s *qmptest.Server) {
			s.Devices = append(s.Devices, qmptest.Device{Container: "/machine/peripheral", Name: "vk", Type: "virtio-keyboard-pci"},
				qmptest.Device{Container: "/machine/peripheral-anon", Name: "device[2]", Type: "vmcoreinfo"})
			s.HVCrash, s.Status = true, "paused"
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := qmptest.New(t)
			if tt.setup != nil {
				s.Update(tt.setup)
			}
			vmGolden(t, s, "status/"+tt.name+".golden", 0, append([]string{"status", "--qmp", "SOCK"}, tt.args...)...)
			for _, c := range s.Executed() {
				if c != "query-status" && c != "qom-list" && c != "query-cpus-fast" && c != "qom-get" && c != "query-memory-size-summary" {
					t.Errorf("status sent %s: it must change nothing", c)
				}
			}
		})
	}
}

func TestNMIGolden(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *qmptest.Server)
		args  []string
		code  int
		nmi   bool
	}{
		{"injected", withUSB, nil, 0, true},
		{"json", nil, []string{"--json"}, 0, true},
		{"paused", func(s *qmptest.Server) { s.Status = "paused" }, nil, 1, false},
		{"paused-force", func(s *qmptest.Server) { s.Status = "paused" }, []string{"--force", "--keep-panic-action"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := qmptest.New(t)
			if tt.setup != nil {
				s.Update(tt.setup)
			}
			vmGolden(t, s, "nmi/"+tt.name+".golden", tt.code, append([]string{"nmi", "--qmp", "SOCK"}, tt.args...)...)
			got := strings.Contains(strings.Join(s.Executed(), " "), "inject-nmi")
			if got != tt.nmi {
				t.Errorf("inject-nmi sent: %v, want %v", got, tt.nmi)
			}
		})
	}
}

// emitWhenConnected sends events once a client has negotiated capabilities.
func emitWhenConnected(s *qmptest.Server, events func(s *qmptest.Server)) {
	go func() {
		for i := 0; i < 500 && len(s.Commands()) == 0; i++ {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		events(s)
	}()
}

func crashEvents(s *qmptest.Server) {
	s.Event("RESUME", nil)
	s.Event("GUEST_PANICKED", map[string]any{"action": "run", "info": map[string]any{"type": "hyper-v", "arg1": 0xE2, "arg2": 0, "arg3": 0, "arg4": 0, "arg5": 0}})
	s.Event("GUEST_CRASHLOADED", map[string]any{"action": "run"})
	s.Event("RESET", map[string]any{"guest": true, "reason": "guest-reset"})
}

func TestWatchGolden(t *testing.T) {
	tests := []struct {
		name   string
		events func(s *qmptest.Server)
		args   []string
		code   int
	}{
		{"until-crash-json", crashEvents, []string{"--json", "--until", "crash", "--timeout", "5s"}, 0},
		{"until-reset", crashEvents, []string{"--until", "RESET", "--timeout", "5s"}, 0},
		{"nothing", nil, []string{"--timeout", "200ms"}, 1},
		{"qemu-exits", func(s *qmptest.Server) {
			s.Event("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-panic"})
			time.Sleep(50 * time.Millisecond)
			s.Close()
		}, []string{"--timeout", "5s"}, 0},
		{"closed-before-events", func(s *qmptest.Server) { s.Close() }, []string{"--timeout", "5s"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := qmptest.New(t)
			if tt.events != nil {
				emitWhenConnected(s, tt.events)
			}
			vmGolden(t, s, "watch/"+tt.name+".golden", tt.code, append([]string{"watch", "--qmp", "SOCK"}, tt.args...)...)
		})
	}
}

// Ctrl-C during the settle pause after Right Ctrl went down: send releases it, says so, and
// exits 130.
func TestSendInterrupted(t *testing.T) {
	s := qmptest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for len(s.Keys()) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
	}()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"send", "--qmp", s.Addr, "--settle", "5s"}, &out, &errb)
	if code != ExitInterrupted {
		t.Errorf("exit %d, want %d\n%s%s", code, ExitInterrupted, out.String(), errb.String())
	}
	if got := strings.Join(s.Keys(), " "); got != "+ctrl_r -ctrl_r" {
		t.Errorf("QEMU received %q, want +ctrl_r -ctrl_r", got)
	}
	if !strings.Contains(out.String(), "released: -ctrl_r\n") {
		t.Errorf("output does not say what was released:\n%s", out.String())
	}
}
