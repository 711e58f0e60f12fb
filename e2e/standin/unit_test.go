package standin

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
)

func TestPVPanic(t *testing.T) {
	tests := []struct {
		name     string
		features byte
		kind     PanicKind
		wantErr  error
		wantByte byte
	}{
		{"crash loaded", 0x03, CrashLoaded, nil, 0x02},
		{"panicked", 0x07, Panicked, nil, 0x01},
		{"no device reads 0xff", 0xFF, CrashLoaded, ErrNoPVPanic, 0xFF},
		{"no device reads 0", 0x00, Panicked, ErrNoPVPanic, 0x00},
		{"event not supported", 0x01, CrashLoaded, ErrNoPVPanic, 0x01},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := PVPanic{Path: pvpanicFile(t, tc.features), Port: 0x505}
			err := p.Signal(tc.kind)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Signal(%s) = %v, want %v", tc.kind, err, tc.wantErr)
			}
			if got := portByte(t, p.Path); got != tc.wantByte {
				t.Errorf("port byte 0x%02x, want 0x%02x", got, tc.wantByte)
			}
		})
	}
	p := PVPanic{Path: pvpanicFile(t, 0x07), Port: 0x505}
	if err := p.Signal(PanicKind(4)); err == nil {
		t.Errorf("Signal(shutdown) succeeded; the stand-in raises only panicked and crash-loaded")
	}
	if err := (PVPanic{Path: filepath.Join(t.TempDir(), "none"), Port: 0x505}).Signal(Panicked); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing port file: %v", err)
	}
	if Panicked.String() != "panicked" || CrashLoaded.String() != "crash-loaded" {
		t.Errorf("names %s %s", Panicked, CrashLoaded)
	}
}

func TestParseIOMem(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []MemRange
		wantErr string
	}{
		{"qemu 256 MiB", `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000f0000-000fffff : System ROM
00100000-0ffdffff : System RAM
  01000000-01e03fff : Kernel code
  02000000-0238bfff : Kernel rodata
0ffe0000-0fffffff : Reserved
fec00000-fec003ff : IOAPIC 0
`, []MemRange{{0x1000, 0x9fc00}, {0x100000, 0xffe0000}}, ""},
		{"above 4 GiB and touching ranges merge", "100000000-13fffffff : System RAM\n140000000-17fffffff : System RAM\n", []MemRange{{0x100000000, 0x180000000}}, ""},
		{"unprivileged reader", "00000000-00000000 : System RAM\n00000000-00000000 : System RAM\n", nil, "CAP_SYS_ADMIN"},
		{"garbage range", "zz-10 : System RAM\n", nil, "bad range"},
		{"end before start", "2000-1000 : System RAM\n", nil, "bad range"},
		{"no ram", "00000000-00000fff : Reserved\n", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIOMem([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseIOMem = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestReadMemmap(t *testing.T) {
	dir := t.TempDir()
	for i, e := range []struct{ start, end, typ string }{
		{"0x0", "0x9fbff", "System RAM"},
		{"0x9fc00", "0x9ffff", "Reserved"},
		{"0x100000", "0xffdffff", "System RAM"},
		{"0xfeffc000", "0xfeffffff", "Reserved"},
	} {
		d := filepath.Join(dir, string(rune('0'+i)))
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "start"), []byte(e.start+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "end"), []byte(e.end+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "type"), []byte(e.typ+"\n"), 0o644)
	}
	got, err := readMemmap(dir)
	want := []MemRange{{0, 0x9fc00}, {0x100000, 0xffe0000}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("readMemmap = %v, %v; want %v", got, err, want)
	}
	os.WriteFile(filepath.Join(dir, "0", "end"), []byte("nonsense"), 0o644)
	if _, err := readMemmap(dir); err == nil {
		t.Errorf("a bad end was accepted")
	}
	// The host's own map, when it has one, has some RAM.
	if r, err := SystemMemory(); err == nil && len(r) == 0 {
		t.Errorf("SystemMemory found no RAM")
	}
}

func TestPageRuns(t *testing.T) {
	runs := PageRuns([]MemRange{{0x1000, 0x9fc00}, {0x100000, 0xffe0000}}, 42)
	want := []dump.Run{{BasePage: 1, PageCount: 0x9e}, {BasePage: 0x100, PageCount: 0xfee0}}
	if !reflect.DeepEqual(runs, want) {
		t.Fatalf("pageRuns = %v, want %v", runs, want)
	}
	if got := scaleRuns(runs, 1, 16); !reflect.DeepEqual(got, []dump.Run{{BasePage: 1, PageCount: 10}, {BasePage: 0x100, PageCount: 0xfee}}) {
		t.Errorf("scaleRuns(16) = %v", got)
	}
	if got := scaleRuns([]dump.Run{{BasePage: 7, PageCount: 1}}, 1, 1000); got[0].PageCount != 1 {
		t.Errorf("a run scaled below one page: %v", got)
	}
	// More runs than the header holds: the largest are kept, in address order.
	var many []MemRange
	for i := uint64(0); i < 50; i++ {
		many = append(many, MemRange{i * 0x100000, i*0x100000 + (i+1)*0x1000})
	}
	got := PageRuns(many, 42)
	if len(got) != 42 || got[0].BasePage != 8*0x100 || got[41].PageCount != 50 {
		t.Errorf("pageRuns of 50 ranges: %d runs, first %v, last %v", len(got), got[0], got[len(got)-1])
	}
}

// TestExtentIO reads and writes a file scattered over three extents of a disk file.
func TestExtentIO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.raw")
	img := bytes.Repeat([]byte{0xEE}, 0x10000)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &DiskFile{Path: "pagefile.sys", Size: 0x3000, Extents: []disk.Extent{
		{FileOffset: 0, DiskOffset: 0x8000, Length: 0x1000},
		{FileOffset: 0x1000, DiskOffset: 0x2000, Length: 0x1800},
		{FileOffset: 0x2800, DiskOffset: 0xF000, Length: 0x800},
	}}
	fd, e, err := openRaw(path, f, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	data := make([]byte, 0x3000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	w := &streamWriter{e: e, held: make([]byte, 8)}
	for off := 0; off < len(data); off += 0x700 { // writes that straddle extents
		if _, err := w.Write(data[off:min(off+0x700, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 0x3000)
	if _, err := e.ReadAt(got[:8], 0); err != nil || !bytes.Equal(got[:8], make([]byte, 8)) {
		t.Fatalf("the first 8 bytes were written before commit: %x, %v", got[:8], err)
	}
	if err := w.commit(); err != nil {
		t.Fatal(err)
	}
	if n, err := e.ReadAt(got, 0); n != len(got) || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; equal %t", n, err, bytes.Equal(got, data))
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Equal(raw[0x8000:0x9000], data[:0x1000]) || !bytes.Equal(raw[0x2000:0x3800], data[0x1000:0x2800]) || !bytes.Equal(raw[0xF000:0xF800], data[0x2800:]) {
		t.Errorf("the bytes are not at the extents' disk offsets")
	}
	if !bytes.Equal(raw[:0x2000], img[:0x2000]) || !bytes.Equal(raw[0x3800:0x8000], img[0x3800:0x8000]) || !bytes.Equal(raw[0x9000:0xF000], img[0x9000:0xF000]) {
		t.Errorf("bytes outside the extents changed")
	}
	if _, err := w.Write([]byte{1}); !errors.Is(err, ErrDumpTooLarge) {
		t.Errorf("writing past the file: %v, want ErrDumpTooLarge", err)
	}
	if _, err := e.WriteAt([]byte{1, 2}, 0x2FFF); err == nil {
		t.Errorf("WriteAt past the end succeeded")
	}
	if n, err := e.ReadAt(make([]byte, 0x10), 0x2FF8); n != 8 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d, %v; want 8, EOF", n, err)
	}

	// Extents that do not fit the disk, or do not cover the file, are refused.
	for _, bad := range []*DiskFile{
		{Path: "p", Size: 0x1000, Extents: []disk.Extent{{FileOffset: 0, DiskOffset: 0xF800, Length: 0x1000}}},
		{Path: "p", Size: 0x2000, Extents: []disk.Extent{{FileOffset: 0, DiskOffset: 0, Length: 0x1000}}},
		{Path: "p", Size: 0x1000, Extents: []disk.Extent{{FileOffset: 0, Length: 0x1000, Sparse: true}}},
		{Path: "p", Size: 0x2000, Extents: []disk.Extent{{FileOffset: 0, DiskOffset: 0, Length: 0x1000}, {FileOffset: 0x1800, DiskOffset: 0x4000, Length: 0x800}}},
	} {
		if fd, _, err := openRaw(path, bad, false); err == nil {
			fd.Close()
			t.Errorf("extents %+v accepted", bad.Extents)
		}
	}
}

func TestMinidumpName(t *testing.T) {
	got := minidumpName(crashTime, 12345*1e9)
	if got != "112126-12345-01.dmp" {
		t.Errorf("minidumpName = %q", got)
	}
}

func FuzzParseIOMem(f *testing.F) {
	f.Add([]byte("00001000-0009fbff : System RAM\n00100000-0ffdffff : System RAM\n  01000000-01e03fff : Kernel code\n"))
	f.Add([]byte("100000000-13fffffff : System RAM\n140000000-17fffffff : System RAM\n"))
	f.Add([]byte("00000000-00000000 : System RAM\n"))
	f.Add([]byte("ffffffffffffffff-ffffffffffffffff : System RAM\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseIOMem(b)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with a result", err)
			}
			return
		}
		for i, r := range got {
			if r.End <= r.Start || i > 0 && r.Start <= got[i-1].End {
				t.Fatalf("ranges not sorted, merged and non-empty: %v", got)
			}
		}
		if len(got) > maxMemRanges {
			t.Fatalf("%d ranges", len(got))
		}
		// Whatever the map says, the runs fit a dump header and scaling never overflows.
		runs := scaleRuns(PageRuns(got, 42), 1, 16)
		if len(runs) > 42 {
			t.Fatalf("%d runs", len(runs))
		}
		for _, r := range runs {
			if r.PageCount == 0 || r.BasePage+r.PageCount < r.BasePage {
				t.Fatalf("bad run %v", r)
			}
		}
	})
}
