package dump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testRuns = []Run{{1, 0x9E}, {0x100, 0x80}, {0x1000, 3}}

func baseSpec(typ DumpType, is64 bool) Spec {
	return Spec{Type: typ, Is64: is64, BugCheck: BugCheckManuallyInitiated, Processors: 4, Build: 22631,
		DirectoryTableBase: 0x1AD002, PsLoadedModuleList: psl, KdDebuggerDataBlock: kdbg,
		SystemTime: when, SystemUpTime: 90 * time.Minute, Runs: testRuns, Comment: "crashkey test",
		SecondaryData: 64}
}

func wantKDBG(is64 bool) uint64 {
	if is64 {
		return kdbg
	}
	return kdbg & 0xFFFFFFFF
}

func writeDump(t testing.TB, spec Spec, pages PageSource) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, spec, pages); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

func TestWriteRoundTrip(t *testing.T) {
	types := []DumpType{TypeFull, TypeSummary, TypeHeader, TypeTriage, TypeBitmapFull, TypeBitmapKernel}
	for _, typ := range types {
		for _, is64 := range []bool{true, false} {
			name := typ.String() + map[bool]string{true: " 64-bit", false: " 32-bit"}[is64]
			t.Run(name, func(t *testing.T) {
				spec := baseSpec(typ, is64)
				b := writeDump(t, spec, PatternPages(42))
				if n, err := spec.Size(); err != nil || n != int64(len(b)) {
					t.Errorf("Size() = %d, %v; Write wrote %d bytes", n, err, len(b))
				}
				if !bytes.HasPrefix(b, []byte(map[bool]string{true: "PAGEDU64", false: "PAGEDUMP"}[is64])) {
					t.Fatalf("signature %q", b[:8])
				}
				// Unused fields keep the PAGE filler, as Windows leaves them.
				if is64 && string(b[0x1058:0x1060]) != "PAGEPAGE" || !is64 && string(b[0xFC8:0xFD0]) != "PAGEPAGE" {
					t.Errorf("reserved header area is not PAGE filler")
				}
				f := open(t, b)
				h := f.Header()
				if h.DumpType != typ || h.BugCheckCode.Value != 0xE2 || h.NumberProcessors.Value != 4 || h.MinorVersion.Value != 22631 ||
					h.Comment != "crashkey test" || h.Attributes.Set || h.KdDebuggerDataBlock.Value != wantKDBG(is64) {
					t.Fatalf("header %+v", h)
				}
				if tm, _ := h.Time(); !tm.Equal(when) {
					t.Errorf("time %v", tm)
				}
				if d, _ := h.UpTime(); d != 90*time.Minute {
					t.Errorf("uptime %v", d)
				}
				wantSize := int64(len(b))
				if typ == TypeTriage {
					wantSize -= int64(spec.SecondaryData)
				}
				if f.DumpSize() != wantSize {
					t.Errorf("DumpSize = %d, want %d", f.DumpSize(), wantSize)
				}
				r := check(t, f, CheckOptions{Deep: true, ExpectBugCheck: ptr(uint32(0xE2))})
				if r.Verdict != Valid || !r.OK() {
					t.Fatalf("verdict %v, findings %+v", r.Verdict, r.Findings)
				}
				if typ == TypeTriage || typ == TypeHeader {
					return
				}
				if r.Deep.PagesRead != 0x9E+0x80+3 || r.Deep.ZeroPages != 0 || r.Memory.RunCount != 3 {
					t.Errorf("deep %+v memory %+v", r.Deep, r.Memory)
				}
				want := make([]byte, PageSize)
				got := make([]byte, PageSize)
				for _, run := range testRuns {
					for pfn := run.BasePage; pfn < run.BasePage+run.PageCount; pfn++ {
						FillPattern(want, pfn, 42)
						if _, err := f.ReadPhysical(got, pfn*PageSize); err != nil || !bytes.Equal(got, want) {
							t.Fatalf("page 0x%X: %v", pfn, err)
						}
					}
				}
				wantAbsent(t, f, 0)
				wantAbsent(t, f, 0x9F000)
				wantAbsent(t, f, 0x1003000)
			})
		}
	}
}

func TestWriteSpecErrors(t *testing.T) {
	many := make([]Run, 43)
	for i := range many {
		many[i] = Run{uint64(i * 2), 1}
	}
	tests := []struct {
		name string
		spec Spec
	}{
		{"43 runs in a 64-bit full dump", Spec{Type: TypeFull, Is64: true, Runs: many}},
		{"unsorted bitmap runs", Spec{Type: TypeBitmapKernel, Is64: true, Runs: []Run{{10, 1}, {1, 1}}}},
		{"overlapping bitmap runs", Spec{Type: TypeBitmapKernel, Is64: true, Runs: []Run{{1, 10}, {5, 1}}}},
		{"bitmap shorter than the runs", Spec{Type: TypeBitmapFull, Is64: true, Runs: []Run{{1, 10}}, BitmapPages: 5}},
		{"32-bit run above 4 G pages", Spec{Type: TypeFull, Runs: []Run{{1 << 33, 1}}}},
		{"tiny triage", Spec{Type: TypeTriage, Is64: true, TriageSize: 0x2100}},
		{"unknown type", Spec{Type: 7, Is64: true}},
		{"long comment", Spec{Type: TypeHeader, Is64: true, Comment: string(make([]byte, 200))}},
	}
	for _, tt := range tests {
		if err := Write(&bytes.Buffer{}, tt.spec, nil); err == nil {
			t.Errorf("%s: Write succeeded", tt.name)
		}
		if n, err := tt.spec.Size(); err == nil {
			t.Errorf("%s: Size = %d, nil", tt.name, n)
		}
	}
	boom := errors.New("boom")
	err := Write(&bytes.Buffer{}, Spec{Type: TypeFull, Is64: true, Runs: testRuns}, func(uint64, []byte) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("page source error = %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "MEMORY.DMP")
	if err := WriteFile(path, baseSpec(TypeBitmapKernel, true), nil); err != nil {
		t.Fatal(err)
	}
	// A failing write leaves the previous file intact and no temporary file behind.
	err := WriteFile(path, baseSpec(TypeFull, true), func(uint64, []byte) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("WriteFile with a failing page source succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(ents))
	}
	b, _ := os.ReadFile(path)
	if f := open(t, b); f.Type() != TypeBitmapKernel {
		t.Errorf("type %v", f.Type())
	}
}

// TestWriteBitmapLarge checks a bitmap with runs spanning several writer blocks and odd
// boundaries against a bit-by-bit reference.
func TestWriteBitmapLarge(t *testing.T) {
	runs := []Run{{3, 5}, {13, 1}, {0x7FFF8, 20}, {0x80010, 0x900}, {0x100007, 9}}
	spec := Spec{Type: TypeBitmapFull, Is64: true, Runs: runs, BitmapPages: 0x100123}
	b := writeDump(t, spec, ZeroPages)
	f := open(t, b)
	bm := f.Bitmap()
	raw := b[0x2038 : 0x2038+(bm.Pages+7)/8]
	in := func(p uint64) bool {
		for _, r := range runs {
			if p >= r.BasePage && p < r.BasePage+r.PageCount {
				return true
			}
		}
		return false
	}
	for p := uint64(0); p < bm.Pages; p++ {
		if got := raw[p/8]&(1<<(p%8)) != 0; got != in(p) {
			t.Fatalf("bit 0x%X = %v", p, got)
		}
	}
	r := check(t, f, CheckOptions{Deep: true})
	if r.Memory.RunCount != uint64(len(runs)) || r.Memory.Runs[3] != runs[3] || r.Verdict != ValidWithWarnings || !hasFinding(r, "all-zero", Warning) {
		t.Errorf("memory %+v verdict %v findings %+v", r.Memory, r.Verdict, r.Findings)
	}
	// Spot-check the mapping through the rank index across blocks.
	var idx uint64
	for _, run := range runs {
		for _, pfn := range []uint64{run.BasePage, run.BasePage + run.PageCount - 1} {
			off, ok, err := f.PageOffset(pfn * PageSize)
			want := int64(bm.FirstPage + (idx+pfn-run.BasePage)*PageSize)
			if err != nil || !ok || off != want {
				t.Fatalf("PageOffset(pfn 0x%X) = 0x%X, %v, %v; want 0x%X", pfn, off, ok, err, want)
			}
		}
		idx += run.PageCount
	}
}

// TestWriteBitmapLayout checks the bytes Write puts into a bitmap dump at explicit offsets
// (dump-format.md §9): the Windows layout (bitmap length rounded up to whole bytes, first
// page on the next page boundary, the gap zero-filled) and the older packed layout, which
// the reader still maps by the header's FirstPage.
func TestWriteBitmapLayout(t *testing.T) {
	runs := []Run{{1, 3}, {0x10, 2}, {0x100, 1}} // PFNs 1-3, 0x10-0x11, 0x100: highest + 1 = 0x101
	pfns := []uint64{1, 2, 3, 0x10, 0x11, 0x100}
	tests := []struct {
		name          string
		packed        bool
		pages         uint64 // Pages at 0x2030
		bitmapEnd     int    // 0x2038 + ceil(Pages/8)
		first         int    // FirstPage at 0x2020
		size          int
		kdmpSeesPages int // pages a reader that sizes the bitmap as Pages/8 finds
	}{
		{"windows", false, 0x108, 0x2038 + 0x21, 0x3000, 0x3000 + 6*PageSize, 6},
		{"packed", true, 0x101, 0x2038 + 0x21, 0x2059, 0x2059 + 6*PageSize, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := Spec{Type: TypeBitmapFull, Is64: true, BugCheck: 0xE2, SystemTime: when, Runs: runs, PackedFirstPage: tt.packed}
			b := writeDump(t, spec, PatternPages(3))
			if n, err := spec.Size(); err != nil || n != int64(len(b)) {
				t.Errorf("Size() = %d, %v; Write wrote %d", n, err, len(b))
			}
			le := binary.LittleEndian
			if len(b) != tt.size || string(b[0x2000:0x2008]) != "FDMPDUMP" || le.Uint64(b[0x2020:]) != uint64(tt.first) ||
				le.Uint64(b[0x2028:]) != 6 || le.Uint64(b[0x2030:]) != tt.pages || le.Uint64(b[0xFA0:]) != uint64(tt.size) {
				t.Fatalf("size 0x%X, bitmap header % X, RequiredDumpSpace 0x%X", len(b), b[0x2000:0x2038], le.Uint64(b[0xFA0:]))
			}
			if b[0x2038] != 0b1110 || b[0x2039] != 0 || b[0x203A] != 0b11 || b[0x2038+0x20] != 1 {
				t.Errorf("bitmap % X", b[0x2038:tt.bitmapEnd])
			}
			if !bytes.Equal(b[tt.bitmapEnd:tt.first], make([]byte, tt.first-tt.bitmapEnd)) {
				t.Errorf("gap between the bitmap and the first page is not zero")
			}
			want := make([]byte, PageSize)
			for i, pfn := range pfns {
				FillPattern(want, pfn, 3)
				if off := tt.first + i*PageSize; !bytes.Equal(b[off:off+PageSize], want) {
					t.Errorf("page of PFN 0x%X is not at 0x%X", pfn, off)
				}
			}
			// What a reader that takes the bitmap as Pages/8 bytes sees (kdmp-parser, §9).
			seen := popcountBits(b[0x2038:], tt.pages/8*8)
			if seen != uint64(tt.kdmpSeesPages) {
				t.Errorf("Pages/8 bytes of bitmap hold %d pages, want %d", seen, tt.kdmpSeesPages)
			}
			f := open(t, b)
			for i, pfn := range pfns {
				wantPhys(t, f, b, pfn*PageSize, tt.first+i*PageSize)
			}
			wantAbsent(t, f, 0x101000)
			r := check(t, f, CheckOptions{Deep: true})
			if r.Verdict != Valid || r.Deep.PagesRead != 6 {
				t.Errorf("check: %v %+v", r.Verdict, r.Findings)
			}
			if tail := hasFinding(r, "bitmap-tail", Info); tail != (tt.kdmpSeesPages != 6) {
				t.Errorf("bitmap-tail finding: %v, findings %+v", tail, r.Findings)
			}
		})
	}
}
