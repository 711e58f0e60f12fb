package analyze

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"sort"
	"unicode/utf16"
)

// The dumps of these tests are built byte by byte from the offsets written out here (the
// dump header tables of dump-format.md §3, §4, §6, §8; Intel SDM vol. 3 §4 for the page
// tables; the KLDR_DATA_TABLE_ENTRY, DUMP_DRIVER_ENTRY and PE layouts quoted in the package
// source), not through dump.Write, except where a test says so.

// physMem is sparse physical memory: page frame number → page.
type physMem map[uint64][]byte

func (m physMem) page(pa uint64) []byte {
	p, ok := m[pa>>12]
	if !ok {
		p = make([]byte, 0x1000)
		m[pa>>12] = p
	}
	return p
}

func (m physMem) write(pa uint64, b []byte) {
	for len(b) > 0 {
		p := m.page(pa)
		n := copy(p[pa&0xFFF:], b)
		b, pa = b[n:], pa+uint64(n)
	}
}

func (m physMem) put64(pa, v uint64)        { m.write(pa, binary.LittleEndian.AppendUint64(nil, v)) }
func (m physMem) put32(pa uint64, v uint32) { m.write(pa, binary.LittleEndian.AppendUint32(nil, v)) }

func (m physMem) pfns() []uint64 {
	out := make([]uint64, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// runs groups the stored page frame numbers into runs of consecutive pages.
func (m physMem) runs() [][2]uint64 {
	var rs [][2]uint64
	for _, p := range m.pfns() {
		if n := len(rs); n > 0 && rs[n-1][0]+rs[n-1][1] == p {
			rs[n-1][1]++
			continue
		}
		rs = append(rs, [2]uint64{p, 1})
	}
	return rs
}

// ptBuilder writes page tables into physMem. Levels are given from the root down.
type ptBuilder struct {
	mem    physMem
	root   uint64
	next   uint64 // next free physical page for a table
	shifts []uint
	bits   []uint
	esize  uint64
	pae    bool
}

func newX64(mem physMem, levels int) *ptBuilder {
	b := &ptBuilder{mem: mem, root: 0x100000, next: 0x101000, shifts: []uint{39, 30, 21, 12}, bits: []uint{9, 9, 9, 9}, esize: 8}
	if levels == 5 {
		b.shifts, b.bits = append([]uint{48}, b.shifts...), []uint{9, 9, 9, 9, 9}
	}
	mem.page(b.root)
	return b
}

func newPAE(mem physMem) *ptBuilder {
	// The PDPT is 32-byte aligned, not page-aligned: put it at 0x100020 to test that.
	b := &ptBuilder{mem: mem, root: 0x100020, next: 0x101000, shifts: []uint{30, 21, 12}, bits: []uint{2, 9, 9}, esize: 8, pae: true}
	mem.page(b.root)
	return b
}

func newX86(mem physMem) *ptBuilder {
	b := &ptBuilder{mem: mem, root: 0x100000, next: 0x101000, shifts: []uint{22, 12}, bits: []uint{10, 10}, esize: 4}
	mem.page(b.root)
	return b
}

func (b *ptBuilder) get(pa uint64) uint64 {
	p := b.mem.page(pa)
	if b.esize == 4 {
		return uint64(binary.LittleEndian.Uint32(p[pa&0xFFF:]))
	}
	return binary.LittleEndian.Uint64(p[pa&0xFFF:])
}

func (b *ptBuilder) set(pa, v uint64) {
	if b.esize == 4 {
		b.mem.put32(pa, uint32(v))
	} else {
		b.mem.put64(pa, v)
	}
}

// mapPage maps the page of size 1<<shift at va to pa; shift 12 is a 4 KiB page, a larger
// shift sets the large-page bit (0x80) in the entry of that level.
func (b *ptBuilder) mapPage(va, pa uint64, shift uint) {
	table := b.root
	for i, s := range b.shifts {
		ea := table + ((va>>s)&(1<<b.bits[i]-1))*b.esize
		if s == shift {
			e := pa | 0x3 // present, writable
			if s != 12 {
				e |= 0x80
			}
			b.set(ea, e)
			return
		}
		e := b.get(ea)
		if e&1 == 0 {
			t := b.next
			b.next += 0x1000
			b.mem.page(t)
			e = t | 0x3
			if b.pae && i == 0 {
				e = t | 0x1 // PAE PDPTEs have only the present bit among the low ones
			}
			b.set(ea, e)
		}
		table = e & 0x000F_FFFF_FFFF_F000
	}
}

// mapRange maps n bytes from va to pa with 4 KiB pages.
func (b *ptBuilder) mapRange(va, pa, n uint64) {
	for o := uint64(0); o < n; o += 0x1000 {
		b.mapPage(va+o, pa+o, 12)
	}
}

// vmem maps virtual ranges to physical ones for writing test data.
type vmem struct {
	mem    physMem
	ranges []struct{ va, pa, n uint64 }
}

func (v *vmem) add(va, pa, n uint64) {
	v.ranges = append(v.ranges, struct{ va, pa, n uint64 }{va, pa, n})
}

func (v *vmem) pa(va uint64) uint64 {
	for _, r := range v.ranges {
		if va >= r.va && va < r.va+r.n {
			return r.pa + va - r.va
		}
	}
	panic("test writes to an unmapped address")
}

func (v *vmem) write(va uint64, b []byte) {
	for i := range b {
		v.mem.write(v.pa(va+uint64(i)), b[i:i+1])
	}
}
func (v *vmem) put64(va, x uint64)        { v.write(va, binary.LittleEndian.AppendUint64(nil, x)) }
func (v *vmem) put32(va uint64, x uint32) { v.write(va, binary.LittleEndian.AppendUint32(nil, x)) }
func (v *vmem) put16(va uint64, x uint16) { v.write(va, binary.LittleEndian.AppendUint16(nil, x)) }
func (v *vmem) putPtr(va, x uint64, w int) {
	if w == 8 {
		v.put64(va, x)
	} else {
		v.put32(va, uint32(x))
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

// testModule is a module to put in a list.
type testModule struct {
	name, path string
	base       uint64
	size       uint32
	pe         bool // write a PE header with a CodeView record
	stamp      uint32
}

// guidBytes is GUID {3844DBB9-2017-4967-BE7A-A4A2C20430FA} as stored (Data1-3 little-endian).
var guidBytes = []byte{0xB9, 0xDB, 0x44, 0x38, 0x17, 0x20, 0x67, 0x49, 0xBE, 0x7A, 0xA4, 0xA2, 0xC2, 0x04, 0x30, 0xFA}

// writePE writes a minimal PE image header at base: MZ with e_lfanew 0x80, "PE\0\0", the
// COFF header (TimeDateStamp at +8 from the signature), a PE32+ or PE32 optional header with
// SizeOfImage at +56 and the debug directory (entry 6), a debug directory at RVA 0x200 with
// one CodeView entry (Type 2 at +12, SizeOfData at +16, AddressOfRawData at +20) pointing at
// an RSDS record at RVA 0x240 (GUID, age 1, PDB name).
func writePE(v *vmem, m testModule, wide bool, pdb string) {
	hdr := make([]byte, 0x300)
	copy(hdr, "MZ")
	binary.LittleEndian.PutUint32(hdr[0x3C:], 0x80)
	copy(hdr[0x80:], "PE\x00\x00")
	coff := hdr[0x84:]
	binary.LittleEndian.PutUint32(coff[4:], m.stamp)
	opt := hdr[0x98:]
	dirs := 96
	optSize := 224
	binary.LittleEndian.PutUint16(opt, 0x10B)
	if wide {
		binary.LittleEndian.PutUint16(opt, 0x20B)
		dirs, optSize = 112, 240
	}
	binary.LittleEndian.PutUint16(coff[16:], uint16(optSize))
	binary.LittleEndian.PutUint32(opt[56:], m.size)
	binary.LittleEndian.PutUint32(opt[dirs+48:], 0x200)
	binary.LittleEndian.PutUint32(opt[dirs+52:], 28)
	dd := hdr[0x200:]
	binary.LittleEndian.PutUint32(dd[12:], 2)
	binary.LittleEndian.PutUint32(dd[16:], uint32(24+len(pdb)+1))
	binary.LittleEndian.PutUint32(dd[20:], 0x240)
	cv := hdr[0x240:]
	copy(cv, "RSDS")
	copy(cv[4:], guidBytes)
	binary.LittleEndian.PutUint32(cv[20:], 1)
	copy(cv[24:], pdb)
	v.write(m.base, hdr)
}

// writeLdrList writes a PsLoadedModuleList at head with one KLDR_DATA_TABLE_ENTRY per module
// at entryVA + i*0x100, names after the entries. w is the pointer width (8 or 4).
func writeLdrList(v *vmem, head, entryVA uint64, mods []testModule, w int) []uint64 {
	// The Windows 10 KLDR_DATA_TABLE_ENTRY: CoverageSection (a pointer, written as a decoy
	// where the published layout has TimeDateStamp) at 0x80/0x48, SizeOfImageNotRounded at
	// 0x98/0x54 and TimeDateStamp at 0x9C/0x58.
	type off struct{ dllBase, entry, size, full, base, checksum, coverage, notRounded, stamp uint64 }
	o := off{0x30, 0x38, 0x40, 0x48, 0x58, 0x78, 0x80, 0x98, 0x9C}
	if w == 4 {
		o = off{0x18, 0x1C, 0x20, 0x24, 0x2C, 0x40, 0x48, 0x54, 0x58}
	}
	entries := make([]uint64, len(mods))
	for i := range mods {
		entries[i] = entryVA + uint64(i)*0x200
	}
	link := func(at, flink, blink uint64) {
		v.putPtr(at, flink, w)
		v.putPtr(at+uint64(w), blink, w)
	}
	if len(mods) == 0 {
		link(head, head, head)
		return nil
	}
	link(head, entries[0], entries[len(entries)-1])
	for i, m := range mods {
		e := entries[i]
		next, prev := head, head
		if i+1 < len(mods) {
			next = entries[i+1]
		}
		if i > 0 {
			prev = entries[i-1]
		}
		link(e, next, prev)
		v.putPtr(e+o.dllBase, m.base, w)
		v.putPtr(e+o.entry, m.base+0x1000, w)
		v.put32(e+o.size, m.size)
		v.put32(e+o.checksum, 0xC0FFEE)
		v.putPtr(e+o.coverage, 0xFFFFF80012345678, w)
		v.put32(e+o.notRounded, m.size-0x10)
		v.put32(e+o.stamp, m.stamp)
		us := func(at uint64, s string, buf uint64) {
			b := utf16le(s)
			v.put16(at, uint16(len(b)))
			v.put16(at+2, uint16(len(b)+2))
			v.putPtr(at+uint64(w), buf, w)
			v.write(buf, append(b, 0, 0))
		}
		us(e+o.full, m.path, e+0x100)
		us(e+o.base, m.name, e+0x180)
	}
	return entries
}

// fullSpec describes a hand-built full dump (DumpType 1).
type fullSpec struct {
	is64     bool
	pae      bool
	machine  uint32
	dtb      uint64
	psl      uint64
	bugcheck uint32
	params   [4]uint64
	ip       uint64
	sp       uint64
	excAddr  uint64
	build    uint32 // MinorVersion; 0: 19045 (64-bit), 2600 (32-bit)
}

// buildFull writes a full dump: the header at the offsets of dump-format.md §3/§4 with the
// rest "PAGE" filler, the physical memory descriptor built from mem's runs, and the pages
// back to back in run order (§8).
func buildFull(s fullSpec, mem physMem) []byte {
	le := binary.LittleEndian
	hs := 0x1000
	if s.is64 {
		hs = 0x2000
	}
	h := bytes.Repeat([]byte("PAGE"), hs/4)
	runs := mem.runs()
	var total uint64
	for _, r := range runs {
		total += r[1]
	}
	if s.is64 {
		copy(h, "PAGEDU64")
		le.PutUint32(h[0x08:], 0xF)
		le.PutUint32(h[0x0C:], cmp.Or(s.build, 19045))
		le.PutUint64(h[0x10:], s.dtb)
		le.PutUint64(h[0x20:], s.psl)
		le.PutUint32(h[0x30:], s.machine)
		le.PutUint32(h[0x34:], 1)
		le.PutUint32(h[0x38:], s.bugcheck)
		for i, p := range s.params {
			le.PutUint64(h[0x40+8*i:], p)
		}
		le.PutUint32(h[0x88:], uint32(len(runs)))
		le.PutUint32(h[0x8C:], 0)
		le.PutUint64(h[0x90:], total)
		for i, r := range runs {
			le.PutUint64(h[0x98+16*i:], r[0])
			le.PutUint64(h[0xA0+16*i:], r[1])
		}
		ctx := h[0x348:]
		clear(ctx[:0x4D0])
		le.PutUint64(ctx[0xF8:], s.ip)
		le.PutUint64(ctx[0x98:], s.sp)
		if s.excAddr != 0 {
			le.PutUint32(h[0xF00:], 0xC0000005)
			le.PutUint32(h[0xF04:], 0)
			le.PutUint64(h[0xF10:], s.excAddr)
		}
		le.PutUint32(h[0xF98:], 1)
		le.PutUint64(h[0xFA0:], uint64(hs)+total*0x1000)
	} else {
		copy(h, "PAGEDUMP")
		le.PutUint32(h[0x08:], 0xF)
		le.PutUint32(h[0x0C:], cmp.Or(s.build, 2600))
		le.PutUint32(h[0x10:], uint32(s.dtb))
		le.PutUint32(h[0x18:], uint32(s.psl))
		le.PutUint32(h[0x20:], s.machine)
		le.PutUint32(h[0x24:], 1)
		le.PutUint32(h[0x28:], s.bugcheck)
		for i, p := range s.params {
			le.PutUint32(h[0x2C+4*i:], uint32(p))
		}
		h[0x5C] = 0
		if s.pae {
			h[0x5C] = 1
		}
		le.PutUint32(h[0x64:], uint32(len(runs)))
		le.PutUint32(h[0x68:], uint32(total))
		for i, r := range runs {
			le.PutUint32(h[0x6C+8*i:], uint32(r[0]))
			le.PutUint32(h[0x70+8*i:], uint32(r[1]))
		}
		ctx := h[0x320:]
		clear(ctx[:0x2CC])
		le.PutUint32(ctx[0xB8:], uint32(s.ip))
		le.PutUint32(ctx[0xC4:], uint32(s.sp))
		if s.excAddr != 0 {
			le.PutUint32(h[0x7D0:], 0xC0000005)
			le.PutUint32(h[0x7D4:], 0)
			le.PutUint32(h[0x7DC:], uint32(s.excAddr))
		}
		le.PutUint32(h[0xF88:], 1)
		le.PutUint64(h[0xFA0:], uint64(hs)+total*0x1000)
	}
	out := h
	for _, p := range mem.pfns() {
		out = append(out, mem[p]...)
	}
	return out
}
