package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStreamFollow feeds a file the way QEMU's serial backend does (lines split across writes)
// and checks the waiting helpers.
func TestStreamFollow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data.log")
	g := &Guest{stream: newStream(), paths: Paths{Data: path, Console: filepath.Join(dir, "console.log")}}
	g.startTail()
	defer func() {
		g.stopTailOnce()
		<-g.tailDone
	}()

	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	write := func(s string) {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("boot recorder\ndev ps2 serio_raw /dev/serio_raw0\nrea")
	time.Sleep(30 * time.Millisecond)
	write("dy\n")
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m := g.Mark()
	if m != 3 {
		t.Fatalf("Mark = %d after three lines", m)
	}
	go func() {
		for _, b := range []string{"e0", "1d", "46", "c6"} {
			write("ps2 " + b + "\n")
			time.Sleep(20 * time.Millisecond)
		}
		write("usb 00 00 00 00 00 00 00 00\nps2 zz\n")
		for _, b := range []string{"46", "c6", "e0", "9d"} {
			write("ps2 " + b + "\n")
		}
	}()
	got, err := g.PS2Bytes(ctx, m, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if FormatHex(got) != "e0 1d 46 c6 46 c6 e0 9d" {
		t.Fatalf("PS2Bytes = %q", FormatHex(got))
	}
	rs, err := g.USBReports(ctx, m, 10*time.Millisecond)
	if err != nil || len(rs) != 1 || TrimReport(rs[0]) != "00" {
		t.Fatalf("USBReports = %x, %v", rs, err)
	}
	inv, err := g.WaitKind(ctx, m, KindInvalid)
	if err != nil || !strings.Contains(inv.Fields[0], "not a two-digit hex byte") || inv.Line != "ps2 zz" {
		t.Fatalf("invalid line = %+v, %v", inv, err)
	}
	// CollectN does not stop at a pause inside the stream.
	m2 := g.Mark()
	go func() {
		write("ps2 e0\n")
		time.Sleep(200 * time.Millisecond)
		write("ps2 1d\n")
	}()
	got, err = g.PS2BytesN(ctx, m2, 2, 50*time.Millisecond)
	if err != nil || FormatHex(got) != "e0 1d" {
		t.Fatalf("PS2BytesN across a pause = %q, %v", FormatHex(got), err)
	}
	m3 := g.Mark()
	write("evdev usb KEY 97 1\nevdev virtio KEY 97 1\nevdev virtio KEY 97 0\n")
	evs, err := g.EvdevEventsN(ctx, m3, "virtio", 2, 50*time.Millisecond)
	if err != nil || len(evs) != 2 || evs[0].String() != "KEY 97 1" || evs[1].String() != "KEY 97 0" || evs[0].Bus != "virtio" {
		t.Fatalf("EvdevEventsN = %+v, %v", evs, err)
	}

	for i, o := range g.Observations(0) {
		if o.Index != i {
			t.Fatalf("observation %d has Index %d", i, o.Index)
		}
	}

	// A wait that nothing satisfies ends with the context.
	short, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := g.WaitKind(short, 0, KindNMI); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitKind without an nmi: err = %v", err)
	}
	if _, err := g.Collect(short, g.Mark(), KindPS2, time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Collect with nothing coming: err = %v", err)
	}

	// An error line before ready makes WaitReady fail.
	g2 := &Guest{stream: newStream(), paths: Paths{Data: filepath.Join(dir, "d2"), Console: filepath.Join(dir, "c2")}}
	os.WriteFile(g2.paths.Data, []byte("boot recorder\nerror missing keyboards after 1m0s: usb\nready\n"), 0o644)
	g2.startTail()
	defer func() { g2.stopTailOnce(); <-g2.tailDone }()
	if err := g2.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "missing keyboards") {
		t.Fatalf("WaitReady after an error line: %v", err)
	}
}

// TestStreamEnd checks that waits end when the stream ends (QEMU exited).
func TestStreamEnd(t *testing.T) {
	dir := t.TempDir()
	exited := make(chan struct{})
	g := &Guest{stream: newStream(), exited: exited, paths: Paths{Data: filepath.Join(dir, "d"), Console: filepath.Join(dir, "c")}}
	os.WriteFile(g.paths.Data, []byte("boot recorder\nps2 e0\n"), 0o644)
	g.startTail()
	close(exited)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.WaitKind(ctx, 0, KindReady); !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("WaitKind after exit: err = %v, want ErrStreamEnded", err)
	}
	got, err := g.PS2Bytes(ctx, 0, time.Hour)
	if err != nil || FormatHex(got) != "e0" {
		t.Fatalf("PS2Bytes after exit = %q, %v", FormatHex(got), err)
	}
	if got, err := g.PS2BytesN(ctx, 0, 2, time.Hour); !errors.Is(err, ErrStreamEnded) || FormatHex(got) != "e0" {
		t.Fatalf("PS2BytesN(2) after exit = %q, %v; want e0 and ErrStreamEnded", FormatHex(got), err)
	}
	<-g.tailDone
}
