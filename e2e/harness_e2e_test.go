//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashkey/crashkey/e2e/harness"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes/layout"
)

var (
	artOnce sync.Once
	art     *harness.Artifacts
	artErr  error
)

// guestArtifacts builds (or reuses from the cache) the guest's kernel and initramfs once per
// test binary.
func guestArtifacts(t testing.TB) *harness.Artifacts {
	t.Helper()
	artOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		art, artErr = harness.Build(ctx, harness.BuildOptions{Log: os.Stderr})
	})
	if artErr != nil {
		t.Fatalf("guest artifacts: %v", artErr)
	}
	return art
}

// bootGuest starts cfg's guest, stops it when the test ends (logging its console and output on
// failure) and waits until it is ready.
func bootGuest(t *testing.T, ctx context.Context, cfg harness.Config) *harness.Guest {
	t.Helper()
	cfg.Artifacts = guestArtifacts(t)
	g, err := harness.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logGuest(t, g)
		}
		if err := g.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := g.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest ready in %v", time.Since(start).Round(time.Millisecond))
	return g
}

func logGuest(t *testing.T, g *harness.Guest) {
	t.Helper()
	c := g.Console()
	if len(c) > 8000 {
		c = "…" + c[len(c)-8000:]
	}
	t.Logf("console:\n%s", c)
	var lines []string
	for _, o := range g.Observations(0) {
		lines = append(lines, o.Line)
	}
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	t.Logf("observations:\n%s", strings.Join(lines, "\n"))
}

// testCtx is a context that ends a little before the test binary's deadline.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// quiet is how long a stream must stay silent before it counts as complete. USB reports come
// about 8 ms apart; TCG under load can stretch that.
const quiet = 700 * time.Millisecond

// A hotkey and the exact streams each keyboard delivers for its input-send-event sequence
// (qemu-observed.md for the default; the custom ones follow the same rules: one USB report per
// queued set-1 code, so an E0 key's prefix repeats the previous report).
type hotkey struct {
	name string
	// dump1Keys/dump2Key arm the guest (both 0: CrashOnCtrlScroll=1).
	dump1Keys, dump2Key uint32
	// fireAt is the index of the byte (PS/2) and report (USB) on which the driver model says
	// the bug check fires: the second release of the crash key.
	fireSet1, fireUSB int
	spec              string   // input-send-event sequence
	ps2               string   // set-1 bytes
	usb               []string // boot reports without trailing zeros
	evdev             []string // "KEY code value"
}

var hotkeys = []hotkey{
	{
		name:     "default CrashOnCtrlScroll",
		fireSet1: 5, fireUSB: 5,
		spec:  "+ctrl_r +scroll_lock -scroll_lock +scroll_lock -scroll_lock -ctrl_r",
		ps2:   "e0 1d 46 c6 46 c6 e0 9d",
		usb:   []string{"00", "10", "10 00 47", "10", "10 00 47", "10", "10", "00"},
		evdev: []string{"KEY 97 1", "KEY 70 1", "KEY 70 0", "KEY 70 1", "KEY 70 0", "KEY 97 0"},
	},
	{
		name:      "Dump1Keys=0x11 Dump2Key=1 (both Shifts + grave)",
		dump1Keys: 0x11, dump2Key: 1, fireSet1: 5, fireUSB: 5,
		spec:  "+shift +shift_r +grave_accent -grave_accent +grave_accent -grave_accent -shift_r -shift",
		ps2:   "2a 36 29 a9 29 a9 b6 aa",
		usb:   []string{"02", "22", "22 00 35", "22", "22 00 35", "22", "02", "00"},
		evdev: []string{"KEY 42 1", "KEY 54 1", "KEY 41 1", "KEY 41 0", "KEY 41 1", "KEY 41 0", "KEY 54 0", "KEY 42 0"},
	},
	{
		name:      "Dump1Keys=0x02 Dump2Key=0x3d (Right Ctrl + Space)",
		dump1Keys: 0x02, dump2Key: 0x3d, fireSet1: 5, fireUSB: 5,
		spec:  "+ctrl_r +spc -spc +spc -spc -ctrl_r",
		ps2:   "e0 1d 39 b9 39 b9 e0 9d",
		usb:   []string{"00", "10", "10 00 2c", "10", "10 00 2c", "10", "10", "00"},
		evdev: []string{"KEY 97 1", "KEY 57 1", "KEY 57 0", "KEY 57 1", "KEY 57 0", "KEY 97 0"},
	},
	{
		name:      "Dump1Keys=0x04 Dump2Key=123 (Right Alt + F12)",
		dump1Keys: 0x04, dump2Key: 123, fireSet1: 5, fireUSB: 5,
		spec:  "+alt_r +f12 -f12 +f12 -f12 -alt_r",
		ps2:   "e0 38 58 d8 58 d8 e0 b8",
		usb:   []string{"00", "40", "40 00 45", "40", "40 00 45", "40", "40", "00"},
		evdev: []string{"KEY 100 1", "KEY 88 1", "KEY 88 0", "KEY 88 1", "KEY 88 0", "KEY 100 0"},
	},
	{
		// The key labelled Z on a German keyboard is the US Y position: set-1 15, USB 0x1c,
		// Linux 21, Dump2Key 22. The events come from crashkey's layout reading of the spec.
		name:      "--layout de --hotkey rctrl+z (the US Y position)",
		dump1Keys: 0x02, dump2Key: 22, fireSet1: 5, fireUSB: 5,
		spec:  layoutEvents("de", "rctrl+z"),
		ps2:   "e0 1d 15 95 15 95 e0 9d",
		usb:   []string{"00", "10", "10 00 1c", "10", "10 00 1c", "10", "10", "00"},
		evdev: []string{"KEY 97 1", "KEY 21 1", "KEY 21 0", "KEY 21 1", "KEY 21 0", "KEY 97 0"},
	},
}

// layoutEvents is the input-send-event sequence crashkey plans for spec read on a keyboard
// layout (as --layout NAME --hotkey SPEC does).
func layoutEvents(name, spec string) string {
	l, err := layout.Get(name)
	if err != nil {
		panic(err)
	}
	h, err := hid.ParseHotkeyOn(spec, l)
	if err != nil {
		panic(err)
	}
	return hid.Plan(h, hid.BurstTiming).String()
}

// registry is what the guest's keyboard drivers would read when armed for h.
func (h hotkey) registry(t *testing.T) hid.Registry {
	t.Helper()
	if h.dump1Keys == 0 && h.dump2Key == 0 {
		return hid.Armed(hid.CrashOnCtrlScroll())
	}
	k, err := hid.FromRegistry(h.dump1Keys, h.dump2Key)
	if err != nil {
		t.Fatal(err)
	}
	return hid.Armed(k)
}

// wantVerdict checks the driver model's answer for a captured stream: fire at index at, or
// (at < 0) never.
func wantVerdict(t *testing.T, what string, v hid.Verdict, at int) {
	t.Helper()
	switch {
	case at < 0 && v.Crash:
		t.Fatalf("driver model (%s): bug check at %d, want none", what, *v.At)
	case at >= 0 && !v.Crash:
		t.Fatalf("driver model (%s): no bug check (state %#x), want one at %d", what, v.State, at)
	case at >= 0 && *v.At != at:
		t.Fatalf("driver model (%s): bug check at %d, want %d", what, *v.At, at)
	}
}

func set1Verdict(t *testing.T, reg hid.Registry, b []byte, at int) {
	t.Helper()
	wantVerdict(t, "i8042prt on "+hexString(b), hid.SimulateSet1(reg, b), at)
}

func usbVerdict(t *testing.T, reg hid.Registry, rs [][]byte, at int) {
	t.Helper()
	reports := make([]hid.Report, len(rs))
	for i, r := range rs {
		if len(r) != len(hid.Report{}) {
			t.Fatalf("report %d has %d bytes, want %d", i, len(r), len(hid.Report{}))
		}
		copy(reports[i][:], r)
	}
	wantVerdict(t, "kbdhid on "+strings.Join(reportStrings(rs), ", "), hid.SimulateUSB(reg, reports), at)
}

func hexString(b []byte) string { return harness.FormatHex(b) }

func reportStrings(rs [][]byte) []string {
	var out []string
	for _, r := range rs {
		if len(r) != 8 {
			out = append(out, fmt.Sprintf("bad length %d: %s", len(r), harness.FormatHex(r)))
			continue
		}
		out = append(out, harness.TrimReport(r))
	}
	return out
}

func evdevStrings(es []harness.EvdevEvent) []string {
	var out []string
	for _, e := range es {
		if e.Type == "KEY" {
			out = append(out, e.String())
		}
	}
	return out
}

func sendSpec(t *testing.T, ctx context.Context, q *rawQMP, spec string) {
	t.Helper()
	if err := q.sendEvents(ctx, spec); err != nil {
		t.Fatalf("input-send-event %q: %v", spec, err)
	}
}

func sendKey(t *testing.T, ctx context.Context, q *rawQMP, keys ...string) {
	t.Helper()
	var kv []map[string]any
	for _, k := range keys {
		kv = append(kv, map[string]any{"type": "qcode", "data": k})
	}
	if _, err := q.execute(ctx, "send-key", map[string]any{"keys": kv}); err != nil {
		t.Fatalf("send-key %v: %v", keys, err)
	}
}

func wantPS2(t *testing.T, ctx context.Context, g *harness.Guest, from int, want string) []byte {
	t.Helper()
	got, err := g.PS2BytesN(ctx, from, len(strings.Fields(want)), quiet)
	if err != nil {
		t.Fatalf("ps2 stream (got %q so far): %v", hexString(got), err)
	}
	if hexString(got) != want {
		t.Fatalf("ps2 stream = %q, want %q", hexString(got), want)
	}
	return got
}

func wantUSB(t *testing.T, ctx context.Context, g *harness.Guest, from int, want []string) [][]byte {
	t.Helper()
	got, err := g.USBReportsN(ctx, from, len(want), quiet)
	if err != nil {
		t.Fatalf("usb reports (got %q so far): %v", reportStrings(got), err)
	}
	if !slices.Equal(reportStrings(got), want) {
		t.Fatalf("usb reports = %q, want %q", reportStrings(got), want)
	}
	return got
}

func wantEvdev(t *testing.T, ctx context.Context, g *harness.Guest, from int, bus string, want []string) {
	t.Helper()
	got, err := g.EvdevEventsN(ctx, from, bus, len(want), quiet)
	if err != nil {
		t.Fatalf("evdev events (got %q so far): %v", evdevStrings(got), err)
	}
	if !slices.Equal(evdevStrings(got), want) {
		t.Fatalf("evdev %s events = %q, want %q", bus, evdevStrings(got), want)
	}
}

// noneOf asserts that no observation of kind arrived from index from on.
func noneOf(t *testing.T, g *harness.Guest, from int, kind string) {
	t.Helper()
	for _, o := range g.Observations(from) {
		if o.Kind == kind {
			t.Fatalf("unexpected %s observation %q", kind, o.Line)
		}
	}
}

// TestPS2 checks the PS/2 byte streams for the hotkeys, send-key's typematic repeat, NMI
// delivery, a paused guest, and a QMP connection dropped mid-sequence.
func TestPS2(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	g := bootGuest(t, ctx, harness.Config{})
	q, err := dialQMP(ctx, g.QMPPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() }) // q changes when a subtest reconnects

	for _, hk := range hotkeys {
		t.Run(hk.name, func(t *testing.T) {
			m := g.Mark()
			sendSpec(t, ctx, q, hk.spec)
			got := wantPS2(t, ctx, g, m, hk.ps2)
			set1Verdict(t, hk.registry(t), got, hk.fireSet1)
		})
	}
	t.Run("events one per call", func(t *testing.T) {
		m := g.Mark()
		for _, ev := range strings.Fields(hotkeys[0].spec) {
			sendSpec(t, ctx, q, ev)
		}
		wantPS2(t, ctx, g, m, hotkeys[0].ps2)
	})
	t.Run("send-key typematic repeat", func(t *testing.T) {
		m := g.Mark()
		sendKey(t, ctx, q, "ctrl_r", "scroll_lock", "scroll_lock")
		got := wantPS2(t, ctx, g, m, "e0 1d 46 46 c6 c6 e0 9d")
		// Works for i8042prt: the repeated make is ignored, the two breaks count.
		set1Verdict(t, hotkeys[0].registry(t), got, 5)
	})
	t.Run("two send-key calls", func(t *testing.T) {
		m := g.Mark()
		sendKey(t, ctx, q, "ctrl_r", "scroll_lock")
		sendKey(t, ctx, q, "ctrl_r", "scroll_lock")
		got := wantPS2(t, ctx, g, m, "e0 1d 46 c6 e0 9d e0 1d 46 c6 e0 9d")
		// Releasing Right Ctrl between the presses resets the driver.
		set1Verdict(t, hotkeys[0].registry(t), got, -1)
	})
	t.Run("connection killed mid-sequence then release", func(t *testing.T) {
		m := g.Mark()
		// A QMP socket serves one client at a time: close the main connection first.
		q.Close()
		q1, err := dialQMP(ctx, g.QMPPath())
		if err != nil {
			t.Fatal(err)
		}
		if err := q1.sendEvents(ctx, "+ctrl_r +scroll_lock"); err != nil {
			t.Fatal(err)
		}
		q1.Close()
		q2, err := dialQMP(ctx, g.QMPPath())
		if err != nil {
			t.Fatalf("reconnect after a killed connection: %v", err)
		}
		q = q2 // the parent test closes it
		sendSpec(t, ctx, q, "-scroll_lock -ctrl_r")
		got := wantPS2(t, ctx, g, m, "e0 1d 46 c6 e0 9d")
		set1Verdict(t, hotkeys[0].registry(t), got, -1)
	})
	t.Run("nmi", func(t *testing.T) {
		m := g.Mark()
		if _, err := q.execute(ctx, "inject-nmi", nil); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := g.WaitKind(wctx, m, harness.KindNMI); err != nil {
			t.Fatal(err)
		}
		if s, err := q.status(ctx); err != nil || s != "running" {
			t.Fatalf("status after NMI = %q, %v; want running", s, err)
		}
	})
	t.Run("paused guest", func(t *testing.T) {
		if _, err := q.execute(ctx, "stop", nil); err != nil {
			t.Fatal(err)
		}
		if s, _ := q.status(ctx); s != "paused" {
			t.Fatalf("status = %q, want paused", s)
		}
		m := g.Mark()
		err := q.sendEvents(ctx, "+ctrl_r")
		if err == nil || !strings.Contains(err.Error(), "not running") {
			t.Fatalf("input-send-event to a paused guest: err = %v, want \"VM not running\"", err)
		}
		// send-key reports success and QEMU drops the keys.
		sendKey(t, ctx, q, "ctrl_r", "scroll_lock")
		if _, err := q.execute(ctx, "cont", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		noneOf(t, g, m, harness.KindPS2)
		m = g.Mark()
		sendSpec(t, ctx, q, hotkeys[0].spec)
		wantPS2(t, ctx, g, m, hotkeys[0].ps2)
	})
	noneOf(t, g, 0, harness.KindInvalid)
	noneOf(t, g, 0, harness.KindError)
}

// TestUSB checks the HID reports of a usb-kbd on xhci and uhci. The pc machine's PS/2 keyboard
// is present too and must receive nothing (QEMU routes keys to the newest keyboard).
func TestUSB(t *testing.T) {
	t.Parallel()
	for _, kb := range []harness.Keyboard{harness.USBXHCI, harness.USBUHCI} {
		t.Run(string(kb), func(t *testing.T) {
			ctx := testCtx(t, 4*time.Minute)
			g := bootGuest(t, ctx, harness.Config{Keyboards: []harness.Keyboard{kb}})
			q := mustQMP(t, ctx, g.QMPPath())
			start := g.Mark()
			for _, hk := range hotkeys {
				t.Run(hk.name, func(t *testing.T) {
					m := g.Mark()
					sendSpec(t, ctx, q, hk.spec)
					got := wantUSB(t, ctx, g, m, hk.usb)
					usbVerdict(t, hk.registry(t), got, hk.fireUSB)
				})
			}
			t.Run("send-key duplicate is one press", func(t *testing.T) {
				m := g.Mark()
				sendKey(t, ctx, q, "ctrl_r", "scroll_lock", "scroll_lock")
				got := wantUSB(t, ctx, g, m, []string{"00", "10", "10 00 47", "10 00 47", "10", "10", "10", "00"})
				// One press only: kbdhid never sees the second release.
				usbVerdict(t, hotkeys[0].registry(t), got, -1)
			})
			noneOf(t, g, start, harness.KindPS2)
			noneOf(t, g, 0, harness.KindInvalid)
			noneOf(t, g, 0, harness.KindError)
		})
	}
}

// TestVirtio checks the evdev events of a virtio-keyboard-pci.
func TestVirtio(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	g := bootGuest(t, ctx, harness.Config{Keyboards: []harness.Keyboard{harness.Virtio}})
	q := mustQMP(t, ctx, g.QMPPath())
	start := g.Mark()
	for _, hk := range hotkeys {
		t.Run(hk.name, func(t *testing.T) {
			m := g.Mark()
			sendSpec(t, ctx, q, hk.spec)
			wantEvdev(t, ctx, g, m, "virtio", hk.evdev)
		})
	}
	t.Run("send-key duplicate is one press", func(t *testing.T) {
		m := g.Mark()
		sendKey(t, ctx, q, "ctrl_r", "scroll_lock", "scroll_lock")
		wantEvdev(t, ctx, g, m, "virtio", []string{"KEY 97 1", "KEY 70 1", "KEY 70 0", "KEY 97 0"})
	})
	noneOf(t, g, start, harness.KindPS2)
	noneOf(t, g, 0, harness.KindInvalid)
	noneOf(t, g, 0, harness.KindError)
}

// TestPVPanic makes an NMI panic the guest (unknown_nmi_panic) with an ISA pvpanic device and
// checks QEMU's events for each panic action.
func TestPVPanic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action      string
		eventAction string
		then        string // the next event
		status      string // query-status afterwards ("" when QEMU exits)
	}{
		{action: "none", eventAction: "run", status: "running"},
		{action: "pause", eventAction: "pause", then: "STOP", status: "guest-panicked"},
		{action: "", eventAction: "poweroff", then: "SHUTDOWN"},
	} {
		name := tc.action
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t, 4*time.Minute)
			g := bootGuest(t, ctx, harness.Config{PVPanic: true, PanicAction: tc.action, PanicOnNMI: true})
			q := mustQMP(t, ctx, g.QMPPath())
			if _, err := q.execute(ctx, "inject-nmi", nil); err != nil {
				t.Fatal(err)
			}
			ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			ev, err := q.waitEvent(ectx, "GUEST_PANICKED")
			if err != nil {
				t.Fatal(err)
			}
			var data struct {
				Action string `json:"action"`
			}
			if err := json.Unmarshal(ev.Data, &data); err != nil || data.Action != tc.eventAction {
				t.Fatalf("GUEST_PANICKED data = %s, want action %q", ev.Data, tc.eventAction)
			}
			if tc.then != "" {
				if _, err := q.waitEvent(ectx, tc.then); err != nil {
					t.Fatal(err)
				}
			}
			if tc.status != "" {
				if s, err := q.status(ectx); err != nil || s != tc.status {
					t.Fatalf("status = %q, %v; want %q", s, err, tc.status)
				}
				return
			}
			select {
			case <-g.Exited():
			case <-ectx.Done():
				t.Fatal("qemu did not exit after a panic with the default action")
			}
		})
	}
}

// repoRoot finds the module root for the scripts.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := harness.FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// startLibvirtd starts the private libvirtd (scripts/guest/libvirtd.sh) for this test; the last
// test that used it stops it and restores what the script changed.
func startLibvirtd(t *testing.T, ctx context.Context) {
	t.Helper()
	if os.Getenv("CRASHKEY_WITH_LIBVIRT") == "0" {
		t.Skip("CRASHKEY_WITH_LIBVIRT=0: scripts/deps.sh did not install libvirt")
	}
	release, err := harness.UseLibvirtd(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Error(err)
		}
	})
}

// startDomain starts cfg's guest as a libvirt domain, removes it when the test ends (checking
// that it is gone) and waits until it is ready.
func startDomain(t *testing.T, ctx context.Context, cfg harness.Config) *harness.Guest {
	t.Helper()
	return startDomainWith(t, ctx, cfg, harness.LibvirtOptions{})
}

// startDomainWith is startDomain on the libvirt connection and with the name opts give.
func startDomainWith(t *testing.T, ctx context.Context, cfg harness.Config, opts harness.LibvirtOptions) *harness.Guest {
	t.Helper()
	cfg.Artifacts = guestArtifacts(t)
	t0 := time.Now()
	g, err := harness.StartLibvirt(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logGuest(t, g)
		}
		if err := g.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		out, _ := g.Virsh(context.Background(), "list", "--all", "--name")
		if strings.Contains(out, g.Domain()) {
			t.Errorf("domain %s still defined after Stop", g.Domain())
		}
	})
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := g.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("domain %s ready in %v", g.Domain(), time.Since(t0).Round(time.Millisecond))
	if g.QMPAddr() != "" {
		t.Fatalf("QMPAddr = %q for a libvirt domain, want empty", g.QMPAddr())
	}
	return g
}

// TestLibvirt runs the guest as libvirt domains with a pvpanic device (<panic model='isa'/>,
// <on_crash>preserve</on_crash>): the hotkey through virsh qemu-monitor-command arrives exactly,
// virsh inject-nmi reaches the guest, and a panic leaves the domain "crashed (panicked)".
func TestLibvirt(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 5*time.Minute)
	t0 := time.Now()
	startLibvirtd(t, ctx)
	t.Logf("libvirtd up in %v", time.Since(t0).Round(time.Millisecond))

	t.Run("keys and nmi", func(t *testing.T) {
		t.Parallel()
		g := startDomain(t, ctx, harness.Config{PVPanic: true})
		m := g.Mark()
		cmd, _ := json.Marshal(map[string]any{"execute": "input-send-event",
			"arguments": map[string]any{"events": keyEvents(hotkeys[0].spec)}})
		if _, err := g.Virsh(ctx, "qemu-monitor-command", g.Domain(), string(cmd)); err != nil {
			t.Fatal(err)
		}
		got := wantPS2(t, ctx, g, m, hotkeys[0].ps2)
		set1Verdict(t, hotkeys[0].registry(t), got, hotkeys[0].fireSet1)

		m = g.Mark()
		if _, err := g.Virsh(ctx, "inject-nmi", g.Domain()); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := g.WaitKind(wctx, m, harness.KindNMI); err != nil {
			t.Fatal(err)
		}
		st, err := g.Virsh(ctx, "domstate", g.Domain())
		if err != nil || strings.TrimSpace(st) != "running" {
			t.Fatalf("domstate = %q, %v; want running", st, err)
		}
		noneOf(t, g, 0, harness.KindError)
	})
	t.Run("pvpanic crash", func(t *testing.T) {
		t.Parallel()
		g := startDomain(t, ctx, harness.Config{PVPanic: true, PanicOnNMI: true})
		if _, err := g.Virsh(ctx, "inject-nmi", g.Domain()); err != nil {
			t.Fatal(err)
		}
		var st string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			st, _ = g.Virsh(ctx, "domstate", "--reason", g.Domain())
			if strings.TrimSpace(st) == "crashed (panicked)" {
				return
			}
		}
		t.Fatalf("domstate --reason = %q, want \"crashed (panicked)\"", strings.TrimSpace(st))
	})
}
