package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/standin"
	"github.com/crashkey/crashkey/hid"
)

// walk translates va through the region's page tables as an x86-64 CPU (and QEMU's debug
// walk) does from CR3 = dtb, and returns the offset in buf of the byte it maps to.
func walk(t *testing.T, buf []byte, pa, dtb, va uint64) uint64 {
	t.Helper()
	table := dtb
	for level, shift := 0, uint(39); level < 4; level, shift = level+1, shift-9 {
		off := table - pa + (va>>shift&0x1FF)*8
		if off+8 > uint64(len(buf)) {
			t.Fatalf("va %#x: level %d table at %#x is outside the region", va, level, table)
		}
		e := binary.LittleEndian.Uint64(buf[off:])
		if e&1 == 0 {
			t.Fatalf("va %#x: not present at level %d", va, level)
		}
		table = e &^ 0xFFF &^ (1 << 63)
	}
	return table - pa + va&0xFFF
}

func TestBuildWinRegion(t *testing.T) {
	const pa = 0x5000000
	buf := make([]byte, winRegionSize)
	runs := []dump.Run{{BasePage: 1, PageCount: 0x9e}, {BasePage: 0x100, PageCount: 0xfee0}}
	w, err := buildWinRegion(buf, pa, runs, 2, time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), 0x1234)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	// The note: an ELF note "VMCOREINFO" of exactly the size QEMU's win-dmp writer demands.
	note := buf[w.NotePA-pa:]
	if n, d := le.Uint32(note), le.Uint32(note[4:]); n != 11 || d != 0x2000 || string(note[12:23]) != "VMCOREINFO\x00" {
		t.Fatalf("note header namesz %d descsz %#x name %q", n, d, note[12:23])
	}
	hdr := note[winNoteHeader : winNoteHeader+winHeaderSize]
	f, err := dump.Open(bytes.NewReader(hdr), int64(len(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	h := f.Header()
	if h.DirectoryTableBase.Value != pa || h.KdDebuggerDataBlock.Value != w.KDBG || h.NumberProcessors.Value != 2 || h.DumpType != dump.TypeFull {
		t.Errorf("header: dtb %v kdbg %v cpus %v type %v", h.DirectoryTableBase, h.KdDebuggerDataBlock, h.NumberProcessors, h.DumpType)
	}
	if le.Uint64(hdr[0x40:]) != w.KDBG {
		t.Errorf("BugcheckParameter1 %#x, want the KDBG address (the FwCfg driver's fallback)", le.Uint64(hdr[0x40:]))
	}
	if got := le.Uint32(hdr[0x88:]); got != 2 || le.Uint64(hdr[0x90:]) != 0x9e+0xfee0 || le.Uint64(hdr[0xA8:]) != 0x100 {
		t.Errorf("PhysicalMemoryBlock: %d runs, %#x pages", got, le.Uint64(hdr[0x90:]))
	}
	// What QEMU reads through the page tables from CR3 = DirectoryTableBase.
	kdbg := walk(t, buf, pa, w.DTB, w.KDBG)
	if string(buf[kdbg+kdbgOwnerTag:kdbg+kdbgOwnerTag+4]) != "KDBG" {
		t.Fatalf("no KDBG owner tag at %#x", w.KDBG)
	}
	bug := walk(t, buf, pa, w.DTB, le.Uint64(buf[kdbg+kdbgKiBugcheckData:]))
	if !bytes.Equal(buf[bug:bug+40], make([]byte, 40)) {
		t.Errorf("KiBugcheckData is not empty: QEMU would not report a live system")
	}
	blk := le.Uint64(buf[kdbg+kdbgKiProcessorBlock:])
	off := uint64(le.Uint16(buf[kdbg+kdbgOffsetPrcbContext:]))
	seen := map[uint64]bool{}
	for cpu := uint64(0); cpu < 2; cpu++ {
		prcb := le.Uint64(buf[walk(t, buf, pa, w.DTB, blk+8*cpu):])
		ctx := le.Uint64(buf[walk(t, buf, pa, w.DTB, prcb+off):])
		end := walk(t, buf, pa, w.DTB, ctx+0x4D0-1)
		start := walk(t, buf, pa, w.DTB, ctx)
		if end-start != 0x4D0-1 || seen[start] || start < winOffContext || end >= winOffNote {
			t.Errorf("CPU %d context at %#x…%#x overlaps or is outside the context area", cpu, start, end)
		}
		seen[start] = true
	}
	if m := string(buf[w.MarkerPA-pa : w.MarkerPA-pa+winMarkerLen]); m != w.Marker || len(m) != winMarkerLen {
		t.Errorf("marker %q, want %q", m, w.Marker)
	}

	for _, bad := range []struct {
		pa   uint64
		cpus int
		runs []dump.Run
	}{{pa + 0x1000, 1, runs}, {pa, 0, runs}, {pa, 17, runs}, {pa, 1, nil}, {pa, 1, make([]dump.Run, 43)}} {
		if _, err := buildWinRegion(make([]byte, winRegionSize), bad.pa, bad.runs, bad.cpus, time.Now(), 1); err == nil {
			t.Errorf("pa %#x cpus %d runs %d: no error", bad.pa, bad.cpus, len(bad.runs))
		}
	}
}

// TestWindowsGuestHung: a stand-in told to ignore keys and NMIs neither fires nor bug-checks.
func TestWindowsGuestHung(t *testing.T) {
	ctrlScroll := hid.Registry{CrashOnCtrlScroll: 1}
	out, path := fileOutput(t)
	var calls int
	g := newWinGuest(out, winMachine(ctrlScroll, ctrlScroll, true), winDeps{
		bugCheck: func(uint32, [4]uint64) (*standin.CrashResult, error) { calls++; return &standin.CrashResult{}, nil },
		sync:     func() {},
		reboot:   func() error { return nil },
	})
	g.ignoreKeys, g.ignoreNMI = true, true
	for _, in := range ps2Bytes("e0 1d 46 c6 46 c6 e0 9d") {
		g.feed(in.ev)
	}
	g.nmi()
	raw, _ := os.ReadFile(path)
	b := string(raw)
	if calls != 0 || strings.Contains(b, "bugcheck") || !strings.Contains(b, "windows nmi ignored") || !strings.Contains(b, "ps2 e0") {
		t.Errorf("a hung guest crashed (%d bug checks) or did not record its input:\n%s", calls, b)
	}
	g.ignoreKeys = false
	g.region = make([]byte, winRegionSize)
	for _, in := range ps2Bytes("e0 1d 46 c6 46 c6 e0 9d") {
		g.feed(in.ev)
	}
	if calls != 1 {
		t.Errorf("keys handled again: %d bug checks, want 1", calls)
	}
	// The bug check is in KiBugcheckData, where QEMU's win-dmp writer reads it.
	if got := binary.LittleEndian.Uint32(g.region[winOffBugcheck:]); got != dump.BugCheckManuallyInitiated {
		t.Errorf("KiBugcheckData code %#x, want 0xE2", got)
	}
}
