package analyze

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/dump"
)

// ARM64 descriptors of these tests, written out bit by bit (Arm ARM D8.3, VMSAv8-64, 4 KiB
// granule, 48-bit output addresses):
//
//	bit 0      valid
//	bit 1      L0-L2: 1 table, 0 block; L3: 1 page (0 is reserved)
//	bit 10     AF (access flag), set by Windows on valid kernel mappings
//	bits 47:12 next-level table or output address (block: bits 47:30 at L1, 47:21 at L2)
//	bits 53,54 PXN, UXN (set here on data mappings so the address mask is exercised)
const (
	a64Table = 0x3                        // valid, table
	a64Block = 0x1 | 0x400                // valid, block, AF
	a64Page  = 0x3 | 0x400                // valid, page, AF
	a64XN    = uint64(0x0060000000000000) // PXN | UXN
)

// arm64Scene lays out an ARM64 kernel at kb = 0xFFFFF80000000000 with explicit tables:
//
//	L0 at 0x100000: entry 0x1F0 (VA bits 47:39 of kb) → L1 at 0x101000
//	                entry 0x1F1 → a block descriptor (invalid at L0)
//	L1 at 0x101000: entry 0 → L2 at 0x102000; entry 1 → 1 GiB block at PA 0x40000000 (hal.dll)
//	L2 at 0x102000: entry 0 → L3 at 0x103000; entry 2 → 2 MiB block at PA 0x400000 (ntoskrnl.exe)
//	L3 at 0x103000: entries 0x10-0x13 → PA 0x200000-0x203000 (PsLoadedModuleList and entries)
//	                entries 0x20-0x27 → PA 0x300000-0x307000 (mydriver.sys)
//	                entry 0x30 → PA 0x7000000, a page the dump does not hold (ghost.sys)
//	                entry 0x40 → bits 1:0 = 01, reserved at L3
func arm64Scene() *scene {
	const kb = 0xFFFFF80000000000
	mem := physMem{}
	s := &scene{mem: mem, v: &vmem{mem: mem}, w: 8,
		head: kb + 0x10000, ntos: kb + 0x400000, drv: kb + 0x20000, hal: kb + 0x40000000, ghost: kb + 0x30000}
	mem.put64(0x100000+0x1F0*8, 0x101000|a64Table)
	mem.put64(0x100000+0x1F1*8, 0x80000000|a64Block)
	mem.put64(0x101000+0*8, 0x102000|a64Table)
	mem.put64(0x101000+1*8, 0x40000000|a64Block|a64XN)
	mem.put64(0x102000+0*8, 0x103000|a64Table)
	mem.put64(0x102000+2*8, 0x400000|a64Block)
	for i := uint64(0); i < 4; i++ {
		mem.put64(0x103000+(0x10+i)*8, (0x200000+i*0x1000)|a64Page|a64XN)
	}
	for i := uint64(0); i < 8; i++ {
		mem.put64(0x103000+(0x20+i)*8, (0x300000+i*0x1000)|a64Page)
	}
	mem.put64(0x103000+0x30*8, 0x7000000|a64Page)
	mem.put64(0x103000+0x40*8, 0x500000|a64Block)
	s.v.add(s.head, 0x200000, 0x4000)
	s.v.add(s.drv, 0x300000, 0x8000)
	s.v.add(s.ntos, 0x400000, 0x200000)
	s.v.add(s.hal, 0x40000000, 0x40000000)
	s.fill(true)
	return s
}

// arm64Dump builds a full dump with MachineImageType 0xAA64 and the ARM64 CONTEXT's Pc
// (0x108) and Sp (0x100) at the header's context (0x348). The DirectoryTableBase carries an
// ASID in bits 63:48 and CnP in bit 0, as a TTBR value would.
func arm64Dump(s *scene, bugcheck uint32, params [4]uint64, pc uint64) []byte {
	b := buildFull(fullSpec{is64: true, machine: dump.MachineARM64, dtb: 0x0042_0000_0010_0001, psl: s.head, bugcheck: bugcheck, params: params}, s.mem)
	binary.LittleEndian.PutUint64(b[0x348+0x108:], pc)
	binary.LittleEndian.PutUint64(b[0x348+0x100:], 0)
	return b
}

func TestARM64ModuleWalk(t *testing.T) {
	s := arm64Scene()
	b := arm64Dump(s, 0x1000007E, [4]uint64{0xC0000005, s.drv + 0x1234}, s.ntos+0x500)
	res := analyzeBytes(t, b, Options{})
	if res.Source != SourceLoaded || res.Paging != "ARM64 (4 KiB granule, 4-level)" {
		t.Fatalf("source %q paging %q problems %q", res.Source, res.Paging, res.Problems)
	}
	wantModules(t, res, s)
	c := res.Culprit
	if c == nil || c.Module != "mydriver.sys" || uint64(*c.Offset) != 0x1234 || !strings.HasPrefix(c.Evidence, "bug-check parameter 2") {
		t.Fatalf("culprit %+v", c)
	}
	if res.InstructionPointer == nil || uint64(*res.InstructionPointer) != s.ntos+0x500 {
		t.Errorf("instruction pointer %v", res.InstructionPointer)
	}
}

func TestARM64Translate(t *testing.T) {
	s := arm64Scene()
	b := arm64Dump(s, 0xE2, [4]uint64{}, 0)
	f, err := dump.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	sp := NewSpace(f.PhysicalReader(), PagingARM64, 0x0042_0000_0010_0001, 0)
	for _, c := range []struct{ va, pa uint64 }{
		{s.hal + 0x3FFFFFFF, 0x7FFFFFFF},         // last byte of the 1 GiB block (XN bits masked off)
		{s.ntos + 0x1ABCDE, 0x400000 + 0x1ABCDE}, // inside the 2 MiB block
		{s.head + 0x3008, 0x203008},              // 4 KiB page, XN bits masked off
		{s.drv + 0x7FFF, 0x307FFF},
		{s.ghost + 0x10, 0x7000010}, // mapped; the page itself is absent
	} {
		if pa, err := sp.Translate(c.va); err != nil || pa != c.pa {
			t.Errorf("Translate(0x%X) = 0x%X, %v; want 0x%X", c.va, pa, err, c.pa)
		}
	}
	for _, c := range []struct {
		name string
		va   uint64
		want error
		msg  string
	}{
		{"user half, same root, L0 entry 0 empty", 0x0000000012345000, ErrNotMapped, "its L0 descriptor 0x0 (at physical 0x100000) is not present"},
		{"block at L0", 0xFFFFF88000000000, ErrNotMapped, "is invalid: a block descriptor at level 0"},
		{"reserved L3 encoding", s.head - 0x10000 + 0x40000, ErrNotMapped, "is invalid: bits 1:0 = 01 is reserved at level 3"},
		{"empty L2 entry", s.ntos + 0x200000, ErrNotMapped, "its L2 descriptor 0x0"},
		{"non-canonical", 0x0001000000000000, ErrNonCanonical, "non-canonical"},
	} {
		pa, err := sp.Translate(c.va)
		if !errors.Is(err, c.want) || pa != 0 || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Translate(0x%X) = 0x%X, %v; want %v containing %q", c.name, c.va, pa, err, c.want, c.msg)
		}
	}
	// A page the dump does not hold is reported missing, not read as zeros.
	buf := make([]byte, 16)
	if n, err := sp.ReadVirtual(buf, s.ghost); n != 0 || !errors.Is(err, dump.ErrAbsentPage) {
		t.Errorf("ReadVirtual(ghost) = %d, %v", n, err)
	}
	// A table page the dump does not hold: point L1 entry 0 at an absent L2 table.
	s.mem.put64(0x101000, 0x9000000|a64Table)
	b = arm64Dump(s, 0xE2, [4]uint64{}, 0)
	res := analyzeBytes(t, b, Options{})
	if len(res.Modules) != 0 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "the page holding its L2 descriptor (physical 0x9000000) is not in the dump") {
		t.Fatalf("modules %d problems %q", len(res.Modules), res.Problems)
	}
}
