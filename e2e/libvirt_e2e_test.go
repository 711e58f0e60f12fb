//go:build e2e

package e2e

// End-to-end tests of package vm's libvirt backend and of the CLI's --libvirt targets against
// the test guest run as a libvirt domain by a private libvirtd (scripts/guest/libvirtd.sh).

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/vm"
)

const (
	vmLibvirtURI    = "qemu:///system"
	vmLibvirtSocket = "/var/run/libvirt/libvirt-sock"
)

// vmEventRecorder keeps the events of a target's stream.
type vmEventRecorder struct {
	mu     sync.Mutex
	events []vm.Event
	more   chan struct{}
}

func vmRecordEvents(t *testing.T, ctx context.Context, tg vm.Target) *vmEventRecorder {
	t.Helper()
	ch, err := tg.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &vmEventRecorder{more: make(chan struct{}, 1)}
	go func() {
		for e := range ch {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
			select {
			case r.more <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

// wait returns the first recorded event that pred accepts, waiting up to d.
func (r *vmEventRecorder) wait(t *testing.T, d time.Duration, what string, pred func(vm.Event) bool) vm.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if pred(e) {
				r.mu.Unlock()
				return e
			}
		}
		var kinds []string
		for _, e := range r.events {
			kinds = append(kinds, e.Kind+"/"+e.Lifecycle+"/"+e.Detail)
		}
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("no %s event within %v; got %v", what, d, kinds)
		}
	}
}

// TestVMLibvirt drives a PS/2 domain with a pvpanic device and a USB-keyboard domain through
// the libvirt backend and the CLI.
func TestVMLibvirt(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Minute)
	startLibvirtd(t, ctx)
	t.Run("ps2-pvpanic", func(t *testing.T) { vmLibvirtPS2(t, ctx) })
	t.Run("usb-xhci", func(t *testing.T) { vmLibvirtUSB(t, ctx) })
}

func vmLibvirtPS2(t *testing.T, ctx context.Context) {
	g := startDomain(t, ctx, harness.Config{PVPanic: true, PanicOnNMI: true})
	dom := g.Domain()
	target := []string{"--libvirt", vmLibvirtURI, "--domain", dom}
	tg, err := vm.DialLibvirt(ctx, vmLibvirtURI, dom, vm.Options{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()

	st, err := tg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Running || st.State != "running" || st.Receiver == nil || st.Receiver.Bus != "ps2" ||
		!slices.Equal(st.PanicDevices, []string{"isa"}) || st.PanicAction != "preserve" {
		t.Fatalf("status = %+v", st)
	}
	if !strings.Contains(strings.Join(st.Warnings, " "), "virsh resume "+dom) {
		t.Errorf("no on_crash warning: %q", st.Warnings)
	}
	rep, err := tg.PreparePanic(ctx)
	if err != nil || rep.Action != "preserve" || rep.Changed || len(rep.Warnings) != 1 {
		t.Errorf("PreparePanic = %+v, %v", rep, err)
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := vmRecordEvents(t, ectx, tg)

	// The library: the default hotkey through the monitor passthrough.
	h := hid.CrashOnCtrlScroll()
	seq := hid.Plan(h, hid.DefaultTiming)
	m := g.Mark()
	res, err := tg.Send(ctx, seq, vm.SendOptions{})
	if err != nil || !res.Complete {
		t.Fatalf("send: %v %+v", err, res)
	}
	vmWantStream(t, ctx, g, "ps2", m, seq, h, true)

	// The CLI: two custom hotkeys, and the chord.
	for _, spec := range []string{"0x11/1", "0x04/123"} {
		h := vmHotkey(t, spec)
		m := g.Mark()
		mustCrashkey(t, ctx, 0, append([]string{"send", "--hotkey", spec}, target...)...)
		vmWantStream(t, ctx, g, "ps2", m, hid.Plan(h, hid.DefaultTiming), h, true)
	}
	m = g.Mark()
	out := mustCrashkey(t, ctx, 0, append([]string{"send", "--method", "chord"}, target...)...)
	if !strings.Contains(out, "this is a chord") {
		t.Errorf("chord without its warning:\n%s", out)
	}
	wantPS2(t, ctx, g, m, "e0 1d 46 46 c6 c6 e0 9d")
	vmWantStream(t, ctx, g, "ps2", g.Mark()-8, hid.ChordSequence(h), h, true)

	// Paused: refused by the library and the CLI; lifecycle and QMP events arrive.
	if _, err := g.Virsh(ctx, "suspend", dom); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, 30*time.Second, "suspended", func(e vm.Event) bool { return e.Lifecycle == "suspended" && e.Detail == "paused" })
	// (QMP's STOP has no data, and go-libvirt drops QEMU monitor events without data: the
	// lifecycle event is what reports the pause through libvirt.)
	m = g.Mark()
	if _, err := tg.Send(ctx, seq, vm.SendOptions{}); !errors.Is(err, vm.ErrNotRunning) || !strings.Contains(err.Error(), "virsh resume") {
		t.Fatalf("send to a paused domain: %v", err)
	}
	_, errOut, code := crashkey(t, ctx, append([]string{"send"}, target...)...)
	if code != 1 || !strings.Contains(errOut, "not running") {
		t.Fatalf("crashkey send to a paused domain: exit %d %q", code, errOut)
	}
	if _, err := g.Virsh(ctx, "resume", dom); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, 30*time.Second, "resumed", func(e vm.Event) bool { return e.Lifecycle == "resumed" })
	time.Sleep(quiet)
	noneOf(t, g, m, harness.KindPS2)

	// The libvirt connection is cut after the guest got +ctrl_r +scroll_lock.
	p := startLibvirtCutProxy(t, vmLibvirtSocket, 2)
	ptg, err := vm.DialLibvirt(ctx, vmLibvirtURI+"?socket="+p.path, dom, vm.Options{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m = g.Mark()
	res, err = ptg.Send(ctx, seq, vm.SendOptions{})
	if err == nil || !p.didCut() || !res.Reconnected || p.connections() != 2 {
		t.Fatalf("send through the cutting proxy: err=%v cut=%v reconnected=%v connections=%d", err, p.didCut(), res.Reconnected, p.connections())
	}
	if res.Sent != "+ctrl_r" || res.Uncertain != "+scroll_lock" || res.Released != "-scroll_lock -ctrl_r" {
		t.Errorf("result: sent %q uncertain %q released %q", res.Sent, res.Uncertain, res.Released)
	}
	wantPS2(t, ctx, g, m, "e0 1d 46 c6 e0 9d")
	ptg.Close()
	// The same with the CLI.
	p = startLibvirtCutProxy(t, vmLibvirtSocket, 2)
	m = g.Mark()
	out, errOut, code = crashkey(t, ctx, "send", "--libvirt", vmLibvirtURI+"?socket="+p.path, "--domain", dom)
	if code != 3 || !strings.Contains(out, "released (after reconnecting): -scroll_lock -ctrl_r") {
		t.Fatalf("crashkey send through the cutting proxy: exit %d\n%s%s", code, out, errOut)
	}
	wantPS2(t, ctx, g, m, "e0 1d 46 c6 e0 9d")

	// status --json.
	out = mustCrashkey(t, ctx, 0, append([]string{"status", "--json"}, target...)...)
	var sj struct {
		Backend     string   `json:"backend"`
		State       string   `json:"state"`
		PanicAction string   `json:"panic_action"`
		Panics      []string `json:"panic_devices"`
	}
	if err := json.Unmarshal([]byte(out), &sj); err != nil || sj.Backend != "libvirt" || sj.State != "running" || sj.PanicAction != "preserve" {
		t.Errorf("status --json = %s (%v)", out, err)
	}

	// NMI → kernel panic → pvpanic: `crashkey watch` and the library both see it; libvirt's
	// on_crash=preserve leaves the domain crashed (paused).
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		o, e, c := crashkey(t, ctx, append([]string{"watch", "--json", "--until", "crashed", "--timeout", "90s"}, target...)...)
		done <- result{o, e, c}
	}()
	time.Sleep(5 * time.Second) // let watch subscribe (libvirt gives no sign of it)
	out = mustCrashkey(t, ctx, 0, append([]string{"nmi"}, target...)...)
	if !strings.Contains(out, "panic action: preserve") || !strings.Contains(out, "virsh resume "+dom) || !strings.Contains(out, "nmi: injected") {
		t.Errorf("crashkey nmi printed:\n%s", out)
	}
	e := rec.wait(t, 60*time.Second, "GUEST_PANICKED", func(e vm.Event) bool { return e.Kind == vm.EventGuestPanicked })
	if e.Action != "pause" || e.Source != vm.Libvirt || e.Time.IsZero() {
		t.Errorf("GUEST_PANICKED = %+v", e)
	}
	rec.wait(t, 60*time.Second, "crashed", func(e vm.Event) bool { return e.Lifecycle == "crashed" && e.Detail == "panicked" && e.IsCrash() })
	var r result
	select {
	case r = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("crashkey watch did not end")
	}
	if r.code != 0 || !strings.Contains(r.out, `"lifecycle":"crashed","detail":"panicked"`) {
		t.Errorf("crashkey watch: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
	for i, l := range strings.Split(strings.TrimSpace(r.out), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("watch line %d is not JSON: %q", i, l)
		}
	}
	st, err = tg.Status(ctx)
	if err != nil || st.State != "crashed" || st.Reason != "panicked" || st.Running {
		t.Errorf("status after the panic = %+v, %v; want crashed (panicked)", st, err)
	}
}

func vmLibvirtUSB(t *testing.T, ctx context.Context) {
	g := startDomain(t, ctx, harness.Config{Keyboards: []harness.Keyboard{harness.USBXHCI}})
	target := []string{"--libvirt", vmLibvirtURI, "--domain", g.Domain()}
	out := mustCrashkey(t, ctx, 0, append([]string{"status"}, target...)...)
	if !strings.Contains(out, "usb-kbd") && !strings.Contains(out, "bus='usb'") {
		t.Errorf("status does not list the USB keyboard:\n%s", out)
	}
	if !strings.Contains(out, "QEMU sends injected keys to the usb keyboard only") {
		t.Errorf("status does not warn about the routing:\n%s", out)
	}
	for _, spec := range []string{"ctrl-scroll", "0x02/0x3d"} {
		h := vmHotkey(t, spec)
		m := g.Mark()
		out := mustCrashkey(t, ctx, 0, append([]string{"send", "--hotkey", spec}, target...)...)
		if !strings.Contains(out, "keys go to: usb keyboard") {
			t.Errorf("send output:\n%s", out)
		}
		vmWantStream(t, ctx, g, "usb", m, hid.Plan(h, hid.DefaultTiming), h, true)
	}
	m := g.Mark()
	if _, _, code := crashkey(t, ctx, append([]string{"nmi", "--keep-panic-action"}, target...)...); code != 0 {
		t.Fatalf("nmi: exit %d", code)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := g.WaitKind(wctx, m, harness.KindNMI); err != nil {
		t.Fatalf("the guest did not see the NMI: %v", err)
	}
}

// libvirtCutProxy forwards a unix socket to libvirtd's. On its first connection it cuts both
// sides when libvirtd's reply to the cutAt-th QEMU monitor command arrives, before the client
// sees it. It parses libvirt's RPC framing: a 4-byte big-endian length (itself included), then
// program, version, procedure, type, serial and status, 4 bytes each.
type libvirtCutProxy struct{ *cutProxy }

const (
	lvQEMUProgram        = 0x20008087
	lvProcMonitorCommand = 1
	lvMaxFrame           = 32 << 20
)

func startLibvirtCutProxy(t *testing.T, target string, cutAt int) *libvirtCutProxy {
	t.Helper()
	p := &libvirtCutProxy{&cutProxy{}}
	p.listen(t, func(c net.Conn, first bool) { p.serve(c, target, first, cutAt) })
	return p
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 28 || n > lvMaxFrame {
		return nil, errors.New("bad frame length")
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

func (p *libvirtCutProxy) serve(c net.Conn, target string, first bool, cutAt int) {
	defer c.Close()
	d, err := net.Dial("unix", target)
	if err != nil {
		return
	}
	defer d.Close()
	cutSerial := make(chan uint32, 1)
	go func() { // client → libvirtd
		count := 0
		for {
			f, err := readFrame(c)
			if err != nil {
				d.Close()
				return
			}
			prog, proc, serial := binary.BigEndian.Uint32(f[4:]), binary.BigEndian.Uint32(f[12:]), binary.BigEndian.Uint32(f[20:])
			if first && prog == lvQEMUProgram && proc == lvProcMonitorCommand {
				// Count only the key calls: the status check before them goes through the
				// remote program, not the QEMU one.
				count++
				if count == cutAt {
					cutSerial <- serial
				}
			}
			if _, err := d.Write(f); err != nil {
				return
			}
		}
	}()
	var serial uint32
	armed := false
	for {
		f, err := readFrame(d)
		if err != nil {
			return
		}
		select {
		case serial = <-cutSerial:
			armed = true
		default:
		}
		prog, typ, s := binary.BigEndian.Uint32(f[4:]), binary.BigEndian.Uint32(f[16:]), binary.BigEndian.Uint32(f[20:])
		if armed && prog == lvQEMUProgram && typ == 1 /* reply */ && s == serial {
			p.mu.Lock()
			p.cut = true
			p.mu.Unlock()
			return // closes both sides
		}
		if _, err := c.Write(f); err != nil {
			return
		}
	}
}
