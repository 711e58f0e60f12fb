package dump

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
)

// extraSize is how much Open reads after the main header: enough for the bitmap, triage
// and RDMP headers.
const extraSize = 0x80

// BitmapHeader is the SDMP/FDMP header that follows the main header of summary and bitmap
// dumps. Fields are named by meaning; other parsers name them differently.
type BitmapHeader struct {
	Signature string `json:"signature"` // "SDMP" (kernel/summary) or "FDMP" (full)
	ValidDump string `json:"valid_dump"`
	// FirstPage is the file offset of the first stored page (not necessarily page-aligned).
	FirstPage uint64 `json:"first_page"`
	// PresentPages is the number of stored pages: the number of set bits in the bitmap.
	PresentPages uint64 `json:"present_pages"`
	// Pages is the length of the bitmap in bits (highest page frame number + 1).
	Pages uint64 `json:"pages"`
}

// bitmapOffset is the offset of the bitmap relative to the bitmap header.
const bitmapOffset = 0x38

// TriageHeader is the start of the TRIAGE_DUMP header of a triage dump.
type TriageHeader struct {
	ServicePackBuild      uint32 `json:"service_pack_build"`
	SizeOfDump            uint32 `json:"size_of_dump"`
	ValidOffset           uint32 `json:"valid_offset"`
	ContextOffset         uint32 `json:"context_offset"`
	ExceptionOffset       uint32 `json:"exception_offset"`
	MmOffset              uint32 `json:"mm_offset"`
	UnloadedDriversOffset uint32 `json:"unloaded_drivers_offset"`
	PrcbOffset            uint32 `json:"prcb_offset"`
	ProcessOffset         uint32 `json:"process_offset"`
	ThreadOffset          uint32 `json:"thread_offset"`
	CallStackOffset       uint32 `json:"call_stack_offset"`
	SizeOfCallStack       uint32 `json:"size_of_call_stack"`
	DriverListOffset      uint32 `json:"driver_list_offset"`
	DriverCount           uint32 `json:"driver_count"`
	StringPoolOffset      uint32 `json:"string_pool_offset"`
	StringPoolSize        uint32 `json:"string_pool_size"`
	BrokenDriverOffset    uint32 `json:"broken_driver_offset"`
	TriageOptions         uint32 `json:"triage_options"`
	// The following are decoded for 64-bit triage dumps only.
	DebuggerDataOffset uint32 `json:"debugger_data_offset,omitempty"`
	DebuggerDataSize   uint32 `json:"debugger_data_size,omitempty"`
	DataBlocksOffset   uint32 `json:"data_blocks_offset,omitempty"`
	DataBlocksCount    uint32 `json:"data_blocks_count,omitempty"`
}

// RDMPHeader is the header WinDbg writes after the main header of .dump /k, /ka and /f
// files (dump types 8-10).
type RDMPHeader struct {
	Marker          uint32 `json:"marker"`
	Signature       string `json:"signature"`
	ValidDump       string `json:"valid_dump"`
	MetadataSize    uint64 `json:"metadata_size"`
	FirstPageOffset uint64 `json:"first_page_offset"`
}

// File is an opened kernel dump. Its methods may be called concurrently.
type File struct {
	r    io.ReaderAt
	size int64
	hdr  Header
	raw  []byte // the main header plus up to extraSize bytes after it

	bitmap *BitmapHeader
	triage *TriageHeader
	rdmp   *RDMPHeader

	mapOnce sync.Once
	mapper  pageMapper
	mapErr  error
}

// Open decodes the header of the kernel dump held by r, whose length is size. It reads
// only the header (at most 0x2080 bytes). It returns an error wrapping ErrNotDump (and
// ErrUserMinidump for an MDMP file) when the data is not a kernel dump, ErrTruncated when
// the file ends inside the header, or the reader's I/O error.
func Open(r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, fmt.Errorf("dump: %d-byte file is too short for a dump signature: %w", max(size, 0), ErrNotDump)
	}
	var sig [8]byte
	if err := readFull(r, sig[:], 0); err != nil {
		return nil, fmt.Errorf("dump: read signature: %w", err)
	}
	s0 := binary.LittleEndian.Uint32(sig[:])
	s1 := binary.LittleEndian.Uint32(sig[4:])
	var is64 bool
	switch {
	case s0 == sigMDMP:
		return nil, fmt.Errorf("dump: %w, %w: open it in a debugger as a user-mode dump", ErrUserMinidump, ErrNotDump)
	case s0 != sigPAGE:
		return nil, fmt.Errorf("dump: signature %q is not \"PAGE\": %w", printable(sig[:4]), ErrNotDump)
	case s1 == sigDU64:
		is64 = true
	case s1 == sigDUMP:
	default:
		return nil, fmt.Errorf("dump: valid-dump marker %q is neither \"DU64\" nor \"DUMP\" (is the dump still being written?): %w", printable(sig[4:]), ErrNotDump)
	}
	hs := int64(HeaderSize32)
	if is64 {
		hs = HeaderSize64
	}
	if size < hs {
		return nil, fmt.Errorf("dump: file is %d bytes but the %s header alone is %d: %w", size, string(sig[:]), hs, ErrTruncated)
	}
	n := min(hs+extraSize, size)
	raw := make([]byte, n)
	if err := readFull(r, raw, 0); err != nil {
		return nil, fmt.Errorf("dump: read header: %w", err)
	}
	f := &File{r: r, size: size, raw: raw, hdr: decodeHeader(raw[:hs], is64)}
	f.decodeSecondary()
	return f, nil
}

func printable(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}

// decodeSecondary decodes the header that follows the main header, if the file has it.
func (f *File) decodeSecondary() {
	hs := int(f.hdr.HeaderSize)
	x := f.raw[hs:]
	le := binary.LittleEndian
	switch t := f.hdr.DumpType; {
	case t.isBitmap():
		if len(x) >= bitmapOffset {
			f.bitmap = &BitmapHeader{
				Signature:    printable(x[0:4]),
				ValidDump:    printable(x[4:8]),
				FirstPage:    le.Uint64(x[0x20:]),
				PresentPages: le.Uint64(x[0x28:]),
				Pages:        le.Uint64(x[0x30:]),
			}
		}
	case t == TypeTriage:
		if len(x) >= 0x48 {
			th := &TriageHeader{}
			fields := []*uint32{&th.ServicePackBuild, &th.SizeOfDump, &th.ValidOffset, &th.ContextOffset,
				&th.ExceptionOffset, &th.MmOffset, &th.UnloadedDriversOffset, &th.PrcbOffset, &th.ProcessOffset,
				&th.ThreadOffset, &th.CallStackOffset, &th.SizeOfCallStack, &th.DriverListOffset, &th.DriverCount,
				&th.StringPoolOffset, &th.StringPoolSize, &th.BrokenDriverOffset, &th.TriageOptions}
			for i, p := range fields {
				*p = le.Uint32(x[4*i:])
			}
			if f.hdr.Is64 && len(x) >= 0x80 {
				th.DebuggerDataOffset = le.Uint32(x[0x70:])
				th.DebuggerDataSize = le.Uint32(x[0x74:])
				th.DataBlocksOffset = le.Uint32(x[0x78:])
				th.DataBlocksCount = le.Uint32(x[0x7C:])
			}
			f.triage = th
		}
	case t.isRDMP():
		if len(x) >= 0x30 {
			f.rdmp = &RDMPHeader{
				Marker:          le.Uint32(x),
				Signature:       printable(x[4:8]),
				ValidDump:       printable(x[8:12]),
				MetadataSize:    le.Uint64(x[0x10:]),
				FirstPageOffset: le.Uint64(x[0x18:]),
			}
		}
	}
}

// Header returns the decoded header.
func (f *File) Header() Header { return f.hdr }

// Is64 reports whether the dump has a 64-bit (PAGEDU64) header.
func (f *File) Is64() bool { return f.hdr.Is64 }

// Size returns the size of the file the dump was opened from.
func (f *File) Size() int64 { return f.size }

// Type returns the dump type.
func (f *File) Type() DumpType { return f.hdr.DumpType }

// Bitmap returns the bitmap header of summary and bitmap dumps, or nil.
func (f *File) Bitmap() *BitmapHeader { return f.bitmap }

// Triage returns the triage header of triage dumps, or nil.
func (f *File) Triage() *TriageHeader { return f.triage }

// RDMP returns the RDMP header of debugger-written dumps (types 8-10), or nil.
func (f *File) RDMP() *RDMPHeader { return f.rdmp }

// DumpSize returns the length of the dump according to its header, which can be smaller
// than the file holding it (pagefile.sys, a dedicated dump file). It is RequiredDumpSpace
// when that is set and at least the header size; otherwise (and for triage dumps, whose
// RequiredDumpSpace exceeds the file) it is the size implied by the layout: SizeOfDump for
// a triage dump (secondary data that may follow is not counted), the end of the last page
// for full and bitmap dumps, the header size for header-only dumps. The result is never
// below the header size, and saturates at math.MaxInt64.
func (f *File) DumpSize() int64 {
	hs := f.hdr.HeaderSize
	if f.hdr.DumpType == TypeTriage {
		if f.triage != nil && int64(f.triage.SizeOfDump) > hs {
			return int64(f.triage.SizeOfDump)
		}
		return hs
	}
	if rs := f.hdr.RequiredDumpSpace; rs.Set && rs.Value >= uint64(hs) && rs.Value <= math.MaxInt64 {
		return int64(rs.Value)
	}
	if end, ok := f.layoutEnd(); ok {
		return max(end, hs)
	}
	return hs
}

// layoutEnd returns the end of the page data implied by the layout fields.
func (f *File) layoutEnd() (int64, bool) {
	hs := uint64(f.hdr.HeaderSize)
	switch t := f.hdr.DumpType; {
	case t == TypeFull:
		if d := f.hdr.PhysicalMemory; d != nil {
			return addMul(hs, d.NumberOfPages, PageSize)
		}
	case t.isBitmap():
		if b := f.bitmap; b != nil {
			return addMul(b.FirstPage, b.PresentPages, PageSize)
		}
	case t == TypeHeader:
		return int64(hs), true
	}
	return 0, false
}

// addMul returns a + b*c as an int64, with ok false on overflow.
func addMul(a, b, c uint64) (int64, bool) {
	if c != 0 && b > (math.MaxInt64-a)/c || a > math.MaxInt64 {
		return math.MaxInt64, false
	}
	return int64(a + b*c), true
}

// pageMapper maps page frame numbers to file offsets.
type pageMapper interface {
	// offset returns the file offset of page pfn, ok false when it is absent.
	offset(pfn uint64) (off int64, ok bool, err error)
}

// runMapper maps run-based dumps (full, RDMP): runs stored back to back from dataStart.
type runMapper struct {
	dataStart uint64
	runs      []indexedRun // sorted by BasePage
}

type indexedRun struct {
	Run
	first uint64 // index of the run's first page in the file
}

func newRunMapper(dataStart uint64, runs []Run) (*runMapper, error) {
	m := &runMapper{dataStart: dataStart, runs: make([]indexedRun, 0, len(runs))}
	var idx uint64
	for i, r := range runs {
		if r.PageCount == 0 {
			continue
		}
		if r.BasePage+r.PageCount < r.BasePage || r.BasePage+r.PageCount > 1<<52 {
			return nil, fmt.Errorf("dump: run %d (base page 0x%X, %d pages) exceeds the 64-bit physical address space: %w", i, r.BasePage, r.PageCount, ErrCorrupt)
		}
		m.runs = append(m.runs, indexedRun{r, idx})
		idx += r.PageCount
		if idx > 1<<52 {
			return nil, fmt.Errorf("dump: runs hold more than 2^52 pages: %w", ErrCorrupt)
		}
	}
	sort.Slice(m.runs, func(i, j int) bool { return m.runs[i].BasePage < m.runs[j].BasePage })
	for i := 1; i < len(m.runs); i++ {
		p := m.runs[i-1]
		if p.BasePage+p.PageCount > m.runs[i].BasePage {
			return nil, fmt.Errorf("dump: runs at pages 0x%X and 0x%X overlap: %w", p.BasePage, m.runs[i].BasePage, ErrCorrupt)
		}
	}
	return m, nil
}

func (m *runMapper) offset(pfn uint64) (int64, bool, error) {
	i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].BasePage+m.runs[i].PageCount > pfn })
	if i == len(m.runs) || pfn < m.runs[i].BasePage {
		return 0, false, nil
	}
	off, ok := addMul(m.dataStart, m.runs[i].first+pfn-m.runs[i].BasePage, PageSize)
	if !ok {
		return 0, false, fmt.Errorf("dump: page 0x%X maps beyond 2^63: %w", pfn, ErrCorrupt)
	}
	return off, true, nil
}

// bitmapMapper maps bitmap dumps. It keeps a rank index (the number of set bits before
// every block of rankBlock bits) and reads the bitmap block it needs, so memory stays
// small for any bitmap size.
type bitmapMapper struct {
	r         io.ReaderAt
	bitmapOff int64 // file offset of the bitmap
	pages     uint64
	firstPage uint64
	rank      []uint64 // set bits before block i

	mu       sync.Mutex
	blockIdx int64
	block    []byte
}

const rankBlockBytes = 4096
const rankBlock = rankBlockBytes * 8

func (m *bitmapMapper) offset(pfn uint64) (int64, bool, error) {
	if pfn >= m.pages {
		return 0, false, nil
	}
	bi := int64(pfn / rankBlock)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.block == nil || m.blockIdx != bi {
		n := min(uint64(rankBlockBytes), (m.pages+7)/8-uint64(bi)*rankBlockBytes)
		if m.block == nil {
			m.block = make([]byte, rankBlockBytes)
		}
		clear(m.block)
		if err := readFull(m.r, m.block[:n], m.bitmapOff+bi*rankBlockBytes); err != nil {
			m.block = nil
			return 0, false, fmt.Errorf("dump: read bitmap: %w", err)
		}
		m.blockIdx = bi
	}
	bit := pfn % rankBlock
	if m.block[bit/8]&(1<<(bit%8)) == 0 {
		return 0, false, nil
	}
	idx := m.rank[bi] + popcountBits(m.block, bit)
	off, ok := addMul(m.firstPage, idx, PageSize)
	if !ok {
		return 0, false, fmt.Errorf("dump: page 0x%X maps beyond 2^63: %w", pfn, ErrCorrupt)
	}
	return off, true, nil
}

// ReadPhysical reads len(p) bytes of guest physical memory at addr. It returns the number
// of bytes read and an error wrapping ErrAbsentPage when it reaches a page the dump does
// not hold, ErrNoPhysicalMemory for triage and header-only dumps, ErrCorrupt when the layout
// fields cannot be used, or ErrTruncated when the page lies beyond the end of the file.
func (f *File) ReadPhysical(p []byte, addr uint64) (int, error) {
	m, err := f.pageMap()
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		if a < addr {
			return n, fmt.Errorf("dump: read at 0x%X wraps around the address space: %w", addr, ErrAbsentPage)
		}
		off, ok, err := m.offset(a / PageSize)
		if err != nil {
			return n, err
		}
		if !ok {
			return n, fmt.Errorf("dump: physical address 0x%X: %w", a&^(PageSize-1), ErrAbsentPage)
		}
		in := a % PageSize
		chunk := p[n:min(len(p), n+int(PageSize-in))]
		start := off + int64(in)
		if start+int64(len(chunk)) > f.size {
			return n, fmt.Errorf("dump: physical address 0x%X is stored at file offset 0x%X, beyond the end of the %d-byte file: %w", a, start, f.size, ErrTruncated)
		}
		if err := readFull(f.r, chunk, start); err != nil {
			return n, fmt.Errorf("dump: read physical address 0x%X: %w", a, err)
		}
		n += len(chunk)
	}
	return n, nil
}

// PageOffset returns the file offset of the page holding physical address addr; ok is false
// when the dump does not hold it.
func (f *File) PageOffset(addr uint64) (off int64, ok bool, err error) {
	m, err := f.pageMap()
	if err != nil {
		return 0, false, err
	}
	return m.offset(addr / PageSize)
}

// PhysicalReader returns an io.ReaderAt over guest physical memory: the offset is the
// physical address. Reads of absent pages fail with ErrAbsentPage.
func (f *File) PhysicalReader() io.ReaderAt { return physReader{f} }

type physReader struct{ f *File }

func (p physReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("dump: negative physical address %d: %w", off, ErrAbsentPage)
	}
	return p.f.ReadPhysical(b, uint64(off))
}

// pageMap builds the page mapper once.
func (f *File) pageMap() (pageMapper, error) {
	f.mapOnce.Do(func() { f.mapper, f.mapErr = f.buildMapper() })
	return f.mapper, f.mapErr
}

func (f *File) buildMapper() (pageMapper, error) {
	hs := uint64(f.hdr.HeaderSize)
	switch t := f.hdr.DumpType; {
	case t == TypeFull:
		d := f.hdr.PhysicalMemory
		if d == nil {
			return nil, fmt.Errorf("dump: full dump without a physical memory descriptor (it holds PAGE filler): %w", ErrCorrupt)
		}
		if int(d.NumberOfRuns) != len(d.Runs) {
			return nil, fmt.Errorf("dump: %d memory runs claimed but only %d fit in the header: %w", d.NumberOfRuns, len(d.Runs), ErrCorrupt)
		}
		return newRunMapper(hs, d.Runs)
	case t.isBitmap():
		b, err := f.checkBitmapHeader()
		if err != nil {
			return nil, err
		}
		rank, total, err := f.bitmapRank(b)
		if err != nil {
			return nil, err
		}
		if total != b.PresentPages {
			return nil, fmt.Errorf("dump: bitmap has %d pages set but the header counts %d: %w", total, b.PresentPages, ErrCorrupt)
		}
		return &bitmapMapper{r: f.r, bitmapOff: int64(hs) + bitmapOffset, pages: b.Pages, firstPage: b.FirstPage, rank: rank}, nil
	case t.isRDMP():
		_, runs, err := f.rdmpRanges()
		if err != nil {
			return nil, err
		}
		return newRunMapper(f.rdmp.FirstPageOffset, runs)
	case t == TypeTriage || t == TypeHeader:
		return nil, fmt.Errorf("dump: %s dump: %w", t, ErrNoPhysicalMemory)
	default:
		return nil, fmt.Errorf("dump: unknown dump type %d: %w", uint32(t), ErrCorrupt)
	}
}

// checkBitmapHeader validates the bitmap header fields needed to use the bitmap.
func (f *File) checkBitmapHeader() (*BitmapHeader, error) {
	b := f.bitmap
	hs := uint64(f.hdr.HeaderSize)
	if b == nil {
		return nil, fmt.Errorf("dump: file ends before the bitmap header at 0x%X: %w", hs, ErrTruncated)
	}
	if (b.Signature != "SDMP" && b.Signature != "FDMP") || b.ValidDump != "DUMP" {
		return nil, fmt.Errorf("dump: bitmap header signature is %q%q, want \"SDMP\" or \"FDMP\" then \"DUMP\": %w", b.Signature, b.ValidDump, ErrCorrupt)
	}
	bytes := b.Pages/8 + boolU(b.Pages%8 != 0)
	if bytes > uint64(f.size) {
		return nil, fmt.Errorf("dump: bitmap of %d pages needs %d bytes, more than the %d-byte file: %w", b.Pages, bytes, f.size, ErrCorrupt)
	}
	if b.FirstPage < hs+bitmapOffset+bytes {
		return nil, fmt.Errorf("dump: first page at 0x%X overlaps the bitmap, which ends at 0x%X: %w", b.FirstPage, hs+bitmapOffset+bytes, ErrCorrupt)
	}
	if hs+bitmapOffset+bytes > uint64(f.size) {
		return nil, fmt.Errorf("dump: bitmap ends at 0x%X, beyond the end of the %d-byte file: %w", hs+bitmapOffset+bytes, f.size, ErrTruncated)
	}
	if _, ok := addMul(b.FirstPage, b.PresentPages, PageSize); !ok {
		return nil, fmt.Errorf("dump: %d present pages from 0x%X overflow a 64-bit offset: %w", b.PresentPages, b.FirstPage, ErrCorrupt)
	}
	return b, nil
}

func boolU(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// bitmapRank streams the bitmap once and returns the rank index and the number of set bits.
func (f *File) bitmapRank(b *BitmapHeader) ([]uint64, uint64, error) {
	nbytes := (b.Pages + 7) / 8
	rank := make([]uint64, 0, nbytes/rankBlockBytes+1)
	var total uint64
	err := f.scanBitmap(b, func(block []byte, startBit uint64) error {
		for i := 0; i < len(block); i += rankBlockBytes {
			rank = append(rank, total)
			total += popcountBits(block[i:min(len(block), i+rankBlockBytes)], uint64(min(len(block)-i, rankBlockBytes))*8)
		}
		return nil
	})
	return rank, total, err
}

// scanBitmapBuf is the bitmap read size; a multiple of rankBlockBytes and of 8.
const scanBitmapBuf = 16 * rankBlockBytes

// scanBitmap calls fn with consecutive blocks of the bitmap (the last one short, with bits
// past Pages cleared). startBit is the page frame number of the block's first bit.
func (f *File) scanBitmap(b *BitmapHeader, fn func(block []byte, startBit uint64) error) error {
	nbytes := (b.Pages + 7) / 8
	off := f.hdr.HeaderSize + bitmapOffset
	buf := make([]byte, min(nbytes, scanBitmapBuf))
	for done := uint64(0); done < nbytes; {
		n := min(uint64(len(buf)), nbytes-done)
		blk := buf[:n]
		if err := readFull(f.r, blk, off+int64(done)); err != nil {
			return fmt.Errorf("dump: read bitmap at 0x%X: %w", off+int64(done), err)
		}
		if done+n == nbytes && b.Pages%8 != 0 {
			blk[n-1] &= byte(1<<(b.Pages%8)) - 1
		}
		if err := fn(blk, done*8); err != nil {
			return err
		}
		done += n
	}
	return nil
}

// rdmpRanges validates the RDMP header and reads its page ranges.
func (f *File) rdmpRanges() (*RDMPHeader, []Run, error) {
	h := f.rdmp
	hs := uint64(f.hdr.HeaderSize)
	if h == nil {
		return nil, nil, fmt.Errorf("dump: file ends before the RDMP header at 0x%X: %w", hs, ErrTruncated)
	}
	if h.Signature != "RDMP" || h.ValidDump != "DUMP" {
		return nil, nil, fmt.Errorf("dump: RDMP header signature is %q%q, want \"RDMP\" then \"DUMP\": %w", h.Signature, h.ValidDump, ErrCorrupt)
	}
	if h.MetadataSize < 0x20 || h.FirstPageOffset < hs+0x40 || h.MetadataSize-0x20 != h.FirstPageOffset-(hs+0x40) {
		return nil, nil, fmt.Errorf("dump: RDMP metadata size 0x%X does not match first page offset 0x%X: %w", h.MetadataSize, h.FirstPageOffset, ErrCorrupt)
	}
	if h.FirstPageOffset > uint64(f.size) {
		return nil, nil, fmt.Errorf("dump: RDMP first page offset 0x%X is beyond the end of the %d-byte file: %w", h.FirstPageOffset, f.size, ErrTruncated)
	}
	const maxRanges = 1 << 16
	n := (h.FirstPageOffset - (hs + 0x30)) / 16
	if n > maxRanges {
		return nil, nil, fmt.Errorf("dump: RDMP metadata holds room for %d ranges, more than %d: %w", n, maxRanges, ErrCorrupt)
	}
	buf := make([]byte, n*16)
	if err := readFull(f.r, buf, int64(hs)+0x30); err != nil {
		return nil, nil, fmt.Errorf("dump: read RDMP ranges: %w", err)
	}
	var runs []Run
	for i := uint64(0); i < n; i++ {
		base := binary.LittleEndian.Uint64(buf[16*i:])
		if base == 0 {
			break
		}
		runs = append(runs, Run{base, binary.LittleEndian.Uint64(buf[16*i+8:])})
	}
	return h, runs, nil
}
