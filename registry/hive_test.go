package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/hid"
)

func u32(v uint32) *uint32 { return &v }

func eqU32(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func showU32(p *uint32) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprintf("%#x", *p)
}

// TestReadHiveFixture reads the armed SYSTEM-like fixture (see testdata/SOURCES.md) and
// checks every value it holds.
func TestReadHiveFixture(t *testing.T) {
	s, err := ReadHiveFile("testdata/SYSTEM-crashcontrol")
	if err != nil {
		t.Fatal(err)
	}
	if s.ControlSet != 1 || s.ControlSetFrom != `Select\Current` || strings.Join(s.ControlSets, ",") != "ControlSet001" {
		t.Errorf("control set = %d from %q, sets %v; want 1 from Select\\Current, [ControlSet001]", s.ControlSet, s.ControlSetFrom, s.ControlSets)
	}
	if s.Hive.Dirty || !s.Hive.ChecksumOK || s.Hive.Truncated || s.Hive.Version != "1.5" || s.Hive.Size != 12288 {
		t.Errorf("hive info = %+v", s.Hive)
	}
	for _, tc := range []struct {
		d           hid.Driver
		coc, d1, d2 *uint32
	}{
		{hid.I8042prt, u32(1), nil, nil},
		{hid.Kbdhid, u32(1), u32(2), u32(0x7d)},
		{hid.Hyperkbd, u32(1), nil, nil},
	} {
		ds := s.Driver(tc.d)
		if !ds.Present || !eqU32(ds.CrashOnCtrlScroll, tc.coc) || !eqU32(ds.Dump1Keys, tc.d1) || !eqU32(ds.Dump2Key, tc.d2) {
			t.Errorf("%s: present %v, CrashOnCtrlScroll %s, Dump1Keys %s, Dump2Key %s", tc.d, ds.Present,
				showU32(ds.CrashOnCtrlScroll), showU32(ds.Dump1Keys), showU32(ds.Dump2Key))
		}
	}
	cc := s.CrashControl
	if !cc.Present || !eqU32(cc.CrashDumpEnabled, u32(1)) || !eqU32(cc.FilterPages, u32(1)) || !eqU32(cc.AutoReboot, u32(1)) ||
		!eqU32(cc.Overwrite, u32(1)) || !eqU32(cc.AlwaysKeepMemoryDump, u32(0)) || cc.DedicatedDumpFile != nil {
		t.Errorf("CrashControl = %+v", cc)
	}
	if cc.DumpFile == nil || *cc.DumpFile != `%SystemRoot%\MEMORY.DMP` || cc.MinidumpDir == nil || *cc.MinidumpDir != `%SystemRoot%\Minidump` {
		t.Errorf("DumpFile/MinidumpDir = %v/%v", cc.DumpFile, cc.MinidumpDir)
	}
	if cc.DumpType() != DumpActive {
		t.Errorf("dump type = %s, want active (CrashDumpEnabled 1 + FilterPages 1)", cc.DumpType())
	}
	if strings.Join(s.PagingFiles, "|") != `?:\pagefile.sys` || strings.Join(s.ExistingPageFiles, "|") != `\??\C:\pagefile.sys` {
		t.Errorf("paging files = %q / %q", s.PagingFiles, s.ExistingPageFiles)
	}
	if len(s.Anomalies) != 0 {
		t.Errorf("anomalies: %q", s.Anomalies)
	}
}

// TestReadHiveMatchesHivexget compares values of a generated hive with Debian's hivexget.
func TestReadHiveMatchesHivexget(t *testing.T) {
	h, _ := hid.ParseHotkey("lalt+rctrl+k")
	hive := buildHive(t, baseReg("ServerNT"), armReg(t, ArmOptions{Hotkey: &h, Drivers: hid.Drivers, DumpType: DumpComplete,
		NoAutoReboot: true, DedicatedDumpFile: `D:\dd.sys`}))
	s, err := ReadHiveFile(hive)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key, value string
		got        *uint32
	}{
		{`\ControlSet001\Control\CrashControl`, "CrashDumpEnabled", s.CrashControl.CrashDumpEnabled},
		{`\ControlSet001\Control\CrashControl`, "AutoReboot", s.CrashControl.AutoReboot},
		{`\ControlSet001\Control\CrashControl`, "AlwaysKeepMemoryDump", s.CrashControl.AlwaysKeepMemoryDump},
		{`\ControlSet001\Services\i8042prt`, "Start", s.Driver(hid.I8042prt).Start},
		{`\ControlSet001\Services\hyperkbd\crashdump`, "Dump1Keys", s.Driver(hid.Hyperkbd).Dump1Keys},
		{`\ControlSet001\Services\kbdhid\crashdump`, "Dump2Key", s.Driver(hid.Kbdhid).Dump2Key},
		{`\Select`, "Current", u32(uint32(s.ControlSet))},
	}
	for _, c := range checks {
		out, ok := hivexget(t, hive, c.key, c.value)
		if !ok || c.got == nil {
			t.Errorf("%s\\%s: hivexget %q (ok %v), crashkey %s", c.key, c.value, out, ok, showU32(c.got))
			continue
		}
		want, err := strconv.ParseUint(out, 0, 32)
		if err != nil || uint32(want) != *c.got {
			t.Errorf("%s\\%s: hivexget says %q, crashkey %d", c.key, c.value, out, *c.got)
		}
	}
	for _, c := range []struct {
		key, value string
		got        *string
	}{
		{`\ControlSet001\Control\CrashControl`, "DedicatedDumpFile", s.CrashControl.DedicatedDumpFile},
		{`\ControlSet001\Control\CrashControl`, "DumpFile", s.CrashControl.DumpFile},
		{`\ControlSet001\Control\ProductOptions`, "ProductType", &s.ProductType},
	} {
		out, ok := hivexget(t, hive, c.key, c.value)
		if !ok || c.got == nil || out != *c.got {
			t.Errorf("%s\\%s: hivexget %q, crashkey %v", c.key, c.value, out, c.got)
		}
	}
	if _, ok := hivexget(t, hive, `\ControlSet001\Services\kbdhid\Parameters`, "CrashOnCtrlScroll"); ok || s.Driver(hid.Kbdhid).CrashOnCtrlScroll != nil {
		t.Errorf("CrashOnCtrlScroll exists after arming a custom hotkey")
	}
}

// TestKeyNames reads hivex's "special" hive: a NUL inside a key name, Latin-1 and non-Latin
// (UTF-16) names, and values under them.
func TestKeyNames(t *testing.T) {
	b, err := os.ReadFile("testdata/hivex-special")
	if err != nil {
		t.Fatal(err)
	}
	h, err := openHive(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	root, err := h.root()
	if err != nil {
		t.Fatal(err)
	}
	names, err := root.Subkeys()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"zero\x00key": "zero\x00val", "abcd_äöüß": "abcd_äöüß", "weird™": "symbols $£₤₧€"}
	if len(names) != len(want) {
		t.Fatalf("subkeys = %q, want the keys of %q", names, want)
	}
	for _, n := range names {
		val, ok := want[n]
		if !ok {
			t.Errorf("unexpected subkey %q", n)
			continue
		}
		k, err := root.Subkey(strings.ToUpper(n)) // case-insensitive lookup
		if err != nil || k == nil {
			t.Errorf("Subkey(%q) = %v, %v", strings.ToUpper(n), k, err)
			continue
		}
		v, err := k.Value(val)
		if err != nil || v == nil || v.Type != regDWORD || len(v.Data) != 4 {
			t.Errorf("%q\\%q = %+v, %v; want a REG_DWORD", n, val, v, err)
		}
	}
	if _, err := ReadHive(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotSystemHive) {
		t.Errorf("ReadHive(special) = %v, want ErrNotSystemHive", err)
	}
}

func TestReadHiveErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/SYSTEM-crashcontrol")
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := os.ReadFile("testdata/hivex-minimal")
	if err != nil {
		t.Fatal(err)
	}
	patch := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	missingSet, err := os.ReadFile(buildHive(t, reg(`[HKEY_LOCAL_MACHINE\SYSTEM\Select]`, `"Current"=dword:00000003`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001]`, ``, `[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet002]`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotHive, "shorter than the 4096-byte base block"},
		{"zeros", make([]byte, 8192), ErrNotHive, `no "regf" signature`},
		{"version 2", patch(20, 2), ErrNotHive, "format version 2.5"},
		{"minimal hive", minimal, ErrNotSystemHive, "no Select key"},
		{"Current names a missing set", missingSet, ErrNotSystemHive, `Select\Current is 3 but ControlSet003 does not exist (the hive has ControlSet001, ControlSet002)`},
		{"root cell outside", patch(36, 0x7ffffff8), ErrCorruptHive, "outside the hive bins"},
		{"root cell misaligned", patch(36, 0x21), ErrCorruptHive, "outside the hive bins"},
		{"truncated bins", good[:4096+64], ErrCorruptHive, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ReadHive(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, tc.want) || s != nil {
				t.Fatalf("ReadHive = %v, %v; want %v", s, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestReadHiveTooLarge(t *testing.T) {
	_, err := ReadHive(bytes.NewReader(nil), MaxHiveSize+1)
	if !errors.Is(err, ErrNotHive) {
		t.Fatalf("err = %v, want ErrNotHive", err)
	}
}

// failingReader serves data up to fail, then fails with an I/O error.
type failingReader struct {
	data []byte
	fail int64
}

var errDisk = errors.New("disk read error")

func (f failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.fail {
		return 0, errDisk
	}
	return bytes.NewReader(f.data).ReadAt(p, off)
}

func TestReadHiveIOError(t *testing.T) {
	good, _ := os.ReadFile("testdata/SYSTEM-crashcontrol")
	for _, fail := range []int64{0, 4096, 8192} {
		_, err := ReadHive(failingReader{good, fail}, int64(len(good)))
		if !errors.Is(err, errDisk) {
			t.Errorf("fail at %d: err = %v, want the reader's error", fail, err)
		}
	}
}

// zeroTail is a hive followed by a huge run of zeros (a sparse file claiming gigabytes).
type zeroTail struct{ head []byte }

func (z zeroTail) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(z.head)) {
		copy(p, z.head[off:])
	}
	return len(p), nil
}

// TestReadHiveBoundedMemory: a hive claiming 4 GiB (base block length and file size) is read
// with bounded memory.
func TestReadHiveBoundedMemory(t *testing.T) {
	good, _ := os.ReadFile("testdata/SYSTEM-crashcontrol")
	b := bytes.Clone(good)
	binary.LittleEndian.PutUint32(b[40:], 0xfffff000) // hive bins length
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := ReadHive(zeroTail{b}, MaxHiveSize)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if s.CrashControl.CrashDumpEnabled == nil {
		t.Errorf("values not read")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("allocated %d MiB for a 4 GiB hive claim", alloc>>20)
	}
}

func TestDirtyHive(t *testing.T) {
	hive := buildHive(t, baseReg("WinNT"), armReg(t, ArmOptions{}))
	setSequence2(t, hive, 7)
	s, err := ReadHiveFile(hive)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Hive.Dirty || !s.Hive.ChecksumOK || s.Hive.Sequence2 != 7 {
		t.Errorf("hive = %+v, want dirty with a valid checksum", s.Hive)
	}
	b, _ := os.ReadFile(hive)
	b[508]++
	s, err = ReadHive(bytes.NewReader(b), int64(len(b)))
	if err != nil || s.Hive.ChecksumOK {
		t.Errorf("damaged checksum: %v, ChecksumOK %v", err, s != nil && s.Hive.ChecksumOK)
	}
}

func TestMultiString(t *testing.T) {
	enc := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = binary.LittleEndian.AppendUint16(b, uint16(r))
		}
		return b
	}
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"a\x00b\x00\x00", "a|b"},
		{"a\x00b", "a|b"},
		{"a\x00\x00junk\x00", "a"},
		{"\x00", ""},
		{"", ""},
	} {
		if got := strings.Join(multiString(enc(tc.in)), "|"); got != tc.want {
			t.Errorf("multiString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzReadHive: any bytes give an error or settings, never a panic, with bounded work.
func FuzzReadHive(f *testing.F) {
	for _, name := range []string{"SYSTEM-crashcontrol", "hivex-minimal", "hivex-special"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	h, _ := hid.ParseHotkey("lshift+rshift+d")
	for _, regs := range [][]string{
		{baseReg("WinNT"), armReg(f, ArmOptions{})},
		{baseReg("ServerNT"), armReg(f, ArmOptions{Hotkey: &h, Drivers: hid.Drivers, DumpType: DumpActive, DedicatedDumpFile: `C:\d.sys`})},
	} {
		b, err := os.ReadFile(buildHive(f, regs...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(synthSystem([]string{`C:\pagefile.sys 16 32`, strings.Repeat("x", 9000)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ReadHive(bytes.NewReader(data), int64(len(data)))
		if (s == nil) == (err == nil) {
			t.Fatalf("ReadHive = %v, %v: want exactly one of settings and error", s, err)
		}
		if s != nil {
			Check(s, CheckOptions{Hotkey: &h}) // the checks must cope with whatever was read
			if err := (Check(s, CheckOptions{})).WriteText(io.Discard); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzHiveCells overwrites a few bytes inside the cells of valid hives, so that the
// mutations reach the key, value and index cells rather than the base block.
func FuzzHiveCells(f *testing.F) {
	var hives [][]byte
	for _, name := range []string{"SYSTEM-crashcontrol", "hivex-special"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		hives = append(hives, b)
	}
	b, err := os.ReadFile(buildHive(f, baseReg("WinNT"), armReg(f, ArmOptions{Hotkey: mustHotkey(f, "ralt+sysrq"), Drivers: hid.Drivers})))
	if err != nil {
		f.Fatal(err)
	}
	hives = append(hives, b, synthSystem([]string{`C:\pagefile.sys 16 32`, strings.Repeat("x", 9000)}))
	f.Add(uint8(0), uint16(0x20), []byte{0xff, 0xff, 0xff, 0x7f})
	f.Add(uint8(3), uint16(0x40), []byte("ri\x01\x00"))
	f.Add(uint8(2), uint16(0x120), []byte("lh\x05\x00"))
	f.Add(uint8(1), uint16(0x300), []byte{0, 0, 0, 0x80})
	f.Fuzz(func(t *testing.T, which uint8, off uint16, patch []byte) {
		hive := bytes.Clone(hives[int(which)%len(hives)])
		bins := hive[hbinStart:]
		copy(bins[int(off)%len(bins):], patch[:min(len(patch), 16)])
		s, err := ReadHive(bytes.NewReader(hive), int64(len(hive)))
		if (s == nil) == (err == nil) {
			t.Fatalf("ReadHive = %v, %v: want exactly one of settings and error", s, err)
		}
		if s != nil {
			if err := Check(s, CheckOptions{Hotkey: mustHotkey(t, "rctrl+scroll"), MemoryMiB: 1024}).WriteText(io.Discard); err != nil {
				t.Fatal(err)
			}
		}
	})
}

type panicReader struct{}

func (panicReader) ReadAt([]byte, int64) (int, error) { panic("reader exploded") }

// TestReadHivePanic: a panic below ReadHive (here in the reader) becomes an error.
func TestReadHivePanic(t *testing.T) {
	s, err := ReadHive(panicReader{}, 8192)
	if s != nil || !errors.Is(err, ErrCorruptHive) || !strings.Contains(err.Error(), "reader exploded") {
		t.Fatalf("ReadHive = %v, %v", s, err)
	}
}

func BenchmarkReadHive(b *testing.B) {
	data, err := os.ReadFile("testdata/SYSTEM-crashcontrol")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ReadHive(bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
