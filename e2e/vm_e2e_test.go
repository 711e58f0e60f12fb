//go:build e2e

package e2e

// End-to-end tests of package vm against the real test guest: exact key streams on every
// keyboard kind with the driver model's verdict, keyboard routing, a paused guest, NMI, the
// panic action and events, and a QMP connection cut mid-sequence followed by the release.
// The CLI versions live in cli_e2e_test.go and run on the same guests.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/go-qemu/qmp"

	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes"
	"github.com/crashkey/crashkey/vm"
)

// vmHotkeys are the hotkeys every keyboard kind is tested with: the default and three custom
// ones (registry pairs, as an admin reads them from the guest).
var vmHotkeys = []string{"ctrl-scroll", "0x11/1", "0x02/0x3d", "0x04/123"}

// Helpers of this file and cli_e2e_test.go/libvirt_e2e_test.go. They use only package harness,
// so they do not depend on the harness's own tests.

// vmAwait waits (up to 30 s) until n observations that pred accepts have arrived from index
// from on. A loaded TCG host can stall the guest for longer than the quiet period between two
// bytes of one stream; waiting for the expected count first keeps the quiet period for
// catching extras only.
func vmAwait(ctx context.Context, g *harness.Guest, from, n int, pred func(harness.Observation) bool) {
	if n <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seen := 0
	_, _ = g.WaitFor(wctx, from, func(o harness.Observation) bool {
		if pred(o) {
			seen++
		}
		return seen >= n
	})
}

func vmIsKind(kind string) func(harness.Observation) bool {
	return func(o harness.Observation) bool { return o.Kind == kind }
}

// vmMonitor runs one QMP command on a QEMU monitor socket through go-qemu's own
// SocketMonitor (fine for a one-shot command; crashkey's client is in package vm).
func vmMonitor(t *testing.T, path, command string) {
	t.Helper()
	mon, err := qmp.NewSocketMonitor("unix", path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Connect(); err != nil {
		t.Fatalf("qmp connect %s: %v", path, err)
	}
	defer mon.Disconnect()
	if _, err := mon.Run([]byte(`{"execute":"` + command + `"}`)); err != nil {
		t.Fatalf("qmp %s: %v", command, err)
	}
}

// vmGuest boots cfg's guest with a second QMP socket (for a second client: crashkey's QMP
// socket serves one client at a time) and returns the guest and that socket's path.
func vmGuest(t *testing.T, ctx context.Context, cfg harness.Config) (*harness.Guest, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ck-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mon2 := filepath.Join(dir, "mon2.sock")
	cfg.Dir = dir
	cfg.ExtraArgs = append(cfg.ExtraArgs, "-qmp", "unix:"+mon2+",server=on,wait=off")
	return bootGuest(t, ctx, cfg), mon2
}

func vmDial(t *testing.T, ctx context.Context, addr string) vm.Target {
	t.Helper()
	tg, err := vm.DialQMP(ctx, addr, vm.Options{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

func vmHotkey(t *testing.T, spec string) hid.Hotkey {
	t.Helper()
	h, err := hid.ParseHotkey(spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// vmWantStream collects what the guest's receiving keyboard (bus "ps2", "usb" or "virtio")
// got from index from on, compares it with what the renderers of package hid say QEMU
// delivers for seq, and checks the driver model's verdict on the captured stream for a guest
// armed for h.
func vmWantStream(t *testing.T, ctx context.Context, g *harness.Guest, bus string, from int, seq hid.Sequence, h hid.Hotkey, wantCrash bool) {
	t.Helper()
	reg := hid.Armed(h)
	switch bus {
	case "ps2":
		vmAwait(ctx, g, from, len(hid.Set1(seq)), vmIsKind(harness.KindPS2))
		got, err := g.PS2Bytes(ctx, from, quiet)
		if err != nil {
			t.Fatalf("ps2 stream (got %q so far): %v", hexString(got), err)
		}
		if want := hid.Set1(seq); hexString(got) != hexString(want) {
			t.Fatalf("ps2 stream = %q, want %q", hexString(got), hexString(want))
		}
		v := hid.SimulateSet1(reg, got)
		if v.Crash != wantCrash {
			t.Fatalf("i8042prt model on %q: crash=%v, want %v", hexString(got), v.Crash, wantCrash)
		}
		if v.Crash {
			brk := h.Key.Break
			if *v.At != len(got)-1-lastIndexOfBreak(got, brk) || got[*v.At] != brk[len(brk)-1] {
				t.Errorf("fires at byte %d of %q: want the second release of %s", *v.At, hexString(got), h.Key.QCode)
			}
		}
	case "usb":
		vmAwait(ctx, g, from, len(hid.QEMUUSBReports(seq)), vmIsKind(harness.KindUSB))
		got, err := g.USBReports(ctx, from, quiet)
		if err != nil {
			t.Fatalf("usb reports (got %q so far): %v", reportStrings(got), err)
		}
		var want []string
		for _, r := range hid.QEMUUSBReports(seq) {
			want = append(want, harness.TrimReport(r[:]))
		}
		if !slices.Equal(reportStrings(got), want) {
			t.Fatalf("usb reports = %q, want %q", reportStrings(got), want)
		}
		reports := make([]hid.Report, len(got))
		for i, r := range got {
			copy(reports[i][:], r)
		}
		if v := hid.SimulateUSB(reg, reports); v.Crash != wantCrash {
			t.Fatalf("kbdhid model on %q: crash=%v, want %v", want, v.Crash, wantCrash)
		}
	case "virtio":
		keys := 0
		for _, e := range hid.Evdev(seq) {
			if e.Type == hid.EvKey {
				keys++
			}
		}
		vmAwait(ctx, g, from, keys, func(o harness.Observation) bool {
			e, ok := o.Evdev()
			return ok && e.Bus == "virtio" && e.Type == "KEY" && e.Value != 2
		})
		got, err := g.EvdevEvents(ctx, from, "virtio", quiet)
		if err != nil {
			t.Fatalf("evdev events (got %q so far): %v", evdevStrings(got), err)
		}
		var want []string
		for _, e := range hid.Evdev(seq) {
			if e.Type == hid.EvKey {
				want = append(want, fmt.Sprintf("KEY %d %d", e.Code, e.Value))
			}
		}
		if !slices.Equal(evdevStrings(got), want) {
			t.Fatalf("virtio evdev = %q, want %q", evdevStrings(got), want)
		}
		// Windows' vioinput presents a HID keyboard to kbdhid: model it with the reports of
		// the captured key events.
		var captured hid.Sequence
		for _, e := range got {
			if e.Type != "KEY" || e.Value == 2 {
				continue
			}
			k, ok := scancodes.ByLinux(e.Code)
			if !ok {
				t.Fatalf("evdev key code %d unknown", e.Code)
			}
			captured = append(captured, hid.Event{Key: k, Down: e.Value == 1})
		}
		if v := hid.SimulateUSB(reg, hid.USBReports(captured)); v.Crash != wantCrash {
			t.Fatalf("kbdhid model on virtio %q: crash=%v, want %v", want, v.Crash, wantCrash)
		}
	default:
		t.Fatalf("unknown bus %q", bus)
	}
}

// lastIndexOfBreak is how many bytes follow the last occurrence of brk in b.
func lastIndexOfBreak(b, brk []byte) int {
	for i := len(b) - len(brk); i >= 0; i-- {
		if string(b[i:i+len(brk)]) == string(brk) {
			return len(b) - (i + len(brk))
		}
	}
	return -1
}

// TestVMKeyboards sends the hotkeys through package vm (and, on the same guest, through the
// CLI) to a guest with each keyboard kind and checks the exact streams and verdicts.
func TestVMKeyboards(t *testing.T) {
	t.Parallel()
	for _, kc := range []struct {
		name string
		kbs  []harness.Keyboard
		bus  string
	}{
		{"ps2", nil, "ps2"},
		{"usb-xhci", []harness.Keyboard{harness.USBXHCI}, "usb"},
		{"usb-uhci", []harness.Keyboard{harness.USBUHCI}, "usb"},
		{"virtio", []harness.Keyboard{harness.Virtio}, "virtio"},
	} {
		t.Run(kc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t, 6*time.Minute)
			g, mon2 := vmGuest(t, ctx, harness.Config{Keyboards: kc.kbs})
			tg := vmDial(t, ctx, g.QMPAddr())

			st, err := tg.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Running || st.State != "running" || st.Receiver == nil || st.Receiver.Bus != kc.bus {
				t.Fatalf("status = %+v, want running with the %s keyboard receiving", st, kc.bus)
			}
			wantDriver := hid.Kbdhid
			if kc.bus == "ps2" {
				wantDriver = hid.I8042prt
			}
			if st.Receiver.Driver != wantDriver {
				t.Errorf("driver to arm = %s, want %s", st.Receiver.Driver, wantDriver)
			}
			if hasWarning := strings.Contains(strings.Join(st.Warnings, " "), "PS/2 and a"); hasWarning != (kc.bus != "ps2") {
				t.Errorf("routing warning present=%v for %s: %q", hasWarning, kc.name, st.Warnings)
			}

			for _, spec := range vmHotkeys {
				h := vmHotkey(t, spec)
				seq := hid.Plan(h, hid.DefaultTiming)
				m := g.Mark()
				res, err := tg.Send(ctx, seq, vm.SendOptions{})
				if err != nil {
					t.Fatalf("send %s: %v", spec, err)
				}
				if !res.Complete || res.Sent != seq.String() {
					t.Fatalf("send %s: result %+v", spec, res)
				}
				vmWantStream(t, ctx, g, kc.bus, m, seq, h, true)
			}
			// The default hotkey's streams, independently of package hid (qemu-observed.md).
			if kc.bus == "ps2" || kc.bus == "usb" {
				m := g.Mark()
				if _, err := tg.Send(ctx, hid.Plan(hid.CrashOnCtrlScroll(), hid.BurstTiming), vm.SendOptions{}); err != nil {
					t.Fatal(err)
				}
				if kc.bus == "ps2" {
					wantPS2(t, ctx, g, m, "e0 1d 46 c6 46 c6 e0 9d")
				} else {
					wantUSB(t, ctx, g, m, []string{"00", "10", "10 00 47", "10", "10 00 47", "10", "10", "00"})
				}
			}
			// A chord: PS/2 crashes (typematic repeat of the make), USB does not (one press).
			if kc.bus != "virtio" {
				h := hid.CrashOnCtrlScroll()
				m := g.Mark()
				res, err := tg.SendChord(ctx, h, 50, vm.SendOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Warnings) == 0 {
					t.Error("chord without its warning")
				}
				chord := hid.Chord(h)
				want := chord.USB.Verdict.Crash
				if kc.bus == "ps2" {
					want = chord.PS2.Verdict.Crash
				}
				if want != (kc.bus == "ps2") {
					t.Fatalf("hid.Chord verdicts changed: %+v", chord)
				}
				vmWantStream(t, ctx, g, kc.bus, m, hid.ChordSequence(h), h, want)
			}
			if kc.bus == "ps2" {
				vmPaused(t, ctx, g, tg, mon2)
				m := g.Mark()
				if err := tg.InjectNMI(ctx); err != nil {
					t.Fatal(err)
				}
				wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				if _, err := g.WaitKind(wctx, m, harness.KindNMI); err != nil {
					t.Fatalf("the guest did not see the NMI: %v", err)
				}
			}
			// QEMU serves one client per QMP socket: close ours before the proxy and the CLI
			// connect.
			if err := tg.Close(); err != nil {
				t.Fatal(err)
			}
			if kc.bus == "ps2" {
				vmCutMidSequence(t, ctx, g)
			}
			cliKeyboards(t, ctx, g, mon2, kc.bus)
			noneOf(t, g, 0, harness.KindError)
			noneOf(t, g, 0, harness.KindInvalid)
		})
	}
}

// vmPaused pauses the guest through the second monitor: Send refuses and nothing arrives;
// after cont, keys work again.
func vmPaused(t *testing.T, ctx context.Context, g *harness.Guest, tg vm.Target, mon2 string) {
	t.Helper()
	vmMonitor(t, mon2, "stop")
	st, err := tg.Status(ctx)
	if err != nil || st.Running || st.State != "paused" {
		t.Fatalf("status while paused = %+v, %v", st, err)
	}
	m := g.Mark()
	seq := hid.Plan(hid.CrashOnCtrlScroll(), hid.DefaultTiming)
	res, err := tg.Send(ctx, seq, vm.SendOptions{})
	if !errors.Is(err, vm.ErrNotRunning) || len(res.Calls) != 0 {
		t.Fatalf("send to a paused guest: err=%v calls=%d, want ErrNotRunning and no call", err, len(res.Calls))
	}
	// --force: QEMU refuses input-send-event while paused; nothing is pressed.
	res, err = tg.Send(ctx, seq, vm.SendOptions{Force: true})
	if err == nil || !strings.Contains(err.Error(), "VM not running") || res.Sent != "" || res.Released != "" {
		t.Fatalf("forced send to a paused guest: err=%v result=%+v", err, res)
	}
	vmMonitor(t, mon2, "cont")
	time.Sleep(quiet)
	noneOf(t, g, m, harness.KindPS2)
	m = g.Mark()
	if _, err := tg.Send(ctx, seq, vm.SendOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPS2(t, ctx, g, m, "e0 1d 46 c6 46 c6 e0 9d")
}

// cutProxy forwards a unix socket to QEMU's QMP socket. On its first connection it cuts both
// sides as soon as QEMU's reply to the cutAt-th input-send-event arrives, before the client
// sees it: QEMU has carried the call out, the client sees a broken connection. Later
// connections are forwarded untouched.
type cutProxy struct {
	path string
	mu   sync.Mutex
	n    int // connections accepted
	cut  bool
}

// listen accepts connections on a fresh unix socket (p.path) until the test ends and hands
// each to serve, saying whether it is the first.
func (p *cutProxy) listen(t *testing.T, serve func(c net.Conn, first bool)) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ck-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.path = filepath.Join(dir, "proxy.sock")
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.n++
			first := p.n == 1
			p.mu.Unlock()
			go serve(c, first)
		}
	}()
}

func startCutProxy(t *testing.T, target string, cutAt int) *cutProxy {
	t.Helper()
	p := &cutProxy{}
	p.listen(t, func(c net.Conn, first bool) { p.serve(c, target, first, cutAt) })
	return p
}

func (p *cutProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *cutProxy) didCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

func (p *cutProxy) serve(c net.Conn, target string, first bool, cutAt int) {
	defer c.Close()
	q, err := net.Dial("unix", target)
	if err != nil {
		return
	}
	defer q.Close()
	cutID := make(chan string, 1)
	go func() { // client → QEMU
		r := bufio.NewReader(c)
		count := 0
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				var req struct {
					Execute string          `json:"execute"`
					ID      json.RawMessage `json:"id"`
				}
				if first && json.Unmarshal(line, &req) == nil && req.Execute == "input-send-event" {
					count++
					if count == cutAt {
						cutID <- string(req.ID)
					}
				}
				if _, werr := q.Write(line); werr != nil {
					return
				}
			}
			if err != nil {
				q.Close()
				return
			}
		}
	}()
	r := bufio.NewReader(q)
	var id string
	for {
		line, err := r.ReadBytes('\n')
		select {
		case id = <-cutID:
		default:
		}
		if len(line) > 0 {
			var rep struct {
				ID json.RawMessage `json:"id"`
			}
			if id != "" && json.Unmarshal(line, &rep) == nil && string(rep.ID) == id {
				p.mu.Lock()
				p.cut = true
				p.mu.Unlock()
				return // closes both sides
			}
			if _, werr := c.Write(line); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// vmCutMidSequence cuts the QMP connection right after the guest received +ctrl_r +scroll_lock:
// Send reconnects, releases both keys and says so, and the guest records the release.
func vmCutMidSequence(t *testing.T, ctx context.Context, g *harness.Guest) {
	t.Helper()
	p := startCutProxy(t, g.QMPPath(), 2)
	tg, err := vm.DialQMP(ctx, "unix:"+p.path, vm.Options{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	m := g.Mark()
	res, err := tg.Send(ctx, hid.Plan(hid.CrashOnCtrlScroll(), hid.DefaultTiming), vm.SendOptions{})
	if err == nil || !p.didCut() {
		t.Fatalf("send through the cutting proxy: err=%v cut=%v", err, p.didCut())
	}
	if !res.Reconnected || p.connections() != 2 {
		t.Errorf("reconnected=%v proxy connections=%d, want a reconnect", res.Reconnected, p.connections())
	}
	if res.Sent != "+ctrl_r" || res.Uncertain != "+scroll_lock" || res.Released != "-scroll_lock -ctrl_r" || len(res.Stuck) != 0 {
		t.Errorf("result = sent %q uncertain %q released %q stuck %v", res.Sent, res.Uncertain, res.Released, res.Stuck)
	}
	if !strings.Contains(err.Error(), "released -scroll_lock -ctrl_r") {
		t.Errorf("err = %v: should say what it released", err)
	}
	// The guest saw Right Ctrl and Scroll Lock go down, then both released: no key stuck.
	wantPS2(t, ctx, g, m, "e0 1d 46 c6 e0 9d")
}

// TestVMPanicEvents: a guest whose kernel panics on NMI, with an ISA pvpanic device and QEMU's
// default panic action (shutdown: QEMU would exit). PreparePanic sets panic=none, so the
// GUEST_PANICKED event arrives with action "run" and the guest keeps running. The library
// watches on one monitor, `crashkey watch` on a third, `crashkey nmi` injects on the first.
func TestVMPanicEvents(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	dir, err := os.MkdirTemp("", "ck-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mon3 := filepath.Join(dir, "mon3.sock")
	g, mon2 := vmGuest(t, ctx, harness.Config{PVPanic: true, PanicOnNMI: true,
		ExtraArgs: []string{"-qmp", "unix:" + mon3 + ",server=on,wait=off"}})

	tg := vmDial(t, ctx, "unix:"+mon2)
	st, err := tg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.PanicDevices, []string{"pvpanic"}) || st.PanicAction != "unknown" {
		t.Fatalf("status = %+v", st)
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := tg.Events(ectx)
	if err != nil {
		t.Fatal(err)
	}
	cliPanicWatch(t, ctx, g, "unix:"+mon3, func() {
		// crashkey nmi sets panic=none on its own connection before injecting.
		cliNMI(t, ctx, g.QMPAddr())
	})
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("event stream ended before GUEST_PANICKED")
			}
			t.Logf("event %s %s", e.Kind, e.Action)
			if e.Kind != vm.EventGuestPanicked {
				continue
			}
			if e.Action != "run" || e.Panic != nil || e.Time.IsZero() {
				t.Fatalf("GUEST_PANICKED = %+v, want action run without info (pvpanic)", e)
			}
			st, err := tg.Status(ctx)
			if err != nil || st.State != "running" {
				t.Fatalf("after the panic: %+v, %v; want still running (panic=none)", st, err)
			}
			select {
			case <-g.Exited():
				t.Fatal("QEMU exited: the panic action was not none")
			default:
			}
			return
		case <-wctx.Done():
			t.Fatal("no GUEST_PANICKED within 60 s")
		}
	}
}
