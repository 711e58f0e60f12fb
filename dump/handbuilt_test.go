package dump

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// These tests build dumps byte by byte from the offsets of the reference tables
// (dump-format.md §3, §4, §6, §8, §9, §10), independently of Write, with unused header
// bytes holding "PAGE" filler as Windows leaves them.

// pageFilled returns n bytes of "PAGE" filler.
func pageFilled(n int) []byte {
	return bytes.Repeat([]byte("PAGE"), n/4)
}

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// markPage fills a 4 KiB page with a byte derived from its page frame number.
func markPage(pfn uint64) []byte { return bytes.Repeat([]byte{byte(pfn*7 + 1)}, PageSize) }

var when = time.Date(2026, 11, 21, 8, 30, 15, 123456700, time.UTC)

const (
	ftWhen = 134397234151234567 // FILETIME of when, computed with Python's datetime
	kdbg   = 0xFFFFF8024A000B20
	psl    = 0xFFFFF8024A22A2D0
)

func TestFileTimeConstant(t *testing.T) {
	if got := ToFileTime(when); got != ftWhen {
		t.Fatalf("ToFileTime(%v) = %d, want %d", when, got, ftWhen)
	}
	if got := FileTime(ftWhen); !got.Equal(when) {
		t.Fatalf("FileTime(%d) = %v, want %v", uint64(ftWhen), got, when)
	}
}

// hand64 returns a 64-bit header with the common fields set at their offsets.
func hand64(dumpType uint32, bugCheck uint32) []byte {
	b := pageFilled(0x2000)
	copy(b[0x000:], "PAGEDU64")
	put32(b, 0x008, 0xF)
	put32(b, 0x00C, 19041)
	put64(b, 0x010, 0x1AD002)
	put64(b, 0x018, 0xFFFFFA8000000000)
	put64(b, 0x020, psl)
	put64(b, 0x028, 0xFFFFF8024A21CD40)
	put32(b, 0x030, 0x8664)
	put32(b, 0x034, 4)
	put32(b, 0x038, bugCheck)
	put32(b, 0x03C, 0)
	put64(b, 0x040, 0)
	put64(b, 0x048, 0)
	put64(b, 0x050, 0)
	put64(b, 0x058, 0)
	put64(b, 0x080, kdbg)
	put32(b, 0xF98, dumpType)
	put64(b, 0xFA8, ftWhen)
	put64(b, 0x1030, 36000000000) // one hour
	put32(b, 0x1040, 1)
	put32(b, 0x1044, 0x110)
	return b
}

func open(t *testing.T, b []byte) *File {
	t.Helper()
	f, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f
}

func check(t *testing.T, f *File, opts CheckOptions) *Report {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = when.Add(time.Hour)
	}
	r, err := f.Check(context.Background(), opts)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return r
}

// wantPhys asserts that physical address pa reads the page stored at file offset off.
func wantPhys(t *testing.T, f *File, b []byte, pa uint64, off int) {
	t.Helper()
	got := make([]byte, PageSize)
	if n, err := f.ReadPhysical(got, pa); err != nil || n != PageSize {
		t.Fatalf("ReadPhysical(0x%X) = %d, %v", pa, n, err)
	}
	if !bytes.Equal(got, b[off:off+PageSize]) {
		t.Fatalf("ReadPhysical(0x%X) did not return the page at file offset 0x%X", pa, off)
	}
	fo, ok, err := f.PageOffset(pa)
	if err != nil || !ok || fo != int64(off) {
		t.Fatalf("PageOffset(0x%X) = 0x%X, %v, %v; want 0x%X", pa, fo, ok, err, off)
	}
}

func wantAbsent(t *testing.T, f *File, pa uint64) {
	t.Helper()
	var p [16]byte
	if _, err := f.ReadPhysical(p[:], pa); !errors.Is(err, ErrAbsentPage) {
		t.Fatalf("ReadPhysical(0x%X) = %v, want ErrAbsentPage", pa, err)
	}
}

func hasFinding(r *Report, code string, sev Severity) bool {
	for _, f := range r.Findings {
		if f.Code == code && f.Severity == sev {
			return true
		}
	}
	return false
}

func TestHandBuiltFull64(t *testing.T) {
	b := hand64(1, 0xE2)
	// Physical memory descriptor at 0x88: runs (1,3), (0x10,2), (0x100,1).
	put32(b, 0x088, 3)
	put32(b, 0x08C, 0)
	put64(b, 0x090, 6)
	put64(b, 0x098, 1)
	put64(b, 0x0A0, 3)
	put64(b, 0x0A8, 0x10)
	put64(b, 0x0B0, 2)
	put64(b, 0x0B8, 0x100)
	put64(b, 0x0C0, 1)
	put64(b, 0xFA0, 0x8000)
	for _, pfn := range []uint64{1, 2, 3, 0x10, 0x11, 0x100} {
		b = append(b, markPage(pfn)...)
	}
	f := open(t, b)
	h := f.Header()
	if !h.Is64 || h.HeaderSize != 0x2000 || h.Signature != "PAGEDU64" {
		t.Fatalf("width: %+v", h)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"MajorVersion", h.MajorVersion, U32{0xF, true}},
		{"MinorVersion", h.MinorVersion, U32{19041, true}},
		{"DirectoryTableBase", h.DirectoryTableBase, U64{0x1AD002, true}},
		{"PfnDataBase", h.PfnDataBase, U64{0xFFFFFA8000000000, true}},
		{"PsLoadedModuleList", h.PsLoadedModuleList, U64{psl, true}},
		{"PsActiveProcessHead", h.PsActiveProcessHead, U64{0xFFFFF8024A21CD40, true}},
		{"MachineImageType", h.MachineImageType, U32{0x8664, true}},
		{"NumberProcessors", h.NumberProcessors, U32{4, true}},
		{"BugCheckCode", h.BugCheckCode, U32{0xE2, true}},
		{"KdDebuggerDataBlock", h.KdDebuggerDataBlock, U64{kdbg, true}},
		{"DumpType", h.DumpType, TypeFull},
		{"RequiredDumpSpace", h.RequiredDumpSpace, U64{0x8000, true}},
		{"SystemTime", h.SystemTime, U64{ftWhen, true}},
		{"ProductType", h.ProductType, U32{1, true}},
		{"SuiteMask", h.SuiteMask, U32{0x110, true}},
		{"Attributes (filler)", h.Attributes, U32{0x45474150, false}},
		{"BootID (filler)", h.BootID, U32{0x45474150, false}},
		{"SecondaryDataState (filler)", h.SecondaryDataState, U32{0x45474150, false}},
		{"Comment (filler)", h.Comment, ""},
		{"VersionUser (filler)", h.VersionUser, ""},
		{"Exception code (filler)", h.Exception.Code.Set, false},
		{"NumberOfRuns", h.PhysicalMemory.NumberOfRuns, uint32(3)},
		{"NumberOfPages", h.PhysicalMemory.NumberOfPages, uint64(6)},
		{"Run 2", h.PhysicalMemory.Runs[2], Run{0x100, 1}},
		{"DumpSize", f.DumpSize(), int64(0x8000)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if tm, ok := h.Time(); !ok || !tm.Equal(when) {
		t.Errorf("Time() = %v, %v", tm, ok)
	}
	if d, ok := h.UpTime(); !ok || d != time.Hour {
		t.Errorf("UpTime() = %v, %v", d, ok)
	}
	// Worked example of dump-format.md §8.
	for pa, off := range map[uint64]int{0x1000: 0x2000, 0x2000: 0x3000, 0x3000: 0x4000, 0x10000: 0x5000, 0x11000: 0x6000, 0x100000: 0x7000} {
		wantPhys(t, f, b, pa, off)
	}
	for _, pa := range []uint64{0, 0x4000, 0xF000, 0x12000, 0xFF000, 0x101000, 1 << 62} {
		wantAbsent(t, f, pa)
	}
	// A read that crosses from a stored page into an absent one stops at the boundary.
	p := make([]byte, 0x1000)
	n, err := f.ReadPhysical(p, 0x3800)
	if n != 0x800 || !errors.Is(err, ErrAbsentPage) || !bytes.Equal(p[:0x800], b[0x4800:0x5000]) {
		t.Errorf("ReadPhysical across the end of a run = %d, %v", n, err)
	}
	// Reads crossing page boundaries inside runs.
	n, err = f.PhysicalReader().ReadAt(p[:0x1000], 0x1800)
	if n != 0x1000 || err != nil || !bytes.Equal(p, b[0x2800:0x3800]) {
		t.Errorf("ReadAt(0x1800) = %d, %v", n, err)
	}
	r := check(t, f, CheckOptions{Deep: true})
	if r.Verdict != Valid || r.Deep.PagesRead != 6 || r.Deep.ZeroPages != 0 || r.Memory.RunCount != 3 {
		t.Errorf("check: verdict %v, deep %+v, memory %+v, findings %+v", r.Verdict, r.Deep, r.Memory, r.Findings)
	}
}

func TestHandBuiltFull32(t *testing.T) {
	b := pageFilled(0x1000)
	copy(b[0x000:], "PAGEDUMP")
	put32(b, 0x008, 0xF)
	put32(b, 0x00C, 2600)
	put32(b, 0x010, 0x185000)
	put32(b, 0x014, 0x80000000)
	put32(b, 0x018, 0x8055B1C0)
	put32(b, 0x01C, 0x8055A1D8)
	put32(b, 0x020, 0x14C)
	put32(b, 0x024, 2)
	put32(b, 0x028, 0x80)
	put32(b, 0x02C, 0x004F4454)
	put32(b, 0x030, 0)
	put32(b, 0x034, 0)
	put32(b, 0x038, 0)
	b[0x5C], b[0x5D], b[0x5E], b[0x5F] = 1, 0, 0, 0 // PaeEnabled, KdSecondaryVersion, Spare3
	put32(b, 0x060, 0x80544CE0)
	// Descriptor at 0x64: runs (0x10,1), (0x20,2).
	put32(b, 0x064, 2)
	put32(b, 0x068, 3)
	put32(b, 0x06C, 0x10)
	put32(b, 0x070, 1)
	put32(b, 0x074, 0x20)
	put32(b, 0x078, 2)
	copy(b[0x820:], "hand-built\x00")
	put32(b, 0x8A0, 0)
	put32(b, 0xF88, 1)
	put32(b, 0xF94, 1)
	put64(b, 0xFA0, 0x4000)
	put64(b, 0xFB8, 5*36000000000) // SystemUpTime comes first in the 32-bit header
	put64(b, 0xFC0, ftWhen)
	for _, pfn := range []uint64{0x10, 0x20, 0x21} {
		b = append(b, markPage(pfn)...)
	}
	f := open(t, b)
	h := f.Header()
	if f.Is64() || h.HeaderSize != 0x1000 || h.DumpType != TypeFull || h.BugCheckCode != (U32{0x80, true}) ||
		h.BugCheckParameters[0] != (U64{0x4F4454, true}) || h.MachineImageType.Value != 0x14C || h.NumberProcessors.Value != 2 ||
		h.DirectoryTableBase.Value != 0x185000 || h.PsLoadedModuleList.Value != 0x8055B1C0 || h.KdDebuggerDataBlock.Value != 0x80544CE0 ||
		!h.PaeEnabled || h.Comment != "hand-built" || h.Attributes != (U32{0, true}) || h.MinorVersion.Value != 2600 {
		t.Fatalf("decoded header: %+v", h)
	}
	if tm, _ := h.Time(); !tm.Equal(when) {
		t.Errorf("SystemTime = %v, want %v", tm, when)
	}
	if d, _ := h.UpTime(); d != 5*time.Hour {
		t.Errorf("SystemUpTime = %v, want 5h", d)
	}
	wantPhys(t, f, b, 0x10000, 0x1000)
	wantPhys(t, f, b, 0x20000, 0x2000)
	wantPhys(t, f, b, 0x21000, 0x3000)
	wantAbsent(t, f, 0x11000)
	r := check(t, f, CheckOptions{ExpectBugCheck: ptr(BugCheckNMIHardwareFailure)})
	if r.Verdict != Valid || !r.OK() || r.BugCheck.Name != "NMI_HARDWARE_FAILURE" {
		t.Errorf("check: %v %+v", r.Verdict, r.Findings)
	}
}

func ptr[T any](v T) *T { return &v }

// bitmapDump builds a bitmap dump per dump-format.md §9's worked example: PFNs {1, 2, 3,
// 0x10, 0x11, 0x100}, Pages 0x200, FirstPage firstPage.
func bitmapDump(dumpType uint32, sig string, firstPage int) []byte {
	b := hand64(dumpType, 0xE2)
	bh := pageFilled(0x38)
	copy(bh[0x00:], sig+"DUMP")
	put64(bh, 0x20, uint64(firstPage))
	put64(bh, 0x28, 6)
	put64(bh, 0x30, 0x200)
	b = append(b, bh...)
	bitmap := make([]byte, 0x200/8)
	bitmap[0] = 0b1110    // PFN 1, 2, 3
	bitmap[2] = 0b11      // PFN 0x10, 0x11
	bitmap[0x100/8] = 0b1 // PFN 0x100
	b = append(b, bitmap...)
	b = append(b, make([]byte, firstPage-len(b))...)
	for _, pfn := range []uint64{1, 2, 3, 0x10, 0x11, 0x100} {
		b = append(b, markPage(pfn)...)
	}
	put64(b, 0xFA0, uint64(len(b)))
	return b
}

func TestHandBuiltBitmap(t *testing.T) {
	tests := []struct {
		name      string
		dumpType  uint32
		sig       string
		firstPage int
		want      DumpType
	}{
		{"bitmap full FDMP, the writer's layout: whole-byte bitmap, page-aligned first page", 5, "FDMP", 0x3000, TypeBitmapFull},
		{"bitmap kernel SDMP, packed first page as in a public Windows sample", 6, "SDMP", 0x2038 + 0x40, TypeBitmapKernel},
		{"summary SDMP", 2, "SDMP", 0x2078, TypeSummary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bitmapDump(tt.dumpType, tt.sig, tt.firstPage)
			f := open(t, b)
			if f.Type() != tt.want || f.Bitmap() == nil || f.Bitmap().FirstPage != uint64(tt.firstPage) ||
				f.Bitmap().PresentPages != 6 || f.Bitmap().Pages != 0x200 || f.DumpSize() != int64(len(b)) {
				t.Fatalf("type %v, bitmap %+v, DumpSize %d", f.Type(), f.Bitmap(), f.DumpSize())
			}
			fp := tt.firstPage
			for i, pa := range []uint64{0x1000, 0x2000, 0x3000, 0x10000, 0x11000, 0x100000} {
				wantPhys(t, f, b, pa, fp+i*PageSize)
			}
			for _, pa := range []uint64{0, 0x4000, 0x12000, 0xFF000, 0x101000, 0x1FF000, 0x200000} {
				wantAbsent(t, f, pa)
			}
			r := check(t, f, CheckOptions{Deep: true})
			if r.Verdict != Valid || r.Deep.PagesRead != 6 || r.Memory.RunCount != 3 || r.Memory.Runs[1] != (Run{0x10, 2}) {
				t.Errorf("check: %v %+v %+v %+v", r.Verdict, r.Findings, r.Memory, r.Deep)
			}
		})
	}
}

func TestHandBuiltRDMP(t *testing.T) {
	b := hand64(10, 0xE2)
	x := make([]byte, 0x70)
	put32(x, 0x00, 0x40)
	copy(x[0x04:], "RDMPDUMP")
	put64(x, 0x10, 0x50)   // MetadataSize
	put64(x, 0x18, 0x2070) // FirstPageOffset: MetadataSize-0x20 == FirstPageOffset-0x2040
	put32(x, 0x20, 3)      // NumberOfRanges
	put64(x, 0x28, 6)      // TotalNumberOfPages
	for i, r := range []Run{{1, 3}, {0x10, 2}, {0x100, 1}} {
		put64(x, 0x30+16*i, r.BasePage)
		put64(x, 0x38+16*i, r.PageCount)
	}
	b = append(b, x...)
	for _, pfn := range []uint64{1, 2, 3, 0x10, 0x11, 0x100} {
		b = append(b, markPage(pfn)...)
	}
	put64(b, 0xFA0, uint64(len(b)))
	f := open(t, b)
	for i, pa := range []uint64{0x1000, 0x2000, 0x3000, 0x10000, 0x11000, 0x100000} {
		wantPhys(t, f, b, pa, 0x2070+i*PageSize)
	}
	r := check(t, f, CheckOptions{Deep: true})
	if r.Verdict != Valid || r.Deep.PagesRead != 6 || !hasFinding(r, "rdmp", Info) {
		t.Errorf("check: %v %+v", r.Verdict, r.Findings)
	}
}

// triageDump builds a 64-bit triage dump laid out like the public x64 sample (§10.3),
// scaled down: SizeOfDump 0x3000, TRGD at 0x2FFC, then DumpBlob secondary data.
func triageDump() []byte {
	b := hand64(4, 0x1000007E)
	put64(b, 0xFA0, 0x197915) // RequiredDumpSpace exceeds the file in real triage dumps
	put32(b, 0x1038, 0xCFF)   // MiniDumpFields
	put64(b, 0x040, 0xFFFFFFFFC0000005)
	put32(b, 0xF00, 0x80000003) // exception code
	put32(b, 0xF04, 1)
	t := make([]byte, 0x1000)
	for i := range t {
		t[i] = byte(i)
	}
	vals := []uint32{0, 0x3000, 0x2FFC, 0x348, 0xF00, 0x2080, 0x20D0, 0x21B8, 0x2400, 0x2500, 0x2600, 0x200,
		0x2800, 3, 0x2A00, 0x100, 0, 0xFFFFFFFF}
	for i, v := range vals {
		put32(t, 4*i, v)
	}
	put64(t, 0x48, 0xFFFFF80000001000)
	put32(t, 0x70, 0x2B00)
	put32(t, 0x74, 0x380)
	put32(t, 0x78, 0x2E80)
	put32(t, 0x7C, 2)
	copy(t[0xFFC:], "TRGD")
	b = append(b, t...)
	sd := make([]byte, 0x100)
	copy(sd, "DumpBlob")
	return append(b, sd...)
}

func TestHandBuiltTriage(t *testing.T) {
	b := triageDump()
	f := open(t, b)
	tr := f.Triage()
	if f.Type() != TypeTriage || tr == nil || tr.SizeOfDump != 0x3000 || tr.ValidOffset != 0x2FFC || tr.DriverCount != 3 ||
		tr.DebuggerDataOffset != 0x2B00 || tr.DataBlocksCount != 2 || tr.TriageOptions != 0xFFFFFFFF {
		t.Fatalf("triage header %+v", tr)
	}
	if f.DumpSize() != 0x3000 {
		t.Errorf("DumpSize = 0x%X, want SizeOfDump 0x3000", f.DumpSize())
	}
	if f.Header().BugCheckCode.Value != 0x1000007E || BugCheckName(0x1000007E) != "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M" {
		t.Errorf("bug check %v", f.Header().BugCheckCode)
	}
	if _, err := f.ReadPhysical(make([]byte, 8), 0x1000); !errors.Is(err, ErrNoPhysicalMemory) {
		t.Errorf("ReadPhysical on triage = %v, want ErrNoPhysicalMemory", err)
	}
	r := check(t, f, CheckOptions{Deep: true})
	if r.Verdict != Valid || !hasFinding(r, "secondary-data", Info) || r.Deep.Skipped == "" {
		t.Errorf("check: %v %+v", r.Verdict, r.Findings)
	}
	// The TRGD marker is missing: the triage dump was never completed.
	c := bytes.Clone(b)
	copy(c[0x2FFC:], "PAGE")
	if r := check(t, open(t, c), CheckOptions{}); r.Verdict != Corrupt || !hasFinding(r, "triage-valid", Error) {
		t.Errorf("without TRGD: %v %+v", r.Verdict, r.Findings)
	}
	// An offset beyond the end of the file.
	c = bytes.Clone(b)
	put32(c, 0x2000+0x30, 0x7FFFFFFF)
	if r := check(t, open(t, c), CheckOptions{}); r.Verdict != Corrupt || !hasFinding(r, "triage-offset", Error) {
		t.Errorf("bad offset: %v %+v", r.Verdict, r.Findings)
	}
	// Cut inside the triage dump.
	if r := check(t, open(t, b[:0x2800]), CheckOptions{}); r.Verdict != Corrupt || !hasFinding(r, "truncated", Error) {
		t.Errorf("cut: %v %+v", r.Verdict, r.Findings)
	}
}

func TestHandBuiltHeaderOnly32(t *testing.T) {
	b := pageFilled(0x1000)
	copy(b, "PAGEDUMP")
	put32(b, 0x08, 0xF)
	put32(b, 0x0C, 7601)
	put32(b, 0x20, 0x14C)
	put32(b, 0x24, 1)
	put32(b, 0x28, 0xE2)
	for off := 0x2C; off < 0x3C; off += 4 {
		put32(b, off, 0)
	}
	put32(b, 0xF88, 3)
	put64(b, 0xFA0, 0x1000)
	put64(b, 0xFC0, ftWhen)
	f := open(t, b)
	if f.DumpSize() != 0x1000 || f.Header().PhysicalMemory != nil {
		t.Errorf("DumpSize %d, descriptor %+v", f.DumpSize(), f.Header().PhysicalMemory)
	}
	r := check(t, f, CheckOptions{})
	if r.Verdict != Valid || !hasFinding(r, "header-only", Info) {
		t.Errorf("check: %v %+v", r.Verdict, r.Findings)
	}
}

func TestOpenRejects(t *testing.T) {
	full := hand64(1, 0xE2)
	tests := []struct {
		name string
		data []byte
		want []error
	}{
		{"empty", nil, []error{ErrNotDump}},
		{"four bytes", []byte("PAGE"), []error{ErrNotDump}},
		{"user-mode minidump", append([]byte("MDMP\x93\xa7\x00\x00"), make([]byte, 100)...), []error{ErrNotDump, ErrUserMinidump}},
		{"zeroed pagefile", make([]byte, 0x3000), []error{ErrNotDump}},
		{"PAGE without marker", append([]byte("PAGEPAGE"), make([]byte, 0x2000)...), []error{ErrNotDump}},
		{"64-bit header cut at 0x1000", full[:0x1000], []error{ErrTruncated}},
		{"32-bit header cut at 0x800", append([]byte("PAGEDUMP"), make([]byte, 0x7F8)...), []error{ErrTruncated}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Open(bytes.NewReader(tt.data), int64(len(tt.data)))
			if f != nil || err == nil {
				t.Fatalf("Open = %v, %v; want an error", f, err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Open error %q does not wrap %q", err, w)
				}
			}
			rep, err := CheckFile(context.Background(), bytes.NewReader(tt.data), int64(len(tt.data)), CheckOptions{})
			if err != nil || rep.Verdict != Corrupt || len(rep.Findings) != 1 || rep.OK() {
				t.Errorf("CheckFile = %+v, %v", rep, err)
			}
		})
	}
}

// errReader fails every read.
type errReader struct{}

func (errReader) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk on fire") }

func TestOpenIOError(t *testing.T) {
	_, err := Open(errReader{}, 0x10000)
	if err == nil || errors.Is(err, ErrNotDump) {
		t.Fatalf("Open = %v, want an I/O error", err)
	}
	if _, err := CheckFile(context.Background(), errReader{}, 0x10000, CheckOptions{}); err == nil {
		t.Fatal("CheckFile on an I/O error returned no error")
	}
}

// TestHandBuiltLiveDump builds a live dump as QEMU's win-dmp writes one for a guest that
// has not crashed: a full dump with bug check 0x161 and the LiveDumpGeneratedDump attribute.
func TestHandBuiltLiveDump(t *testing.T) {
	b := hand64(1, 0x161)
	put32(b, 0x088, 1) // one run: PFN 0-1
	put32(b, 0x08C, 0) // QEMU zeroes the descriptor padding
	put64(b, 0x090, 2)
	put64(b, 0x098, 0)
	put64(b, 0x0A0, 2)
	put64(b, 0xFA0, 0x4000)
	put32(b, 0x1050, 0x10)
	b = append(append(b, markPage(0)...), make([]byte, PageSize)...) // PFN 1 is all zero
	f := open(t, b)
	r := check(t, f, CheckOptions{Deep: true, ExpectBugCheck: ptr(BugCheckLiveSystemDump)})
	if r.Verdict != Valid || !r.OK() || !hasFinding(r, "live-dump", Info) || r.BugCheck.Name != "LIVE_SYSTEM_DUMP" ||
		r.Deep.ZeroPages != 1 || r.Deep.PagesRead != 2 {
		t.Errorf("check: %v %+v %+v", r.Verdict, r.Findings, r.Deep)
	}
	if got := AttributeNames(r.Header.Attributes.Value); len(got) != 1 || got[0] != "LiveDumpGeneratedDump" {
		t.Errorf("attributes %v", got)
	}
	wantPhys(t, f, b, 0, 0x2000)
	wantPhys(t, f, b, 0x1000, 0x3000)
	wantAbsent(t, f, 0x2000)
}
