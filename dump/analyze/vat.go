package analyze

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/crashkey/crashkey/dump"
)

// Paging is a virtual-memory translation scheme.
type Paging int

// Paging schemes.
const (
	PagingNone    Paging = iota // no translation (unknown machine)
	PagingX86                   // 32-bit x86 without PAE: 2 levels, 4-byte entries, 4 MiB large pages
	PagingPAE                   // 32-bit x86 with PAE: 3 levels, 8-byte entries, 2 MiB large pages
	PagingX64                   // x64 4-level paging: 1 GiB and 2 MiB large pages
	PagingX64LA57               // x64 5-level paging (LA57)
	PagingARM64                 // ARM64 VMSAv8-64: 4 KiB granule, 48-bit VA, 4 levels, 1 GiB and 2 MiB blocks
)

var pagingNames = [...]string{"none", "x86 (2-level)", "x86 PAE (3-level)", "x64 (4-level)", "x64 LA57 (5-level)", "ARM64 (4 KiB granule, 4-level)"}

// String names the scheme.
func (p Paging) String() string {
	if p >= 0 && int(p) < len(pagingNames) {
		return pagingNames[p]
	}
	return fmt.Sprintf("paging(%d)", int(p))
}

// Errors of address translation. Errors returned by Space wrap one of them, or
// dump.ErrAbsentPage when a page-table or data page is not in the dump.
var (
	// ErrNotMapped means a page-table entry on the way to the address is not present: the
	// address is not mapped (or its page was paged out), so the dump cannot hold it.
	ErrNotMapped = errors.New("virtual address not mapped")
	// ErrNonCanonical means the address is not canonical for the paging scheme.
	ErrNonCanonical = errors.New("non-canonical virtual address")
	// ErrBudget means the bound on physical reads was reached (hostile or looping data).
	ErrBudget = errors.New("physical read budget exhausted")
	// ErrNoPaging means the dump's machine has no supported translation.
	ErrNoPaging = errors.New("virtual address translation not supported for this machine")
)

// TranslateError is a failed translation: the page-table entry that is not present, or the
// page-table page the dump does not hold. It wraps ErrNotMapped or dump.ErrAbsentPage.
type TranslateError struct {
	VA    uint64 // the virtual address being translated
	Level string // "PML4E", "PDPTE", "PDE", "PTE", "PML5E"; ARM64: "L0", "L1", "L2", "L3" descriptor
	Entry uint64 // the entry's value (not-present case)
	PA    uint64 // physical address of the entry
	Err   error  // ErrNotMapped or an error wrapping dump.ErrAbsentPage
	// Invalid says why a present-looking entry still maps nothing (ARM64: a block
	// descriptor at level 0, a level-3 entry without the page bit); "" for a clear valid bit.
	Invalid string
}

func (e *TranslateError) Error() string { return fmt.Sprintf("analyze: 0x%X: %s", e.VA, e.short()) }

// short says what failed without the address.
func (e *TranslateError) short() string {
	if errors.Is(e.Err, ErrNotMapped) && e.Invalid != "" {
		return fmt.Sprintf("not mapped: its %s 0x%X (at physical 0x%X) is invalid: %s", e.Level, e.Entry, e.PA, e.Invalid)
	}
	if errors.Is(e.Err, ErrNotMapped) {
		return fmt.Sprintf("not mapped: its %s 0x%X (at physical 0x%X) is not present", e.Level, e.Entry, e.PA)
	}
	return fmt.Sprintf("the page holding its %s (physical 0x%X) is not in the dump", e.Level, e.PA)
}

// Unwrap returns ErrNotMapped or the read error.
func (e *TranslateError) Unwrap() error { return e.Err }

// maxPhys masks a page-table entry's physical address (52 bits, page-aligned).
const maxPhys = 0x000F_FFFF_FFFF_F000

// maxPhysARM64 masks an ARM64 descriptor's output address and TTBR's BADDR: bits 47:12 with
// the 4 KiB granule and 48-bit output addresses (Arm ARM D8.3); TTBR bits 63:48 hold the ASID.
const maxPhysARM64 = 0x0000_FFFF_FFFF_F000

// tlbSize bounds the translation cache.
const tlbSize = 512

// Space translates kernel virtual addresses through the page tables a dump holds and reads
// virtual memory. It reads physical memory only through the dump (dump.File.PhysicalReader),
// never guesses a page the dump does not hold, and stops after a bounded number of physical
// reads. A Space is not safe for concurrent use.
type Space struct {
	phys   io.ReaderAt
	paging Paging
	dtb    uint64
	budget int
	// Reads counts the physical reads made (page-table entries and data).
	Reads int
	tlb   map[uint64]uint64 // virtual page → physical page
	buf   [8]byte
}

// DefaultReadBudget bounds the physical reads of one Space.
const DefaultReadBudget = 1 << 16

// NewSpace returns a Space over phys (physical address = offset) with the given scheme and
// directory table base (CR3; PCID and flag bits are masked off; on ARM64 the translation
// table base, ASID and CnP bits masked off). budget bounds the number of physical reads (0
// means DefaultReadBudget).
func NewSpace(phys io.ReaderAt, paging Paging, dtb uint64, budget int) *Space {
	if budget <= 0 {
		budget = DefaultReadBudget
	}
	switch paging {
	case PagingX86:
		dtb &= 0xFFFF_F000
	case PagingPAE:
		dtb &= 0xFFFF_FFE0
	case PagingARM64:
		dtb &= maxPhysARM64
	default:
		dtb &= maxPhys
	}
	return &Space{phys: phys, paging: paging, dtb: dtb, budget: budget, tlb: map[uint64]uint64{}}
}

// Paging returns the translation scheme.
func (s *Space) Paging() Paging { return s.paging }

// readPhys reads len(p) bytes of physical memory at pa, counting the read against the budget.
func (s *Space) readPhys(p []byte, pa uint64) error {
	if s.budget <= 0 {
		return fmt.Errorf("analyze: read of physical address 0x%X: %w", pa, ErrBudget)
	}
	s.budget--
	s.Reads++
	if pa > 1<<62 {
		return fmt.Errorf("analyze: physical address 0x%X: %w", pa, dump.ErrAbsentPage)
	}
	n, err := s.phys.ReadAt(p, int64(pa))
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("analyze: physical address 0x%X: %w", pa, err)
}

func (s *Space) entry(pa uint64, wide bool) (uint64, error) {
	if wide {
		if err := s.readPhys(s.buf[:8], pa); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(s.buf[:]), nil
	}
	if err := s.readPhys(s.buf[:4], pa); err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(s.buf[:])), nil
}

// canonical reports whether va is canonical for the scheme.
func (s *Space) canonical(va uint64) bool {
	switch s.paging {
	case PagingX64:
		top := va >> 47
		return top == 0 || top == 0x1FFFF
	case PagingX64LA57:
		top := va >> 56
		return top == 0 || top == 0xFF
	case PagingARM64:
		// 48-bit VA: bits 63:48 all ones select TTBR1 (kernel), all zeros TTBR0 (user).
		top := va >> 48
		return top == 0 || top == 0xFFFF
	default:
		return va <= 0xFFFF_FFFF
	}
}

// Translate returns the physical address of virtual address va.
func (s *Space) Translate(va uint64) (uint64, error) {
	if s.paging == PagingNone {
		return 0, fmt.Errorf("analyze: 0x%X: %w", va, ErrNoPaging)
	}
	if !s.canonical(va) {
		return 0, fmt.Errorf("analyze: 0x%X under %s paging: %w", va, s.paging, ErrNonCanonical)
	}
	if pp, ok := s.tlb[va>>12]; ok {
		return pp | va&0xFFF, nil
	}
	pa, err := s.walk(va)
	if err != nil {
		return 0, err
	}
	if len(s.tlb) >= tlbSize {
		clear(s.tlb)
	}
	s.tlb[va>>12] = pa &^ 0xFFF
	return pa, nil
}

// level describes one page-table level: the shift of the address bits it indexes, the
// number of index bits, and whether a large page can end the walk there.
type level struct {
	name  string
	shift uint
	bits  uint
	large bool
}

var (
	levelsX64  = []level{{"PML4E", 39, 9, false}, {"PDPTE", 30, 9, true}, {"PDE", 21, 9, true}, {"PTE", 12, 9, false}}
	levelsLA57 = append([]level{{"PML5E", 48, 9, false}}, levelsX64...)
	levelsPAE  = []level{{"PDPTE", 30, 2, false}, {"PDE", 21, 9, true}, {"PTE", 12, 9, false}}
	levelsX86  = []level{{"PDE", 22, 10, true}, {"PTE", 12, 10, false}}
)

func (s *Space) walk(va uint64) (uint64, error) {
	if s.paging == PagingARM64 {
		return s.walkARM64(va)
	}
	var levels []level
	wide := true
	mask := uint64(maxPhys)
	switch s.paging {
	case PagingX64:
		levels = levelsX64
	case PagingX64LA57:
		levels = levelsLA57
	case PagingPAE:
		levels = levelsPAE
	case PagingX86:
		levels, wide, mask = levelsX86, false, 0xFFFF_F000
	}
	size := uint64(8)
	if !wide {
		size = 4
	}
	table := s.dtb
	for i, l := range levels {
		idx := (va >> l.shift) & (1<<l.bits - 1)
		ea := table + idx*size
		e, err := s.entry(ea, wide)
		if err != nil {
			if errors.Is(err, dump.ErrAbsentPage) {
				return 0, &TranslateError{VA: va, Level: l.name, PA: ea, Err: err}
			}
			return 0, fmt.Errorf("analyze: translating 0x%X: read %s: %w", va, l.name, err)
		}
		if e&1 == 0 {
			return 0, &TranslateError{VA: va, Level: l.name, Entry: e, PA: ea, Err: ErrNotMapped}
		}
		if s.paging == PagingPAE && i == 0 {
			// PAE PDPTEs have no large-page bit; the rest is the page directory's address.
			table = e & maxPhys
			continue
		}
		if l.large && e&0x80 != 0 {
			off := va & (1<<l.shift - 1)
			base := e & mask &^ (1<<l.shift - 1)
			if !wide {
				// PSE-36: bits 13-20 of a 4 MiB PDE hold physical address bits 32-39.
				base = e&0xFFC0_0000 | (e>>13&0xFF)<<32
			}
			return base | off, nil
		}
		table = e & mask
	}
	return table | va&0xFFF, nil
}

// ARM64 translation (Arm ARM D8, VMSAv8-64 with the 4 KiB granule and 48-bit addresses;
// Windows sets T0SZ = T1SZ = 16): four levels L0..L3 index VA bits 47:39, 38:30, 29:21 and
// 20:12, whichever TTBR the address selects. Windows gives both halves one root table (the
// kernel half is entries 256-511 of it, as on x64), and a dump's DirectoryTableBase is that
// root: MemProcFS (LeechCore device_file.c, mm_arm64.c) reads it from offset 0x10 of an 0xAA64
// PAGEDU64 header and walks kernel and user addresses from it alike. A descriptor's bit 0 is
// valid; bit 1 is table (1) or block (0) at L0-L2 and must be 1 (page) at L3; a block
// at L1 maps 1 GiB, at L2 2 MiB; a block at L0 is invalid with this granule. Output
// addresses are bits 47:12 (maxPhysARM64).
var levelsARM64 = []level{{"L0", 39, 9, false}, {"L1", 30, 9, true}, {"L2", 21, 9, true}, {"L3", 12, 9, false}}

func (s *Space) walkARM64(va uint64) (uint64, error) {
	table := s.dtb
	for i, l := range levelsARM64 {
		ea := table + ((va>>l.shift)&0x1FF)*8
		e, err := s.entry(ea, true)
		if err != nil {
			if errors.Is(err, dump.ErrAbsentPage) {
				return 0, &TranslateError{VA: va, Level: l.name + " descriptor", PA: ea, Err: err}
			}
			return 0, fmt.Errorf("analyze: translating 0x%X: read %s descriptor: %w", va, l.name, err)
		}
		bad := func(why string) error {
			return &TranslateError{VA: va, Level: l.name + " descriptor", Entry: e, PA: ea, Err: ErrNotMapped, Invalid: why}
		}
		switch {
		case e&1 == 0:
			return 0, bad("")
		case i == len(levelsARM64)-1:
			if e&2 == 0 {
				return 0, bad("bits 1:0 = 01 is reserved at level 3")
			}
			return e&maxPhysARM64 | va&0xFFF, nil
		case e&2 == 0:
			if !l.large {
				return 0, bad("a block descriptor at level 0 (4 KiB granule)")
			}
			size := uint64(1) << l.shift
			return e&maxPhysARM64&^(size-1) | va&(size-1), nil
		}
		table = e & maxPhysARM64
	}
	return 0, fmt.Errorf("analyze: translating 0x%X: walk ended without a page", va) // not reached: L3 always returns
}

// ReadVirtual reads len(p) bytes of virtual memory at va. It returns the bytes read before
// the first page it cannot read, and an error wrapping ErrNotMapped, ErrNonCanonical,
// dump.ErrAbsentPage or ErrBudget.
func (s *Space) ReadVirtual(p []byte, va uint64) (int, error) {
	n := 0
	for n < len(p) {
		a := va + uint64(n)
		if a < va {
			return n, fmt.Errorf("analyze: read at 0x%X wraps around: %w", va, ErrNonCanonical)
		}
		pa, err := s.Translate(a)
		if err != nil {
			return n, err
		}
		chunk := p[n:min(len(p), n+int(0x1000-a&0xFFF))]
		if err := s.readPhys(chunk, pa); err != nil {
			if errors.Is(err, dump.ErrAbsentPage) {
				return n, fmt.Errorf("analyze: 0x%X maps to physical 0x%X, a page the dump does not hold: %w", a, pa&^0xFFF, dump.ErrAbsentPage)
			}
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}
