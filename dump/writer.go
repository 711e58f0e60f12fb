package dump

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/crashkey/crashkey/internal/atomicfile"
)

// PageSource fills page (PageSize bytes) with the content of physical page pfn.
type PageSource func(pfn uint64, page []byte) error

// PatternPages returns a PageSource with deterministic, non-zero content: each page starts
// with its page frame number and the seed (both little-endian u64) followed by xorshift
// noise derived from them, so a reader can tell which page it got.
func PatternPages(seed uint64) PageSource {
	return func(pfn uint64, page []byte) error {
		FillPattern(page, pfn, seed)
		return nil
	}
}

// FillPattern fills page with the content PatternPages(seed) gives page pfn.
func FillPattern(page []byte, pfn, seed uint64) {
	binary.LittleEndian.PutUint64(page, pfn)
	binary.LittleEndian.PutUint64(page[8:], seed)
	x := pfn*0x9E3779B97F4A7C15 ^ seed ^ 0xD1B54A32D192ED03
	for i := 16; i+8 <= len(page); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(page[i:], x)
	}
}

// ZeroPages is a PageSource of all-zero pages.
func ZeroPages(uint64, []byte) error { return nil }

// Spec describes a dump for Write. Zero values select realistic defaults; header fields
// that are not chosen keep the "PAGE" filler, as Windows leaves them.
type Spec struct {
	Type DumpType // TypeFull, TypeSummary, TypeHeader, TypeTriage, TypeBitmapFull or TypeBitmapKernel
	Is64 bool     // 64-bit PAGEDU64 header (otherwise 32-bit PAGEDUMP)

	BugCheck   uint32
	Params     [4]uint64 // bug-check parameters (truncated to 32 bits in 32-bit dumps)
	Processors uint32    // default 1
	Machine    uint32    // default MachineAMD64 (64-bit) or MachineI386 (32-bit)
	Major      uint32    // MajorVersion; default 0xF (free build)
	Build      uint32    // MinorVersion, the OS build number; default 19041

	DirectoryTableBase  uint64
	PfnDataBase         uint64
	PsLoadedModuleList  uint64
	PsActiveProcessHead uint64
	KdDebuggerDataBlock uint64

	SystemTime   time.Time     // zero: PAGE filler
	SystemUpTime time.Duration // zero: PAGE filler
	ProductType  uint32        // default 1 (workstation)
	SuiteMask    uint32        // default 0x110
	Comment      string        // empty: PAGE filler; at most 127 bytes
	Attributes   *uint32       // nil: PAGE filler

	// Runs are the stored physical pages. Full dumps write them to the descriptor in this
	// order (at most 42 runs for 64-bit, 86 for 32-bit); bitmap dumps set their bits and
	// need them sorted and not overlapping.
	Runs []Run
	// BitmapPages is the bitmap length in pages; zero means the highest stored page + 1.
	// Bitmap dumps are laid out so that other readers agree on them: the bitmap length is
	// rounded up to a whole byte (a multiple of 8 pages, as in a public Windows sample, so
	// that readers that size the bitmap as Pages/8, such as kdmp-parser and volatility3, see
	// every page) and the first page starts at the next page boundary after the bitmap, the
	// gap zero-filled.
	BitmapPages uint64
	// PackedFirstPage writes the older, packed bitmap layout instead: the first page right
	// after the bitmap (not page-aligned, as in a public Windows sample) and the bitmap
	// length exactly BitmapPages. Readers must take FirstPage from the header either way.
	PackedFirstPage bool

	// TriageSize is SizeOfDump of a triage dump; zero means 0x10000.
	TriageSize uint32
	// SecondaryData is the number of bytes of DumpBlob secondary data after a triage dump.
	SecondaryData int
}

// specLayout is where Write puts things.
type specLayout struct {
	hs     uint64 // header size
	stored uint64 // pages stored
	npages uint64 // bitmap length in pages (bitmap dumps)
	nbytes uint64 // bitmap length in bytes
	first  uint64 // file offset of the first page
	size   uint64 // length of the dump
}

// layout validates the spec's runs and computes the layout Write will produce.
func (spec Spec) layout() (specLayout, error) {
	l := specLayout{hs: HeaderSize32}
	if spec.Is64 {
		l.hs = HeaderSize64
	}
	for _, r := range spec.Runs {
		if r.BasePage+r.PageCount < r.BasePage || r.BasePage+r.PageCount > 1<<40 {
			return l, fmt.Errorf("dump write: run at page 0x%X with %d pages is beyond 2^40 pages", r.BasePage, r.PageCount)
		}
		l.stored += r.PageCount
	}
	switch spec.Type {
	case TypeFull:
		l.first = l.hs
	case TypeSummary, TypeBitmapFull, TypeBitmapKernel:
		if !sort.SliceIsSorted(spec.Runs, func(i, j int) bool { return spec.Runs[i].BasePage < spec.Runs[j].BasePage }) {
			return l, fmt.Errorf("dump write: bitmap runs must be sorted by base page")
		}
		var highest uint64
		for i, r := range spec.Runs {
			if i > 0 && spec.Runs[i-1].BasePage+spec.Runs[i-1].PageCount > r.BasePage {
				return l, fmt.Errorf("dump write: bitmap runs at pages 0x%X and 0x%X overlap", spec.Runs[i-1].BasePage, r.BasePage)
			}
			if r.PageCount > 0 {
				highest = r.BasePage + r.PageCount
			}
		}
		l.npages = spec.BitmapPages
		if l.npages == 0 {
			l.npages = highest
		}
		if l.npages < highest {
			return l, fmt.Errorf("dump write: BitmapPages %d is below the highest page %d", l.npages, highest)
		}
		if l.npages > 1<<40 {
			return l, fmt.Errorf("dump write: BitmapPages %d is beyond 2^40 pages", l.npages)
		}
		if !spec.PackedFirstPage {
			l.npages = (l.npages + 7) &^ 7
		}
		l.nbytes = (l.npages + 7) / 8
		l.first = l.hs + bitmapOffset + l.nbytes
		if !spec.PackedFirstPage {
			l.first = (l.first + PageSize - 1) &^ (PageSize - 1)
		}
	case TypeHeader:
		l.first, l.stored = l.hs, 0
	case TypeTriage:
		l.stored = 0
		size := uint64(spec.TriageSize)
		if size == 0 {
			size = 0x10000
		}
		if size < l.hs+0x1000 {
			return l, fmt.Errorf("dump write: triage size 0x%X is below the minimum 0x%X", size, l.hs+0x1000)
		}
		l.size = size + uint64(max(spec.SecondaryData, 0))
		return l, nil
	default:
		return l, fmt.Errorf("dump write: cannot write dump type %s", spec.Type)
	}
	l.size = l.first + l.stored*PageSize
	return l, nil
}

// Size returns the number of bytes Write writes for spec, or the error Write returns for
// the spec (not those of the writer or the page source).
func (spec Spec) Size() (int64, error) {
	l, err := spec.layout()
	if err != nil {
		return 0, err
	}
	if _, err := buildHeader(spec); err != nil {
		return 0, err
	}
	return int64(l.size), nil
}

// Write writes the dump described by spec to w, taking page contents from pages (nil means
// PatternPages(1)). It streams: memory use does not depend on the dump's size.
func Write(w io.Writer, spec Spec, pages PageSource) error {
	if pages == nil {
		pages = PatternPages(1)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	l, err := spec.layout()
	if err != nil {
		return err
	}
	hs, stored := l.hs, l.stored
	hdr, err := buildHeader(spec)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	putReq := func(v uint64) { le.PutUint64(hdr[0xFA0:], v) }
	switch spec.Type {
	case TypeFull:
		putReq(hs + stored*PageSize)
		if _, err := bw.Write(hdr); err != nil {
			return fmt.Errorf("dump write: %w", err)
		}
		if err := writePages(bw, spec.Runs, pages); err != nil {
			return err
		}
	case TypeSummary, TypeBitmapFull, TypeBitmapKernel:
		npages, nbytes, first := l.npages, l.nbytes, l.first
		putReq(first + stored*PageSize)
		if _, err := bw.Write(hdr); err != nil {
			return fmt.Errorf("dump write: %w", err)
		}
		bh := make([]byte, bitmapOffset)
		sig := "SDMP"
		if spec.Type == TypeBitmapFull {
			sig = "FDMP"
		}
		copy(bh, sig+"DUMP")
		fillPAGE(bh[8:0x20])
		le.PutUint64(bh[0x20:], first)
		le.PutUint64(bh[0x28:], stored)
		le.PutUint64(bh[0x30:], npages)
		bw.Write(bh)
		if err := writeBitmap(bw, spec.Runs, nbytes); err != nil {
			return err
		}
		if pad := first - (hs + bitmapOffset + nbytes); pad > 0 {
			bw.Write(make([]byte, pad))
		}
		if err := writePages(bw, spec.Runs, pages); err != nil {
			return err
		}
	case TypeHeader:
		putReq(hs)
		bw.Write(hdr)
	case TypeTriage:
		size := spec.TriageSize
		if size == 0 {
			size = 0x10000
		}
		putReq(uint64(size) + uint64(spec.SecondaryData) + 0x36000)
		bw.Write(hdr)
		body := make([]byte, uint64(size)-hs)
		th := triageLayout(size, hs, spec.Is64)
		for i, v := range th {
			le.PutUint32(body[4*i:], v)
		}
		if spec.Is64 {
			le.PutUint64(body[0x48:], 0xFFFFF80000000000+0x1000) // TopOfStack
		}
		for i := 0x80; i < len(body)-4; i++ {
			body[i] = byte(i * 7)
		}
		le.PutUint32(body[len(body)-4:], sigTRGD)
		bw.Write(body)
		if spec.SecondaryData > 0 {
			sd := make([]byte, spec.SecondaryData)
			copy(sd, "DumpBlob")
			bw.Write(sd)
		}
	default:
		return fmt.Errorf("dump write: cannot write dump type %s", spec.Type)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dump write: %w", err)
	}
	return nil
}

// triageLayout returns the first 0x80 bytes of a triage header as u32 values, with
// offsets in the proportions of a real x64 triage dump.
func triageLayout(size uint32, hs uint64, is64 bool) []uint32 {
	h := uint32(hs)
	span := size - h - 4
	at := func(frac uint32) uint32 { return (h + 0x80 + uint32(uint64(span-0x100)*uint64(frac)/1000)) &^ 7 }
	t := make([]uint32, 0x80/4)
	copy(t, []uint32{
		0,                 // ServicePackBuild
		size,              // SizeOfDump
		size - 4,          // ValidOffset
		0x348,             // ContextOffset
		0xF00,             // ExceptionOffset
		at(0),             // MmOffset
		at(5),             // UnloadedDriversOffset
		at(20),            // PrcbOffset
		at(400),           // ProcessOffset
		at(420),           // ThreadOffset
		at(440),           // CallStackOffset
		at(520) - at(440), // SizeOfCallStack
		at(530),           // DriverListOffset
		16,                // DriverCount
		at(800),           // StringPoolOffset
		at(900) - at(800), // StringPoolSize
		0,                 // BrokenDriverOffset
		0xFFFFFFFF,        // TriageOptions
	})
	if !is64 {
		t[3], t[4] = 0x320, 0x7D0
		return t[:0x48/4]
	}
	t[0x70/4] = at(700)
	t[0x74/4] = 0x380
	t[0x78/4] = at(910)
	t[0x7C/4] = 4
	return t
}

func fillPAGE(b []byte) {
	for i := range b {
		b[i] = "PAGE"[i%4]
	}
}

// buildHeader fills a PAGE-filled header with the spec's fields.
func buildHeader(spec Spec) ([]byte, error) {
	l := layout32
	valid := "DUMP"
	machine := uint32(MachineI386)
	if spec.Is64 {
		l, valid, machine = layout64, "DU64", MachineAMD64
	}
	if spec.Machine != 0 {
		machine = spec.Machine
	}
	hdr := make([]byte, l.headerSize)
	fillPAGE(hdr)
	copy(hdr, "PAGE"+valid)
	le := binary.LittleEndian
	put32 := func(off int, v uint32) { le.PutUint32(hdr[off:], v) }
	put64 := func(off int, v uint64) { le.PutUint64(hdr[off:], v) }
	wide := func(off int, v uint64) {
		if spec.Is64 {
			put64(off, v)
		} else {
			put32(off, uint32(v))
		}
	}
	put32(0x08, or32(spec.Major, 0xF))
	put32(0x0C, or32(spec.Build, 19041))
	wide(l.dtb, spec.DirectoryTableBase)
	wide(l.pfn, spec.PfnDataBase)
	wide(l.psl, spec.PsLoadedModuleList)
	wide(l.pah, spec.PsActiveProcessHead)
	put32(l.machine, machine)
	put32(l.nproc, or32(spec.Processors, 1))
	put32(l.bug, spec.BugCheck)
	for i, p := range spec.Params {
		wide(l.params+i*l.paramWidth, p)
	}
	wide(l.kdbg, spec.KdDebuggerDataBlock)
	if spec.Is64 {
		put32(0x3C, 0) // alignment padding after BugCheckCode
		hdr[l.kdSecondary-1], hdr[l.kdSecondary] = 0, 0
	} else {
		hdr[0x5C], hdr[0x5D], hdr[0x5E], hdr[0x5F] = 0, 0, 0, 0
	}
	if spec.Type == TypeFull {
		limit := 86
		if spec.Is64 {
			limit = 42
		}
		if len(spec.Runs) > limit {
			return nil, fmt.Errorf("dump write: %d runs do not fit in the header's memory descriptor (at most %d)", len(spec.Runs), limit)
		}
		var stored uint64
		d := hdr[l.physMem:]
		for i, r := range spec.Runs {
			stored += r.PageCount
			if spec.Is64 {
				le.PutUint64(d[16+16*i:], r.BasePage)
				le.PutUint64(d[24+16*i:], r.PageCount)
			} else {
				if r.BasePage+r.PageCount > 1<<32 {
					return nil, fmt.Errorf("dump write: run at page 0x%X does not fit a 32-bit descriptor", r.BasePage)
				}
				le.PutUint32(d[8+8*i:], uint32(r.BasePage))
				le.PutUint32(d[12+8*i:], uint32(r.PageCount))
			}
		}
		le.PutUint32(d, uint32(len(spec.Runs)))
		if spec.Is64 {
			le.PutUint32(d[4:], 0)
			le.PutUint64(d[8:], stored)
		} else {
			le.PutUint32(d[4:], uint32(stored))
		}
	}
	if spec.Is64 && machine == MachineAMD64 {
		ctx := hdr[0x348:]
		clear(ctx[:0x4D0])
		put32(0x348+0x30, 0x10001F) // CONTEXT_ALL for AMD64
		put32(0x348+0x34, 0x1F80)   // MxCsr
		put32(0x348+0x118, 0x1F80)  // FltSave.MxCsr
		le.PutUint16(ctx[0x38:], 0x10)
		le.PutUint64(ctx[0xF8:], spec.PsLoadedModuleList&^0xFFFFF) // some kernel RIP
	}
	exc := hdr[l.excCode:]
	put32(l.excCode, 0x80000003)
	put32(l.excFlags, 1)
	if spec.Is64 {
		clear(exc[8:0x20])
	} else {
		clear(exc[8:0x14])
	}
	put32(l.dumpType, uint32(spec.Type))
	if !spec.SystemTime.IsZero() {
		put64(l.sysTime, ToFileTime(spec.SystemTime))
	}
	if spec.SystemUpTime != 0 {
		put64(l.upTime, uint64(spec.SystemUpTime/100))
	}
	if spec.Comment != "" {
		if len(spec.Comment) > 127 {
			return nil, fmt.Errorf("dump write: comment is %d bytes, at most 127 fit", len(spec.Comment))
		}
		c := hdr[l.comment : l.comment+128]
		clear(c)
		copy(c, spec.Comment)
	}
	put32(l.product, or32(spec.ProductType, 1))
	put32(l.suite, or32(spec.SuiteMask, 0x110))
	if spec.Type == TypeTriage {
		put32(l.miniFields, 0xCFF)
	}
	if spec.Attributes != nil {
		put32(l.attributes, *spec.Attributes)
	}
	return hdr, nil
}

func or32(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// writePages writes the runs' pages in order.
func writePages(w io.Writer, runs []Run, pages PageSource) error {
	page := make([]byte, PageSize)
	for _, r := range runs {
		for pfn := r.BasePage; pfn < r.BasePage+r.PageCount; pfn++ {
			clear(page)
			if err := pages(pfn, page); err != nil {
				return fmt.Errorf("dump write: page 0x%X: %w", pfn, err)
			}
			if _, err := w.Write(page); err != nil {
				return fmt.Errorf("dump write: %w", err)
			}
		}
	}
	return nil
}

// writeBitmap writes a bitmap of nbytes bytes with the runs' bits set, block by block.
func writeBitmap(w io.Writer, runs []Run, nbytes uint64) error {
	const blk = 1 << 16
	buf := make([]byte, blk)
	ri := 0
	for off := uint64(0); off < nbytes; off += blk {
		n := min(blk, nbytes-off)
		b := buf[:n]
		clear(b)
		lo, hi := off*8, (off+n)*8
		for ri < len(runs) && runs[ri].BasePage+runs[ri].PageCount <= lo {
			ri++
		}
		for j := ri; j < len(runs) && runs[j].BasePage < hi; j++ {
			s := max(runs[j].BasePage, lo)
			e := min(runs[j].BasePage+runs[j].PageCount, hi)
			for p := s; p < e; {
				bit := p - lo
				if bit%8 == 0 && e-p >= 8 {
					b[bit/8] = 0xFF
					p += 8
					continue
				}
				b[bit/8] |= 1 << (bit % 8)
				p++
			}
		}
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("dump write: %w", err)
		}
	}
	return nil
}

// WriteFile writes the dump to path atomically: to a temporary file in the same directory,
// then renamed over path.
func WriteFile(path string, spec Spec, pages PageSource) error {
	var werr error
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		werr = Write(w, spec, pages)
		return werr
	})
	if err != nil && err != werr {
		return fmt.Errorf("dump write: %w", err)
	}
	return err
}
