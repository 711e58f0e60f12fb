package analyze

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/crashkey/crashkey/dump"
)

// flatPhys is physical memory from a byte slice; addresses beyond it are absent pages.
type flatPhys []byte

func (f flatPhys) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(f)) {
		return 0, fmt.Errorf("physical 0x%X: %w", off, dump.ErrAbsentPage)
	}
	n := copy(p, f[off:])
	if n < len(p) {
		return n, fmt.Errorf("physical 0x%X: %w", off+int64(n), dump.ErrAbsentPage)
	}
	return n, nil
}

// FuzzTranslate translates and walks module lists over arbitrary page tables. Invariants: no
// panic; a translation reads at most one entry per level; the reads of a walk stay within
// the budget; a result XOR an error wrapping a known cause.
func FuzzTranslate(f *testing.F) {
	// A small kernel in 40 KiB: page tables from 0x1000, a two-module list at 0x8000.
	pm := physMem{}
	pt := newX64(pm, 4)
	pt.root, pt.next = 0x1000, 0x2000
	const head = 0xFFFFF80000400000
	pt.mapRange(head, 0x8000, 0x2000)
	v := &vmem{mem: pm}
	v.add(head, 0x8000, 0x2000)
	writeLdrList(v, head, head+0x100, []testModule{{name: "a.sys", path: `\a.sys`, base: head, size: 0x1000}, {name: "b.sys", path: `\b.sys`, base: head + 0x1000, size: 0x1000}}, 8)
	mem := make([]byte, 0xA000)
	for pfn, p := range pm {
		if pfn < 10 { // newX64 also touched its default root page
			copy(mem[pfn<<12:], p)
		}
	}
	f.Add(mem, uint64(0x1000), uint64(head), uint8(PagingX64))
	f.Add(mem[:0x6000], uint64(0x1000), uint64(0xFFFFF80000000000), uint8(PagingX64LA57))
	f.Add(bytes.Repeat([]byte{0x83, 0, 0, 0}, 0x2000), uint64(0), uint64(0x80400000), uint8(PagingX86))
	f.Add(bytes.Repeat([]byte{0x03, 0x10, 0, 0, 0, 0, 0, 0}, 0x1000), uint64(0x20), uint64(0xC0000000), uint8(PagingPAE))
	// ARM64: L0 at 0, every descriptor a table/page (0x403) pointing at page 0x1000, which
	// holds 2 MiB block descriptors (0x401) and reserved L3 encodings alike.
	a64 := make([]byte, 0x2000)
	for i := 0; i < 0x1000; i += 8 {
		binary.LittleEndian.PutUint64(a64[i:], 0x1403)
		binary.LittleEndian.PutUint64(a64[0x1000+i:], 0x0060000000200401)
	}
	f.Add(a64, uint64(0x0001000000000001), uint64(0xFFFFF80000001000), uint8(PagingARM64))
	f.Add(buildFull(fullSpec{is64: true, machine: dump.MachineARM64, dtb: 0x100000, psl: 0xFFFFF80000010000}, arm64Scene().mem)[0x2000:],
		uint64(0x2000), uint64(0xFFFFF80000010000), uint8(PagingARM64))
	f.Fuzz(func(t *testing.T, phys []byte, dtb, va uint64, paging uint8) {
		p := Paging(paging % 6)
		const budget = 2000
		sp := NewSpace(flatPhys(phys), p, dtb, budget)
		before := sp.Reads
		pa, err := sp.Translate(va)
		if sp.Reads-before > 5 {
			t.Fatalf("one translation made %d reads", sp.Reads-before)
		}
		if err != nil && pa != 0 {
			t.Fatalf("Translate = 0x%X and %v", pa, err)
		}
		if err != nil && !errors.Is(err, ErrNotMapped) && !errors.Is(err, dump.ErrAbsentPage) && !errors.Is(err, ErrNonCanonical) && !errors.Is(err, ErrNoPaging) {
			t.Fatalf("error %v wraps no known cause", err)
		}
		l := ldr64
		if p == PagingX86 || p == PagingPAE {
			l = ldr32
		}
		mods, _, _ := walkLoadedModules(sp, va, l, true)
		if len(mods) > MaxModules {
			t.Fatalf("%d modules", len(mods))
		}
		for _, m := range mods {
			readIdentity(sp, uint64(m.Base))
		}
		if sp.Reads > budget {
			t.Fatalf("%d reads over a budget of %d", sp.Reads, budget)
		}
	})
}

// FuzzAnalyze analyses arbitrary dumps (seeded with full dumps over page tables and triage
// dumps). Invariants: no panic; an error only when the data is not a dump; the physical reads
// stay within the default budget; text output works.
func FuzzAnalyze(f *testing.F) {
	s := x64Scene(4, 0xFFFFF80000000000)
	f.Add(buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xD1, params: [4]uint64{0, 0, 0, s.drv}}, s.mem))
	a := arm64Scene()
	f.Add(arm64Dump(a, 0x7E, [4]uint64{0xC0000005, a.drv}, a.drv))
	x := x86Scene(true)
	f.Add(buildFull(fullSpec{machine: dump.MachineI386, pae: true, dtb: x.pt.root, psl: x.head, bugcheck: 0x7E}, x.mem))
	f.Add(buildTriage(triageSpec{is64: true, machine: dump.MachineAMD64, bugcheck: 0x7E, stack: []uint64{triageDrivers[2].base + 8}, peBlock: true}))
	f.Add(buildTriage(triageSpec{machine: dump.MachineI386, bugcheck: 0xD1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := AnalyzeFile(context.Background(), bytes.NewReader(data), int64(len(data)), Options{})
		if err != nil {
			if !errors.Is(err, dump.ErrNotDump) && !errors.Is(err, dump.ErrTruncated) {
				t.Fatalf("error %v from in-memory data", err)
			}
			return
		}
		if res.PageReads > DefaultReadBudget || len(res.Modules) > MaxModules || len(res.Stack) > maxStackHits {
			t.Fatalf("reads %d, modules %d, stack %d", res.PageReads, len(res.Modules), len(res.Stack))
		}
		var b bytes.Buffer
		if err := res.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if err := res.WriteModules(&b); err != nil {
			t.Fatal(err)
		}
	})
}

// TestHostileBudget: a page table whose every entry points back at itself, and a module list
// of MaxModules+ distinct entries, stop within the bounds.
func TestHostileBudget(t *testing.T) {
	// Every PML4E/PDPTE/PDE/PTE points at page 0 with present+large bits clear: every address
	// maps to page 0, so the list at 0x1000 is a self-loop; with distinct links it is bounded.
	phys := make([]byte, 0x1000)
	for i := 0; i < 0x1000; i += 8 {
		binary.LittleEndian.PutUint64(phys[i:], 0x3)
	}
	sp := NewSpace(flatPhys(phys), PagingX64, 0, 100)
	mods, problems, err := walkLoadedModules(sp, 0xFFFFF80000000000, ldr64, true)
	if sp.Reads > 100 || len(mods) > MaxModules {
		t.Fatalf("reads %d modules %d", sp.Reads, len(mods))
	}
	if err == nil && len(problems) == 0 {
		t.Fatalf("a list of page-table bytes ended cleanly: %d modules", len(mods))
	}
}
