package analyze

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/crashkey/crashkey/dump"
)

// Triage dump layouts (ntiodump.h, TRIAGE_DUMP32/64; dump-format.md §10.3): every *Offset
// is a file offset. The driver list is DriverCount DUMP_DRIVER_ENTRY records:
//
//	DUMP_DRIVER_ENTRY64 (0x90 bytes): DriverNameOffset u32 @0, alignment u32 @4,
//	    KLDR_DATA_TABLE_ENTRY64 @8, so DllBase @0x38, EntryPoint @0x40, SizeOfImage @0x48,
//	    CheckSum @0x80, TimeDateStamp @0x88
//	DUMP_DRIVER_ENTRY32 (0x54 bytes): DriverNameOffset u32 @0, KLDR_DATA_TABLE_ENTRY32 @4,
//	    so DllBase @0x1C, EntryPoint @0x20, SizeOfImage @0x24, CheckSum @0x44,
//	    TimeDateStamp @0x4C
//
// (In both public Windows 10/11 triage samples (StringPoolOffset − DriverListOffset) /
// DriverCount is exactly 0x90.) DriverNameOffset points at a DUMP_STRING: Length u32 in
// bytes (without the NUL), then UTF-16LE. The unloaded drivers are a count (u64 / u32)
// followed by DUMP_UNLOADED_DRIVERS64 (56 bytes: UNICODE_STRING64 Name @0, WCHAR
// DriverName[12] @16, StartAddress @40, EndAddress @48) or DUMP_UNLOADED_DRIVERS32 (40 bytes:
// Name @0, DriverName @8, StartAddress @32, EndAddress @36), at most MI_UNLOADED_DRIVERS (50).
// TopOfStack is at triage header +0x48 (u64 / u32); TRIAGE_DATA_BLOCK is {Address u64,
// Offset u32, Size u32}.
type triageLayout struct {
	entryFields
	stride                                                   int
	unloadedCount, unloadedSize, unloadedName, unloadedStart int
}

var (
	triage64 = triageLayout{entryFields{dllBase: 0x38, entry: 0x40, sizeOfImage: 0x48, checkSum: 0x80, timeStamp: 0x88, ptr: 8}, 0x90, 8, 56, 16, 40}
	triage32 = triageLayout{entryFields{dllBase: 0x1C, entry: 0x20, sizeOfImage: 0x24, checkSum: 0x44, timeStamp: 0x4C, ptr: 4}, 0x54, 4, 40, 8, 32}
)

const (
	maxUnloaded      = 50
	maxDataBlocks    = 1 << 14
	maxTriageRead    = 16 << 20 // bound on one read from a triage dump
	triageTopOfStack = 0x48
)

// UnloadedDriver is one entry of the triage dump's unloaded-driver list.
type UnloadedDriver struct {
	Name  string `json:"name"`
	Start Hex    `json:"start"`
	End   Hex    `json:"end"`
}

// Region is a structure a triage dump holds, with its file offset and size.
type Region struct {
	Name   string `json:"name"`
	Offset uint32 `json:"offset"`
	Size   uint32 `json:"size"`
	// Decoded says whether crashkey decodes it; the KPRCB, EPROCESS and ETHREAD layouts
	// change with every Windows build, so they are located but not decoded.
	Decoded bool `json:"decoded"`
}

// triageMem is the virtual memory a triage dump holds: the saved stack and the data blocks.
type triageMem struct {
	r       io.ReaderAt
	regions []memRegion // sorted by va
}

type memRegion struct {
	va   uint64
	off  int64
	size uint64
}

func (m *triageMem) add(va uint64, off int64, size uint64) {
	if size == 0 || va+size < va {
		return
	}
	m.regions = append(m.regions, memRegion{va, off, size})
}

func (m *triageMem) sort() {
	sort.Slice(m.regions, func(i, j int) bool { return m.regions[i].va < m.regions[j].va })
}

// ReadVirtual reads from the regions the triage dump holds.
func (m *triageMem) ReadVirtual(p []byte, va uint64) (int, error) {
	n := 0
	for n < len(p) {
		a := va + uint64(n)
		i := sort.Search(len(m.regions), func(i int) bool { return m.regions[i].va+m.regions[i].size > a })
		// Regions may overlap; find one holding a.
		for i < len(m.regions) && m.regions[i].va > a {
			i = len(m.regions)
		}
		if i == len(m.regions) {
			return n, fmt.Errorf("analyze: 0x%X is not among the memory the triage dump saved: %w", a, dump.ErrAbsentPage)
		}
		rg := m.regions[i]
		in := a - rg.va
		c := min(uint64(len(p)-n), rg.size-in)
		if err := readAt(m.r, p[n:n+int(c)], rg.off+int64(in)); err != nil {
			return n, err
		}
		n += int(c)
	}
	return n, nil
}

func readAt(r io.ReaderAt, p []byte, off int64) error {
	got, err := r.ReadAt(p, off)
	if got == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("analyze: read %d bytes at file offset 0x%X: %w", len(p), off, err)
}

// triageResult is what the triage parts of a dump give.
type triageResult struct {
	modules  []Module
	unloaded []UnloadedDriver
	regions  []Region
	broken   string // module named by BrokenDriverOffset
	mem      *triageMem
	stackVA  uint64
	stackLen uint64
	stackOff int64
	problems []string
}

// readTriage decodes the driver list, unloaded drivers, regions, stack and data blocks.
func readTriage(r io.ReaderAt, f *dump.File) (*triageResult, error) {
	t := f.Triage()
	if t == nil {
		return nil, fmt.Errorf("analyze: the file ends before the triage header")
	}
	l := triage32
	hs := uint64(dump.HeaderSize32)
	if f.Is64() {
		l, hs = triage64, dump.HeaderSize64
	}
	size := uint64(f.Size())
	inFile := func(off, n uint64) bool { return off >= hs && off+n >= off && off+n <= size }
	res := &triageResult{mem: &triageMem{r: r}}

	// Driver list.
	count := uint64(t.DriverCount)
	if count > 0 {
		switch {
		case count > MaxModules:
			res.problems = append(res.problems, fmt.Sprintf("DriverCount %d is more than %d; driver list not read", count, MaxModules))
		case !inFile(uint64(t.DriverListOffset), count*uint64(l.stride)):
			res.problems = append(res.problems, fmt.Sprintf("driver list (%d entries at 0x%X) reaches beyond the %d-byte file", count, t.DriverListOffset, size))
		default:
			badNames := 0
			defer func() {
				if badNames > 3 {
					res.problems = append(res.problems, fmt.Sprintf("%d more driver names cannot be read", badNames-3))
				}
			}()
			list := make([]byte, count*uint64(l.stride))
			if err := readAt(r, list, int64(t.DriverListOffset)); err != nil {
				return nil, err
			}
			for i := uint64(0); i < count; i++ {
				e := list[i*uint64(l.stride):]
				m := l.module(e)
				m.Identity = "triage driver list"
				if m.TimeDateStamp != 0 {
					m.TimestampSource = TimestampTriage
				}
				name, err := dumpString(r, uint64(binary.LittleEndian.Uint32(e)), size, hs)
				if err != nil {
					badNames++
					if badNames <= 3 {
						res.problems = append(res.problems, fmt.Sprintf("driver %d: %v", i+1, err))
					}
				}
				m.Path, m.Name = name, baseName(name)
				if m.Name == "" {
					m.Name = fmt.Sprintf("module_%X", uint64(m.Base))
				}
				res.modules = append(res.modules, m)
				if t.BrokenDriverOffset != 0 && uint64(t.BrokenDriverOffset) == uint64(t.DriverListOffset)+i*uint64(l.stride) {
					res.broken = m.Name
				}
			}
		}
	}

	// Unloaded drivers.
	if off := uint64(t.UnloadedDriversOffset); off != 0 && inFile(off, uint64(l.unloadedCount)) {
		var c [8]byte
		if err := readAt(r, c[:l.unloadedCount], int64(off)); err != nil {
			return nil, err
		}
		n := l.pointer(c[:], 0)
		if n > maxUnloaded {
			res.problems = append(res.problems, fmt.Sprintf("unloaded-driver count %d is more than %d; reading %d", n, maxUnloaded, maxUnloaded))
			n = maxUnloaded
		}
		start := off + uint64(l.unloadedCount)
		if !inFile(start, n*uint64(l.unloadedSize)) {
			res.problems = append(res.problems, fmt.Sprintf("unloaded-driver list at 0x%X reaches beyond the file", off))
		} else if n > 0 {
			b := make([]byte, n*uint64(l.unloadedSize))
			if err := readAt(r, b, int64(start)); err != nil {
				return nil, err
			}
			for i := uint64(0); i < n; i++ {
				e := b[i*uint64(l.unloadedSize):]
				nameLen := min(int(binary.LittleEndian.Uint16(e)), 24) &^ 1
				res.unloaded = append(res.unloaded, UnloadedDriver{
					Name:  utf16String(e[l.unloadedName : l.unloadedName+nameLen]),
					Start: Hex(l.pointer(e, l.unloadedStart)),
					End:   Hex(l.pointer(e, l.unloadedStart+l.ptr)),
				})
			}
		}
	}

	// Regions, with sizes up to the next known offset.
	offs := []struct {
		name    string
		off     uint32
		decoded bool
	}{
		{"CONTEXT", t.ContextOffset, true}, {"exception record", t.ExceptionOffset, true}, {"Mm information", t.MmOffset, false},
		{"unloaded drivers", t.UnloadedDriversOffset, true}, {"KPRCB", t.PrcbOffset, false}, {"EPROCESS", t.ProcessOffset, false},
		{"ETHREAD", t.ThreadOffset, false}, {"call stack", t.CallStackOffset, true}, {"debugger data", t.DebuggerDataOffset, false},
		{"driver list", t.DriverListOffset, true}, {"string pool", t.StringPoolOffset, true}, {"data blocks", t.DataBlocksOffset, true},
	}
	all := []uint64{uint64(t.SizeOfDump), size}
	for _, o := range offs {
		if o.off != 0 {
			all = append(all, uint64(o.off))
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for _, o := range offs {
		if o.off == 0 || uint64(o.off) >= size {
			continue
		}
		next := size
		for _, a := range all {
			if a > uint64(o.off) {
				next = a
				break
			}
		}
		sz := next - uint64(o.off)
		switch o.name { // structures whose size is known
		case "CONTEXT":
			sz = map[bool]uint64{true: 0x4D0, false: 0x2CC}[f.Is64()]
			if h := f.Header(); h.MachineImageType.Set && h.MachineImageType.Value == dump.MachineARM64 {
				sz = 0x390
			}
		case "exception record":
			sz = map[bool]uint64{true: 0x98, false: 0x50}[f.Is64()]
		case "call stack":
			sz = uint64(t.SizeOfCallStack)
		case "string pool":
			sz = uint64(t.StringPoolSize)
		case "driver list":
			sz = uint64(t.DriverCount) * uint64(l.stride)
		case "debugger data":
			sz = uint64(t.DebuggerDataSize)
		case "data blocks":
			sz = uint64(t.DataBlocksCount) * 16
		}
		res.regions = append(res.regions, Region{Name: o.name, Offset: o.off, Size: uint32(min(sz, 1<<32-1)), Decoded: o.decoded})
	}

	// The saved stack: SizeOfCallStack bytes from TopOfStack (the stack pointer).
	var top [8]byte
	if err := readAt(r, top[:l.ptr], int64(hs)+triageTopOfStack); err != nil {
		return nil, err
	}
	res.stackVA = l.pointer(top[:], 0)
	if so, sn := uint64(t.CallStackOffset), uint64(t.SizeOfCallStack); so != 0 && sn != 0 {
		if inFile(so, sn) {
			res.stackOff, res.stackLen = int64(so), sn
			res.mem.add(res.stackVA, int64(so), sn)
		} else {
			res.problems = append(res.problems, fmt.Sprintf("call stack (%d bytes at 0x%X) reaches beyond the file", sn, so))
		}
	}

	// The saved data page and the data blocks. TRIAGE_DUMP64: DataPageAddress u64 @0x60,
	// DataPageOffset @0x68, DataPageSize @0x6C, DataBlocksOffset @0x78, DataBlocksCount @0x7C;
	// TRIAGE_DUMP32: DataPageAddress u32 @0x4C, DataPageOffset @0x50, DataPageSize @0x54,
	// DataBlocksOffset @0x60, DataBlocksCount @0x64.
	th := make([]byte, 0x80)
	if err := readAt(r, th, int64(hs)); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	var pageVA, pageOff, pageSize, blocksOff, blocks uint64
	if f.Is64() {
		pageVA, pageOff, pageSize = le.Uint64(th[0x60:]), uint64(le.Uint32(th[0x68:])), uint64(le.Uint32(th[0x6C:]))
		blocksOff, blocks = uint64(le.Uint32(th[0x78:])), uint64(le.Uint32(th[0x7C:]))
	} else {
		pageVA, pageOff, pageSize = uint64(le.Uint32(th[0x4C:])), uint64(le.Uint32(th[0x50:])), uint64(le.Uint32(th[0x54:]))
		blocksOff, blocks = uint64(le.Uint32(th[0x60:])), uint64(le.Uint32(th[0x64:]))
	}
	if pageOff != 0 && pageSize != 0 && pageSize <= 0x2000 && inFile(pageOff, pageSize) {
		res.mem.add(pageVA, int64(pageOff), pageSize)
	}
	if blocks > 0 && blocksOff != 0 {
		if blocks > maxDataBlocks || !inFile(blocksOff, blocks*16) {
			res.problems = append(res.problems, fmt.Sprintf("data-block table (%d entries at 0x%X) does not fit in the file; not used", blocks, blocksOff))
		} else {
			b := make([]byte, blocks*16)
			if err := readAt(r, b, int64(blocksOff)); err != nil {
				return nil, err
			}
			for i := uint64(0); i < blocks; i++ {
				e := b[i*16:]
				va, off, sz := le.Uint64(e), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
				if inFile(off, sz) {
					res.mem.add(va, int64(off), sz)
				}
			}
		}
	}
	res.mem.sort()
	return res, nil
}

// dumpString reads a DUMP_STRING at off.
func dumpString(r io.ReaderAt, off, size, hs uint64) (string, error) {
	if off < hs || off+4 > size {
		return "", fmt.Errorf("name offset 0x%X is outside the file", off)
	}
	var lb [4]byte
	if err := readAt(r, lb[:], int64(off)); err != nil {
		return "", err
	}
	n := uint64(binary.LittleEndian.Uint32(lb[:]))
	if n > maxNameBytes || off+4+n > size {
		return "", fmt.Errorf("name at 0x%X claims %d bytes", off, n)
	}
	b := make([]byte, n&^1)
	if err := readAt(r, b, int64(off)+4); err != nil {
		return "", err
	}
	return utf16String(b), nil
}
