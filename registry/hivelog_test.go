package registry

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The transaction log tests build a dirty hive and its logs the way a guest leaves them
// after `reg import` of the arming settings and a hard reset: the primary file still holds
// the old hive bins, and the logs hold the pages that changed. Both states are real hives
// made by Debian's hivexregedit (the old one, and a copy of it with crashkey arm's .reg
// merged); the logs are written here field by field at the offsets the format
// specifications give, independently of the parser. Replaying them must give back exactly
// the hive hivexregedit made.

const (
	dirtySeq2 = 100 // the primary's secondary sequence number: the first entry to apply
	dirtySeq1 = 101
)

// dirtyPair is a primary file left dirty between two hive states, and the state a
// complete replay must produce.
type dirtyPair struct {
	old, target []byte // hive files: the old state (as the primary holds its bins) and the new
	primary     []byte // old bins under the new base block, sequence numbers 101/100
	want        []byte // the new hive with sequence numbers 101/101: what replay must give
	pages       []int  // 4096-byte pages of the hive bins that differ (or are new)
}

// mergeCopy copies the hive at src and merges the .reg text into the copy.
func mergeCopy(t testing.TB, src, regText string) string {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, "SYSTEM")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "merge.reg")
	if err := os.WriteFile(f, []byte(regText), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(needTool(t, "hivexregedit"), "--merge", "--prefix", `HKEY_LOCAL_MACHINE\SYSTEM`, dst, f).CombinedOutput(); err != nil {
		t.Fatalf("hivexregedit --merge: %v\n%s", err, out)
	}
	return dst
}

func putU32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }

// fixChecksum recomputes the base block checksum (XOR of the first 127 dwords) by hand.
func fixChecksum(b []byte) {
	var x uint32
	for i := 0; i < 508; i += 4 {
		x ^= binary.LittleEndian.Uint32(b[i:])
	}
	switch x {
	case 0:
		x = 1
	case 0xFFFFFFFF:
		x = 0xFFFFFFFE
	}
	putU32(b, 508, x)
}

func newDirtyPair(t testing.TB) dirtyPair {
	t.Helper()
	oldPath := buildHive(t, baseReg("WinNT"))
	targetPath := mergeCopy(t, oldPath, armReg(t, ArmOptions{Hotkey: mustHotkey(t, "lctrl+lalt+p"), DedicatedDumpFile: `C:\dd.sys`}))
	var p dirtyPair
	var err error
	if p.old, err = os.ReadFile(oldPath); err != nil {
		t.Fatal(err)
	}
	if p.target, err = os.ReadFile(targetPath); err != nil {
		t.Fatal(err)
	}
	binsOld := binary.LittleEndian.Uint32(p.old[40:])
	binsNew := binary.LittleEndian.Uint32(p.target[40:])
	if int(4096+binsOld) != len(p.old) || int(4096+binsNew) != len(p.target) || binsNew < binsOld {
		t.Fatalf("hivexregedit made bins of %d and %d bytes in files of %d and %d", binsOld, binsNew, len(p.old), len(p.target))
	}
	for pg := 0; pg < int(binsNew)/4096; pg++ {
		off := 4096 + pg*4096
		if off >= len(p.old) || !bytes.Equal(p.old[off:off+4096], p.target[off:off+4096]) {
			p.pages = append(p.pages, pg)
		}
	}
	if len(p.pages) < 2 {
		t.Fatalf("the merge changed %d pages; the tests need at least 2", len(p.pages))
	}
	p.want = bytes.Clone(p.target)
	putU32(p.want, 4, dirtySeq1)
	putU32(p.want, 8, dirtySeq1)
	fixChecksum(p.want)
	p.primary = bytes.Clone(p.old)
	copy(p.primary[:4096], p.target[:4096])
	putU32(p.primary, 4, dirtySeq1)
	putU32(p.primary, 8, dirtySeq2)
	putU32(p.primary, 40, binsOld)
	fixChecksum(p.primary)
	return p
}

// logHeaderBlock is the 512-byte partial base block a log starts with.
func logHeaderBlock(base []byte, fileType, seq1, seq2 uint32) []byte {
	h := bytes.Clone(base[:512])
	putU32(h, 4, seq1)
	putU32(h, 8, seq2)
	putU32(h, 28, fileType)
	fixChecksum(h)
	return h
}

// hvleEntry writes one new-format log entry: the 40-byte header (signature, size, flags,
// sequence number, hive bins size, page count, Hash-1, Hash-2), the page references and the
// pages, padded to 512 bytes.
func hvleEntry(seq, binsSize uint32, src []byte, pages []int) []byte {
	size := 40 + 8*len(pages) + 4096*len(pages)
	size = (size + 511) / 512 * 512
	e := make([]byte, size)
	copy(e, "HvLE")
	putU32(e, 4, uint32(size))
	putU32(e, 8, 0)
	putU32(e, 12, seq)
	putU32(e, 16, binsSize)
	putU32(e, 20, uint32(len(pages)))
	for i, pg := range pages {
		putU32(e, 40+8*i, uint32(pg*4096))
		putU32(e, 44+8*i, 4096)
		copy(e[40+8*len(pages)+4096*i:], src[4096+pg*4096:][:4096])
	}
	binary.LittleEndian.PutUint64(e[24:], marvin32(e[40:], 0x82EF4D887A4E55C5))
	binary.LittleEndian.PutUint64(e[32:], marvin32(e[:32], 0x82EF4D887A4E55C5))
	return e
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// newLogs splits the changed pages over two entries, 100 in LOG1 and 101 in LOG2; LOG2
// also holds an old, already applied entry 99 in front, and LOG1 ends in leftovers of
// an older entry without a signature.
func (p dirtyPair) newLogs() (log1, log2 []byte) {
	bins := binary.LittleEndian.Uint32(p.target[40:])
	half := len(p.pages) / 2
	hdr := logHeaderBlock(p.target, 6, dirtySeq1, dirtySeq1)
	stale := hvleEntry(99, binary.LittleEndian.Uint32(p.old[40:]), p.old, p.pages[:1])
	log1 = concat(hdr, hvleEntry(dirtySeq2, bins, p.target, p.pages[:half]), make([]byte, 1024))
	log2 = concat(hdr, stale, hvleEntry(dirtySeq1, bins, p.target, p.pages[half:]))
	return log1, log2
}

// oldLog writes an old-format log: the partial base block (file type 1, both sequence
// numbers 101, the primary's timestamp), "DIRT" and its bitmap in the second sector (one
// bit per 512-byte page of the hive bins), then the dirty 512-byte pages from the next
// sector on.
func (p dirtyPair) oldLog() []byte {
	bins := binary.LittleEndian.Uint32(p.target[40:])
	hdr := logHeaderBlock(p.target, 1, dirtySeq1, dirtySeq1)
	bitmap := make([]byte, (bins/512+7)/8)
	var data []byte
	for _, pg := range p.pages {
		for s := pg * 8; s < pg*8+8; s++ {
			bitmap[s/8] |= 1 << (s % 8)
		}
		data = append(data, p.target[4096+pg*4096:][:4096]...)
	}
	vec := concat([]byte("DIRT"), bitmap)
	vec = append(vec, make([]byte, (512-len(vec)%512)%512)...)
	return concat(hdr, vec, data)
}

// readAll reads the replayed hive.
func readAll(t *testing.T, r interface {
	ReadAt([]byte, int64) (int, error)
}, size int64) []byte {
	t.Helper()
	b := make([]byte, size)
	if n, err := r.ReadAt(b, 0); int64(n) != size {
		t.Fatalf("read %d of %d bytes: %v", n, size, err)
	}
	return b
}

func src(name string, b []byte) LogSource {
	return LogSource{Name: name, R: bytes.NewReader(b), Size: int64(len(b))}
}

func TestReplayNewFormat(t *testing.T) {
	p := newDirtyPair(t)
	log1, log2 := p.newLogs()
	r, size, rep, warns := replayLogs(bytes.NewReader(p.primary), int64(len(p.primary)), []LogSource{src("SYSTEM.LOG1", log1), src("SYSTEM.LOG2", log2)})
	if rep == nil || len(warns) != 0 {
		t.Fatalf("replay = %+v, warnings %q", rep, warns)
	}
	if got := readAll(t, r, size); !bytes.Equal(got, p.want) {
		t.Fatalf("the replayed hive (%d bytes) is not the hive hivexregedit made (%d bytes)", len(got), len(p.want))
	}
	half := len(p.pages) / 2
	wantApplied := []AppliedEntry{
		{Log: "SYSTEM.LOG1", Offset: 512, Sequence: dirtySeq2, Pages: half, Bytes: int64(4096 * half)},
		{Log: "SYSTEM.LOG2", Offset: 512 + int64(len(hvleEntry(99, 4096, p.old, p.pages[:1]))), Sequence: dirtySeq1, Pages: len(p.pages) - half, Bytes: int64(4096 * (len(p.pages) - half))},
	}
	if rep.Format != "HvLE" || rep.Sequence != dirtySeq1 || len(rep.Applied) != 2 || rep.Applied[0] != wantApplied[0] || rep.Applied[1] != wantApplied[1] {
		t.Errorf("replay = %+v, want %+v", rep, wantApplied)
	}

	// What preflight reads: the primary alone lacks the new hotkey, the replayed hive has it.
	before, err := ReadHive(bytes.NewReader(p.primary), int64(len(p.primary)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := ReadHive(bytes.NewReader(p.primary), int64(len(p.primary)), src("SYSTEM.LOG1", log1), src("SYSTEM.LOG2", log2))
	if err != nil {
		t.Fatal(err)
	}
	if before.Driver("kbdhid").Dump1Keys != nil || before.Hive.Replay != nil {
		t.Errorf("primary alone: %+v", before.Driver("kbdhid"))
	}
	if d := after.Driver("kbdhid"); d.Dump1Keys == nil || *d.Dump1Keys != 0x60 || after.CrashControl.DedicatedDumpFile == nil || after.Hive.Replay == nil || !after.Hive.Dirty {
		t.Errorf("replayed: %+v, CrashControl %+v, hive %+v", d, after.CrashControl, after.Hive)
	}
	// hivexget, an independent reader, agrees on the file replay produced.
	f := filepath.Join(t.TempDir(), "SYSTEM")
	if err := os.WriteFile(f, readAll(t, r, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, ok := hivexget(t, f, `\ControlSet001\Services\kbdhid\crashdump`, "Dump1Keys"); !ok || v != "96" {
		t.Errorf("hivexget Dump1Keys = %q", v)
	}
}

func TestReplayOldFormat(t *testing.T) {
	p := newDirtyPair(t)
	log := p.oldLog()
	r, size, rep, warns := replayLogs(bytes.NewReader(p.primary), int64(len(p.primary)), []LogSource{src("SYSTEM.LOG1", log)})
	if rep == nil || len(warns) != 0 {
		t.Fatalf("replay = %+v, warnings %q", rep, warns)
	}
	if got := readAll(t, r, size); !bytes.Equal(got, p.want) {
		t.Fatal("the replayed hive is not the hive hivexregedit made")
	}
	bins := binary.LittleEndian.Uint32(p.target[40:])
	wantOff := int64((512 + 4 + (bins/512+7)/8 + 511) / 512 * 512)
	if rep.Format != "DIRT" || len(rep.Applied) != 1 || rep.Applied[0] != (AppliedEntry{Log: "SYSTEM.LOG1", Offset: wantOff, Sequence: dirtySeq1, Pages: 8 * len(p.pages), Bytes: int64(4096 * len(p.pages))}) {
		t.Errorf("replay = %+v", rep)
	}
	// A log of another write (its timestamp differs) is not applied.
	other := bytes.Clone(log)
	other[12] ^= 1
	fixChecksum(other)
	if _, _, rep, warns := replayLogs(bytes.NewReader(p.primary), int64(len(p.primary)), []LogSource{src("SYSTEM.LOG", other)}); rep != nil || len(warns) != 1 || !strings.Contains(warns[0], "timestamp differs") {
		t.Errorf("foreign log: %+v, %q", rep, warns)
	}
}

// TestReplayDamagedLogs: a damaged log never stops the read: what is good is applied and the
// rest is a warning, or the primary is read as it is.
func TestReplayDamagedLogs(t *testing.T) {
	p := newDirtyPair(t)
	log1, log2 := p.newLogs()
	bad2 := bytes.Clone(log2)
	bad2[len(bad2)-100] ^= 0xff // a byte of entry 101's last page: Hash-1 fails
	badHdr := bytes.Clone(log1)
	badHdr[512+16] ^= 0x10 // entry 100's hive bins size: Hash-2 fails
	oldLog := p.oldLog()
	for _, tc := range []struct {
		name    string
		logs    []LogSource
		applied int
		warn    string
	}{
		{"entry 101 damaged", []LogSource{src("SYSTEM.LOG1", log1), src("SYSTEM.LOG2", bad2)}, 1, "SYSTEM.LOG2: entry at 0x"},
		{"entry 100 damaged", []LogSource{src("SYSTEM.LOG1", badHdr), src("SYSTEM.LOG2", log2)}, 0, "header hash (Hash-2)"},
		{"LOG2 missing", []LogSource{src("SYSTEM.LOG1", log1)}, 1, ""},
		{"only the second", []LogSource{src("SYSTEM.LOG2", log2)}, 0, "no log entry continues the primary's sequence number 100 (the logs hold entries 99 to 101)"},
		{"empty log", []LogSource{src("SYSTEM.LOG1", nil)}, 0, "the transaction logs are empty (SYSTEM.LOG1): nothing to replay"},
		{"empty LOG2 beside a good LOG1", []LogSource{src("SYSTEM.LOG1", log1), src("SYSTEM.LOG2", nil)}, 1, ""},
		{"short log", []LogSource{src("SYSTEM.LOG1", log1[:100])}, 0, "shorter than its 512-byte header"},
		{"no logs", nil, 0, "no transaction log (.LOG1, .LOG2) found beside the hive"},
		{"zeros", []LogSource{src("SYSTEM.LOG1", make([]byte, 8192))}, 0, `no "regf" base block`},
		{"old format truncated", []LogSource{src("SYSTEM.LOG1", oldLog[:len(oldLog)-512])}, 0, "dirty pages are marked but the file holds only"},
		{"old format not complete", []LogSource{src("SYSTEM.LOG1", func() []byte { b := bytes.Clone(oldLog); putU32(b, 8, 7); fixChecksum(b); return b }())}, 0, "not written completely"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, rep, warns := replayLogs(bytes.NewReader(p.primary), int64(len(p.primary)), tc.logs)
			n := 0
			if rep != nil {
				n = len(rep.Applied)
			}
			if n != tc.applied || !strings.Contains(strings.Join(warns, "\n"), tc.warn) || (tc.warn != "") != (len(warns) > 0) {
				t.Errorf("applied %d (want %d), warnings %q (want %q)", n, tc.applied, warns, tc.warn)
			}
			// ReadHive always answers: from the replayed hive or from the primary.
			s, err := ReadHive(bytes.NewReader(p.primary), int64(len(p.primary)), tc.logs...)
			if err != nil {
				t.Fatal(err)
			}
			if (s.Hive.Replay != nil) != (tc.applied > 0) || (tc.applied == 0 && len(s.Hive.LogWarnings) == 0) {
				t.Errorf("hive info %+v", s.Hive)
			}
			if tc.applied == 0 {
				r := Check(s, CheckOptions{})
				if ids := strings.Join(problemIDs(r), ","); !strings.Contains(ids, "warning:hive-dirty") {
					t.Errorf("problems %s", ids)
				}
			}
		})
	}
	// A clean hive ignores its logs, whatever they hold.
	clean := bytes.Clone(p.old)
	s, err := ReadHive(bytes.NewReader(clean), int64(len(clean)), src("SYSTEM.LOG1", log1))
	if err != nil || s.Hive.Replay != nil || s.Hive.LogWarnings != nil {
		t.Errorf("clean hive: %+v, %v", s.Hive, err)
	}
}

// TestPreflightReplaysLogs: preflight of a disk image (and of a hive file) whose SYSTEM is
// dirty reads the logs beside it and reports the applied entries.
func TestPreflightReplaysLogs(t *testing.T) {
	p := newDirtyPair(t)
	log1, log2 := p.newLogs()
	dir := t.TempDir()
	for name, b := range map[string][]byte{"SYSTEM": p.primary, "SYSTEM.LOG1": log1, "SYSTEM.LOG2": log2} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := mustHotkey(t, "lctrl+lalt+p")
	img := ntfsImage(t, map[string]string{"SYSTEM": filepath.Join(dir, "SYSTEM"), "SYSTEM.LOG1": filepath.Join(dir, "SYSTEM.LOG1"), "SYSTEM.LOG2": filepath.Join(dir, "SYSTEM.LOG2")})
	for _, path := range []string{img, filepath.Join(dir, "SYSTEM")} {
		r, err := Preflight(context.Background(), path, PreflightOptions{Hotkey: h})
		if err != nil {
			t.Fatal(err)
		}
		rp := r.Settings.Hive.Replay
		if rp == nil || len(rp.Applied) != 2 || !r.Hotkey.PS2.Fires || !r.Hotkey.USB.Fires {
			t.Fatalf("%s: replay %+v, hotkey %+v, problems %q", path, rp, r.Hotkey, problemIDs(r))
		}
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := `"replay":{"format":"HvLE","applied":[{"log":"SYSTEM.LOG1","offset":512,"sequence":100,`; !strings.Contains(string(js), want) {
			t.Errorf("%s: JSON lacks %s", path, want)
		}
		var text strings.Builder
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"dirty, replayed from its logs (HvLE format, 2 entries applied, now sequence 101)", "applied: SYSTEM.LOG1 entry 100 at 0x200", "applied: SYSTEM.LOG2 entry 101 at 0x"} {
			if !strings.Contains(text.String(), want) {
				t.Errorf("%s: report lacks %q:\n%s", path, want, text.String())
			}
		}
	}
}

// FuzzReplay feeds arbitrary logs (both formats seeded) to the replay of a dirty hive and
// reads the result: no panic, and a bounded result.
func FuzzReplay(f *testing.F) {
	p := newDirtyPair(f)
	log1, log2 := p.newLogs()
	f.Add(log1, log2)
	f.Add(p.oldLog(), []byte(nil))
	f.Add(log1[:1000], log2[:600])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		logs := []LogSource{src("SYSTEM.LOG1", a), src("SYSTEM.LOG2", b)}
		r, size, rep, _ := replayLogs(bytes.NewReader(p.primary), int64(len(p.primary)), logs)
		if rep != nil {
			if size > int64(len(p.primary))+int64(len(a)+len(b))+MaxHiveSize {
				t.Fatalf("size %d", size)
			}
			buf := make([]byte, 4096)
			for off := int64(0); off < min(size, 1<<20); off += 4096 {
				r.ReadAt(buf, off)
			}
		}
		ReadHive(bytes.NewReader(p.primary), int64(len(p.primary)), logs...)
	})
}
