package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gold "github.com/crashkey/crashkey/internal/golden"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/standin"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/registry"
)

// winMachine is a stand-in machine whose i8042prt and kbdhid read reg (as Load would derive it
// from the hive).
func winMachine(ps2, usb hid.Registry, autoReboot bool) *standin.Machine {
	return &standin.Machine{
		Drivers: []standin.DriverConfig{
			{Driver: hid.I8042prt, Present: true, Values: ps2, Effective: ps2.Effective()},
			{Driver: hid.Kbdhid, Present: true, Values: usb, Effective: usb.Effective()},
		},
		Crash: standin.CrashConfig{CrashDumpEnabled: 2, Type: registry.DumpKernel, AutoReboot: autoReboot},
	}
}

// winInput is one thing that happens to the running stand-in: input from a keyboard or an NMI.
type winInput struct {
	ev  inputEvent
	nmi bool
}

func ps2Bytes(hexs string) []winInput {
	var in []winInput
	for _, w := range strings.Fields(hexs) {
		var b byte
		fmt.Sscanf(w, "%02x", &b)
		in = append(in, winInput{ev: inputEvent{Kind: "ps2", Data: []byte{b}}})
	}
	return in
}

func usbReports(reports ...string) []winInput {
	var in []winInput
	for _, r := range reports {
		var rep [8]byte
		for i, w := range strings.Fields(r) {
			fmt.Sscanf(w, "%02x", &rep[i])
		}
		in = append(in, winInput{ev: inputEvent{Kind: "usb", Data: rep[:]}})
	}
	return in
}

// TestWindowsGuest runs the windows mode's crash logic on the byte streams QEMU delivers
// (qemu-observed.md) with the side effects (pvpanic + dump, sync, reboot) recorded instead of
// done, and compares the observation lines and the calls with testdata/windows/*.golden.
func TestWindowsGuest(t *testing.T) {
	ctrlScroll := hid.Registry{CrashOnCtrlScroll: 1}
	none := hid.Registry{}
	d1, d2 := uint32(0x11), uint32(0x21) // LShift+RShift+D
	shiftD := hid.Registry{Dump1Keys: &d1, Dump2Key: &d2}
	// input-send-event of the default hotkey; a send-key chord of it.
	defaultPS2 := "e0 1d 46 c6 46 c6 e0 9d"
	defaultUSB := []string{"00", "10", "10 00 47", "10", "10 00 47", "10", "10", "00"}
	chordUSB := []string{"00", "10", "10 00 47", "10 00 47", "10", "10", "10", "00"}
	written := &standin.CrashResult{Panic: standin.CrashLoaded, Dump: &standin.DumpInfo{
		Type: dump.TypeBitmapKernel, Setting: registry.DumpKernel, BugCheck: 0xE2, Size: 5603380,
		SHA256: "ea8c", Target: "pagefile.sys", DiskOffset: 45109248, Processors: 1, StoredPages: 1364,
	}}
	tests := []struct {
		name       string
		m          *standin.Machine
		in         []winInput
		result     *standin.CrashResult
		bugCheckEr error
	}{
		{"ps2-default", winMachine(ctrlScroll, ctrlScroll, true), append(ps2Bytes(defaultPS2), ps2Bytes("e0 1d 46 c6 46 c6")...), written, nil},
		{"usb-default", winMachine(ctrlScroll, ctrlScroll, true), usbReports(defaultUSB...), written, nil},
		{"usb-chord-no-crash", winMachine(ctrlScroll, ctrlScroll, true), usbReports(chordUSB...), written, nil},
		{"ps2-not-armed", winMachine(none, ctrlScroll, true), ps2Bytes(defaultPS2), written, nil},
		{"ps2-custom", winMachine(shiftD, none, true), ps2Bytes("2a 36 20 a0 20 a0 b6 aa"), written, nil},
		{"nmi-twice-no-autoreboot", winMachine(ctrlScroll, ctrlScroll, false), []winInput{{nmi: true}, {nmi: true}}, written, nil},
		{"dump-disabled", winMachine(ctrlScroll, ctrlScroll, true), ps2Bytes(defaultPS2),
			&standin.CrashResult{Panic: standin.Panicked}, fmt.Errorf("bug check 0x000000E2: no dump: %w", standin.ErrDumpDisabled)},
		{"no-pvpanic", winMachine(ctrlScroll, ctrlScroll, true), ps2Bytes(defaultPS2),
			&standin.CrashResult{Panic: standin.CrashLoaded, PanicError: "no pvpanic device at port 0x505", Dump: written.Dump}, nil},
		{"usb-short-report", winMachine(ctrlScroll, ctrlScroll, true), []winInput{{ev: inputEvent{Kind: "usb", Data: []byte{1, 2, 3}}}}, written, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, path := fileOutput(t)
			var calls []string
			g := newWinGuest(out, tt.m, winDeps{
				bugCheck: func(code uint32, params [4]uint64) (*standin.CrashResult, error) {
					calls = append(calls, fmt.Sprintf("bugcheck %#x %#x", code, params))
					res := *tt.result
					if res.Dump != nil {
						d := *res.Dump
						d.BugCheck, d.Params = code, params
						res.Dump = &d
					}
					return &res, tt.bugCheckEr
				},
				sync:   func() { calls = append(calls, "sync") },
				reboot: func() error { calls = append(calls, "reboot"); return errors.New("reboot: operation not permitted") },
			})
			for _, in := range tt.in {
				if in.nmi {
					g.nmi()
				} else {
					g.feed(in.ev)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b) + "# calls: " + strings.Join(calls, "; ") + "\n"
			gold.CheckString(t, filepath.Join("testdata", "windows", tt.name+".golden"), got)
		})
	}
}

// fileOutput is an observation output into a new file, and the file's path.
func fileOutput(t *testing.T) (*output, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := openOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	return out, path
}

// TestWaitLoad: a disk that never appears is reported with the fix, after the wait.
func TestWaitLoad(t *testing.T) {
	_, err := waitLoad(filepath.Join(t.TempDir(), "vda"), 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not appear") || !strings.Contains(err.Error(), "harness.Config.Disks") {
		t.Errorf("err = %v", err)
	}
	notDisk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(notDisk, make([]byte, 4096), 0o644)
	if _, err := waitLoad(notDisk, time.Second); err == nil || !strings.Contains(err.Error(), "standin-disk.sh") {
		t.Errorf("junk disk: err = %v", err)
	}
}
