package standin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/pull"
)

// TestCrashDumpAndMove is the stand-in's whole crash cycle on real disks: the dump written
// into pagefile.sys's sectors (checked with ntfscat, pull and dump.Check), then moved to
// MEMORY.DMP (or the Minidump folder) with the host's ntfscp as SMSS would at the next boot.
func TestCrashDumpAndMove(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		bugcheck uint32
		params   [4]uint64
		typ      dump.DumpType
		runs     int    // memory runs in the header
		pages    uint64 // stored pages
		dest     string // prefix of the moved file's path
		target   string // where the dump is written; "" means pagefile.sys
	}{
		// qemuMemory: runs of 159 and 7904 pages, scaled by 16 (complete), 32 (active), 48 (kernel).
		{"complete", []string{"--dump-type", "complete"}, 0xE2, [4]uint64{}, dump.TypeFull, 2, 10 + 494, `Windows\MEMORY.DMP`, ""},
		// pagefile.sys in 8 pieces: the dump is scattered over them on the disk.
		{"complete fragmented", []string{"--dump-type", "complete", "--fragmented"}, 0xE2, [4]uint64{}, dump.TypeFull, 2, 10 + 494, `Windows\MEMORY.DMP`, ""},
		{"kernel nmi", []string{"--dump-type", "kernel"}, 0x80, NMIParams, dump.TypeBitmapKernel, 2, 4 + 165, `Windows\MEMORY.DMP`, ""},
		{"automatic", []string{"--dump-type", "automatic", "--client"}, 0xE2, [4]uint64{}, dump.TypeBitmapKernel, 2, 4 + 165, `Windows\MEMORY.DMP`, ""},
		{"active", []string{"--dump-type", "active"}, 0xE2, [4]uint64{}, dump.TypeBitmapFull, 2, 5 + 247, `Windows\MEMORY.DMP`, ""},
		{"small", []string{"--dump-type", "small"}, 0xE2, [4]uint64{}, dump.TypeTriage, 0, 0, `Windows\Minidump\112126-42-01.dmp`, ""},
		// CrashControl\DedicatedDumpFile: the dump goes there instead of the paging file.
		{"dedicated", []string{"--dump-type", "kernel", "--dedicated-mib", "4"}, 0xE2, [4]uint64{}, dump.TypeBitmapKernel, 2, 4 + 165, `Windows\MEMORY.DMP`, "DedicatedDump.sys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			raw := makeDisk(t, dir, "disk.raw", append(tc.args, "--pagefile-mib", "4")...)
			m, err := Load(raw)
			if err != nil {
				t.Fatal(err)
			}
			if frag := strings.Contains(tc.name, "fragmented"); frag != (len(m.Pagefile.Extents) > 4) {
				t.Fatalf("pagefile.sys has %d extents (fragmented %t)", len(m.Pagefile.Extents), frag)
			}
			target := tc.target
			if target == "" {
				target = "pagefile.sys"
			}
			info, err := WriteCrashDumpWith(m, raw, tc.bugcheck, tc.params, crashTime, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			if info.Type != tc.typ || info.Runs != tc.runs || info.StoredPages != tc.pages || info.Processors != 2 || info.Target != target {
				t.Errorf("dump info %+v; want type %s, %d runs, %d pages, 2 processors", info, tc.typ, tc.runs, tc.pages)
			}

			// ntfs-3g reads the target through the file system: the dump must be at offset 0,
			// the rest of the file untouched (zero).
			vol := extractVolume(t, m, raw)
			pf := ntfscat(t, vol, target)
			if int64(len(pf)) != 4<<20 || info.Size > int64(len(pf)) {
				t.Fatalf("%s is %d bytes, dump %d", target, len(pf), info.Size)
			}
			if got := sha(pf[:info.Size]); got != info.SHA256 {
				t.Errorf("ntfscat %s: first %d bytes have sha256 %s, WriteCrashDump says %s", target, info.Size, got, info.SHA256)
			}
			if target != "pagefile.sys" && !bytes.Equal(ntfscat(t, vol, "pagefile.sys"), make([]byte, 4<<20)) {
				t.Errorf("pagefile.sys changed although the dump went to %s", target)
			}
			if !bytes.Equal(pf[info.Size:], make([]byte, len(pf)-int(info.Size))) {
				t.Errorf("bytes after the dump were changed")
			}
			f, rep := checkDump(t, pf[:info.Size], tc.bugcheck)
			if rep.Verdict != dump.Valid {
				t.Errorf("dump.Check: %s: %+v", rep.Verdict, rep.Findings)
			}
			h := f.Header()
			if f.Type() != tc.typ || h.NumberProcessors.Value != 2 || h.BugCheckParameters[0].Value != tc.params[0] || h.MachineImageType.Value != dump.MachineAMD64 {
				t.Errorf("header: type %s, %d processors, param1 0x%x, machine 0x%x", f.Type(), h.NumberProcessors.Value, h.BugCheckParameters[0].Value, h.MachineImageType.Value)
			}
			if ts, ok := h.Time(); !ok || !ts.Equal(crashTime) {
				t.Errorf("SystemTime %v, want %v", ts, crashTime)
			}
			if up, ok := h.UpTime(); !ok || up != testOpts.UpTime {
				t.Errorf("SystemUpTime %v, want %v", up, testOpts.UpTime)
			}
			if tc.typ != dump.TypeTriage {
				// The first page of the big run holds pattern page 0x100 of the dump's seed.
				page := make([]byte, dump.PageSize)
				if _, err := f.ReadPhysical(page, 0x100*dump.PageSize); err != nil {
					t.Fatalf("ReadPhysical(0x100000): %v", err)
				}
				want := make([]byte, dump.PageSize)
				dump.FillPattern(want, 0x100, info.Seed)
				if !bytes.Equal(page, want) {
					t.Errorf("physical page 0x100 holds %x…, want pattern page %x…", page[:16], want[:16])
				}
				if tc.typ != dump.TypeFull {
					if b := f.Bitmap(); b == nil || b.Pages != 0x1fe0 {
						t.Errorf("bitmap %+v: want it to cover all 0x1fe0 pages of memory", b)
					}
				}

				// pull finds the dump in the pagefile of the disk image and cuts it out.
				img, err := disk.Open(raw, disk.Options{})
				if err != nil {
					t.Fatal(err)
				}
				res, err := pull.Pull(t.Context(), img, pull.Options{OutDir: t.TempDir(), Sources: pull.Sources{DedicatedDumpFile: m.Crash.DedicatedDumpFile}})
				img.Close()
				if err != nil {
					t.Fatalf("pull: %v", err)
				}
				if !res.FromPagefile || res.Source != target || res.SHA256 != info.SHA256 || res.Size != info.Size {
					t.Errorf("pull: %+v; want the dump from %s, %d bytes, sha256 %s", res, target, info.Size, info.SHA256)
				}
			}

			// The next boot: SMSS moves the dump out of the pagefile. ntfscp works on the
			// volume file, as the guest's on /dev/vda1.
			mm, err := Load(vol)
			if err != nil {
				t.Fatal(err)
			}
			ntfscpPath, _ := lookPath(t, "ntfscp")
			mv, err := MoveDumpAtBootWith(context.Background(), mm, MoveOptions{Device: vol, Ntfscp: ntfscpPath, TempDir: t.TempDir()})
			if err != nil {
				t.Fatalf("move: %v", err)
			}
			if !mv.Moved || !mv.Verified || !mv.Wiped || mv.SHA256 != info.SHA256 || mv.Size != info.Size || mv.Type != tc.typ || !strings.HasPrefix(mv.Dest, tc.dest) {
				t.Fatalf("move: %+v; want %s moved, verified and wiped", mv, tc.dest)
			}
			if got := sha(ntfscat(t, vol, mv.Dest)); got != info.SHA256 {
				t.Errorf("ntfscat %s: sha256 %s, want %s", mv.Dest, got, info.SHA256)
			}
			pf = ntfscat(t, vol, target)
			if !bytes.Equal(pf[:dump.HeaderSize64], make([]byte, dump.HeaderSize64)) {
				t.Errorf("the dump header in %s was not wiped: %q", target, pf[:8])
			}
			img, err := disk.Open(vol, disk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.typ != dump.TypeTriage {
				res, err := pull.Pull(t.Context(), img, pull.Options{OutDir: t.TempDir()})
				if err != nil || res.Source != `Windows\MEMORY.DMP` || res.SHA256 != info.SHA256 {
					t.Errorf("pull after the move: %+v, %v", res, err)
				}
			} else {
				res, err := pull.PullMinidumps(t.Context(), img, pull.Options{OutDir: t.TempDir()})
				if err != nil || len(res) != 1 || res[0].Source != mv.Dest || res[0].SHA256 != info.SHA256 {
					t.Errorf("pull --minidumps after the move: %+v, %v", res, err)
				}
			}
			img.Close()
			// Put the volume back into the disk (what the guest's /dev/vda1 writes did to
			// /dev/vda): the disk now shows MEMORY.DMP and no dump in the pagefile.
			if tc.typ != dump.TypeTriage {
				spliceVolume(t, raw, vol, m.Volume.Start)
				img, err := disk.Open(raw, disk.Options{})
				if err != nil {
					t.Fatal(err)
				}
				cands, err := pull.List(img, pull.Sources{})
				img.Close()
				if err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, c := range cands {
					if c.Valid {
						kinds = append(kinds, c.Kind+":"+c.Source)
					}
				}
				if len(kinds) != 1 || kinds[0] != pull.KindMemoryDump+`:Windows\MEMORY.DMP` {
					t.Errorf("valid dumps on the reassembled disk: %v; want only Windows\\MEMORY.DMP", kinds)
				}
			}
			// The boot after that finds nothing to move.
			again, err := MoveDumpAtBootWith(context.Background(), mm, MoveOptions{Device: vol, Ntfscp: ntfscpPath, TempDir: t.TempDir()})
			if err != nil || again.Moved || again.Reason != "no dump in "+target {
				t.Errorf("second move: %+v, %v", again, err)
			}
		})
	}
}

func lookPath(t testing.TB, name string) (string, error) {
	t.Helper()
	needTools(t)
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not in PATH: %v", name, err)
	}
	return p, nil
}

func TestDumpRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		opts DumpOptions
		want error
	}{
		{"disabled", []string{"--dump-type", "none"}, testOpts, ErrDumpDisabled},
		// A 1 GiB guest's complete dump at scale 16 is 64 MiB: it does not fit 4 MiB.
		{"too large", []string{"--dump-type", "complete"}, DumpOptions{Processors: 1, Memory: []MemRange{{0, 1 << 30}}, Scale: 16}, ErrDumpTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := makeDisk(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".raw", append(tc.args, "--pagefile-mib", "4")...)
			before := fileSHA(t, raw)
			m, err := Load(raw)
			if err != nil {
				t.Fatal(err)
			}
			_, err = WriteCrashDumpWith(m, raw, 0xE2, [4]uint64{}, crashTime, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("WriteCrashDump: %v, want %v", err, tc.want)
			}
			if after := fileSHA(t, raw); after != before {
				t.Errorf("the disk was changed although no dump was written")
			}
			// BugCheck raises Panicked only when dumps are disabled.
			port := pvpanicFile(t, 0x03)
			res, err := BugCheck(m, raw, 0xE2, [4]uint64{}, crashTime, PVPanic{Path: port, Port: 0x505}, tc.opts)
			if !errors.Is(err, tc.want) || res == nil || res.Dump != nil {
				t.Fatalf("BugCheck: %+v, %v", res, err)
			}
			wantPanic := PanicKind(0)
			if tc.want == ErrDumpDisabled {
				wantPanic = Panicked
			}
			wantByte := byte(0x03) // the features, untouched
			if wantPanic != 0 {
				wantByte = byte(wantPanic)
			}
			if res.Panic != wantPanic || portByte(t, port) != wantByte {
				t.Errorf("pvpanic: event %v, port byte 0x%02x; want %v (0x%02x)", res.Panic, portByte(t, port), wantPanic, wantByte)
			}
		})
	}
}

func TestBugCheckSignalsCrashLoaded(t *testing.T) {
	t.Parallel()
	raw := makeDisk(t, t.TempDir(), "disk.raw", "--pagefile-mib", "4")
	m, err := Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	port := pvpanicFile(t, 0x03)
	res, err := BugCheck(m, raw, 0xE2, [4]uint64{}, crashTime, PVPanic{Path: port, Port: 0x505}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Panic != CrashLoaded || res.PanicError != "" || portByte(t, port) != byte(CrashLoaded) {
		t.Errorf("pvpanic: %+v, port byte 0x%02x; want crash-loaded (0x02)", res, portByte(t, port))
	}
	if res.Dump == nil || res.Dump.Type != dump.TypeBitmapKernel {
		t.Fatalf("dump %+v", res.Dump)
	}
	// Without a pvpanic device the dump is written all the same.
	noDev := pvpanicFile(t, 0xFF)
	res, err = BugCheck(m, raw, 0xE2, [4]uint64{}, crashTime, PVPanic{Path: noDev, Port: 0x505}, testOpts)
	if err != nil || res.Dump == nil || !strings.Contains(res.PanicError, "no pvpanic device") || portByte(t, noDev) != 0xFF {
		t.Errorf("without pvpanic: %+v, %v", res, err)
	}
}

func TestOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := filepath.Join(dir, "old.dmp")
	// An older, larger MEMORY.DMP from a previous crash.
	if err := dump.WriteFile(old, dump.Spec{Type: dump.TypeFull, Is64: true, BugCheck: 0x1E, Runs: []dump.Run{{BasePage: 0, PageCount: 1500}}}, nil); err != nil {
		t.Fatal(err)
	}
	oldSum := fileSHA(t, old)
	for _, tc := range []struct {
		name      string
		overwrite bool
	}{{"overwrite", true}, {"keep", false}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--pagefile-mib", "4", "--memory-dmp", old, "--dump-type", "complete"}
			if !tc.overwrite {
				args = append(args, "--no-overwrite")
			}
			raw := makeDisk(t, dir, tc.name+".raw", args...)
			m, err := Load(raw)
			if err != nil {
				t.Fatal(err)
			}
			info, err := WriteCrashDumpWith(m, raw, 0xE2, [4]uint64{}, crashTime, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			vol := extractVolume(t, m, raw)
			mm, err := Load(vol)
			if err != nil {
				t.Fatal(err)
			}
			ntfscpPath, _ := lookPath(t, "ntfscp")
			mv, err := MoveDumpAtBootWith(context.Background(), mm, MoveOptions{Device: vol, Ntfscp: ntfscpPath, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			got := sha(ntfscat(t, vol, `Windows\MEMORY.DMP`))
			if tc.overwrite {
				if !mv.Moved || mv.Kept || got != info.SHA256 {
					t.Errorf("Overwrite=1: %+v; MEMORY.DMP sha256 %s, want the new dump %s", mv, got, info.SHA256)
				}
			} else if mv.Moved || !mv.Kept || got != oldSum {
				t.Errorf("Overwrite=0: %+v; MEMORY.DMP sha256 %s, want the old dump %s", mv, got, oldSum)
			}
			if !mv.Wiped || !bytes.Equal(ntfscat(t, vol, "pagefile.sys")[:8], make([]byte, 8)) {
				t.Errorf("the pagefile's dump header was not wiped")
			}
		})
	}
}

func TestRefuseQcow2(t *testing.T) {
	t.Parallel()
	img := makeDisk(t, t.TempDir(), "disk.qcow2", "--pagefile-mib", "4")
	before := fileSHA(t, img)
	m, err := Load(img)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != disk.FormatQcow2 || m.Pagefile == nil {
		t.Fatalf("machine %+v", m)
	}
	if _, err := WriteCrashDumpWith(m, img, 0xE2, [4]uint64{}, crashTime, testOpts); !errors.Is(err, ErrNotRaw) {
		t.Errorf("WriteCrashDump on qcow2: %v, want ErrNotRaw", err)
	}
	if _, err := MoveDumpAtBoot(m, img, "ntfscp"); !errors.Is(err, ErrNotRaw) {
		t.Errorf("MoveDumpAtBoot on qcow2: %v, want ErrNotRaw", err)
	}
	if fileSHA(t, img) != before {
		t.Errorf("the qcow2 image was changed")
	}
}

func TestMoveNeedsPartitionDevice(t *testing.T) {
	t.Parallel()
	raw := makeDisk(t, t.TempDir(), "disk.raw", "--pagefile-mib", "4")
	m, err := Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCrashDumpWith(m, raw, 0xE2, [4]uint64{}, crashTime, testOpts); err != nil {
		t.Fatal(err)
	}
	// disk.raw1 does not exist: the error says how to name the partition device, and the
	// dump stays in the pagefile for the next try.
	_, err = MoveDumpAtBootWith(context.Background(), m, MoveOptions{Device: raw, Ntfscp: "ntfscp", TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "PartitionDevice") {
		t.Fatalf("move without a partition device: %v", err)
	}
	pf := ntfscat(t, extractVolume(t, m, raw), "pagefile.sys")
	if string(pf[:8]) != "PAGEDU64" {
		t.Errorf("the dump header was wiped although the move failed: %q", pf[:8])
	}
}

// spliceVolume writes the volume file back into the disk image at start.
func spliceVolume(t testing.TB, diskPath, vol string, start int64) {
	t.Helper()
	b, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(diskPath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, start); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// pvpanicFile is a stand-in for /dev/port whose byte 0x505 (the pvpanic port) reads features.
func pvpanicFile(t testing.TB, features byte) string {
	t.Helper()
	b := make([]byte, 0x600)
	b[0x505] = features
	p := filepath.Join(t.TempDir(), "port")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func portByte(t testing.TB, path string) byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 0x600 {
		t.Fatalf("port file grew to %d bytes", len(b))
	}
	return b[0x505]
}
