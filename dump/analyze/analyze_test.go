package analyze

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/dump"
)

// scene is a hand-built kernel: page tables, a module list and PE headers.
type scene struct {
	mem     physMem
	pt      *ptBuilder
	v       *vmem
	head    uint64
	ntos    uint64
	drv     uint64
	hal     uint64
	ghost   uint64 // a module whose image is on a page the dump does not hold
	entries []uint64
	w       int
}

// x64Scene builds a 4- or 5-level x64 kernel with kernel addresses from kb: ntoskrnl.exe on
// a 2 MiB page, mydriver.sys on 4 KiB pages, hal.dll on a 1 GiB page.
func x64Scene(levels int, kb uint64) *scene {
	mem := physMem{}
	s := &scene{mem: mem, pt: newX64(mem, levels), v: &vmem{mem: mem}, w: 8,
		head: kb + 0x550000000, ntos: kb + 0x312000000, drv: kb + 0x320000000, hal: kb + 0x340000000, ghost: kb + 0x360000000}
	s.pt.mapRange(s.head, 0x200000, 0x4000)
	s.v.add(s.head, 0x200000, 0x4000)
	s.pt.mapPage(s.ntos, 0x400000, 21)
	s.v.add(s.ntos, 0x400000, 0x200000)
	s.pt.mapRange(s.drv, 0x300000, 0x8000)
	s.v.add(s.drv, 0x300000, 0x8000)
	s.pt.mapPage(s.hal, 0x40000000, 30)
	s.v.add(s.hal, 0x40000000, 0x40000000)
	s.pt.mapRange(s.ghost, 0x7000000, 0x1000) // mapped, but PFN 0x7000 is never stored
	s.fill(true)
	return s
}

// x86Scene builds a 32-bit kernel, PAE or not: ntoskrnl.exe on a large page (2 or 4 MiB).
func x86Scene(pae bool) *scene {
	mem := physMem{}
	s := &scene{mem: mem, v: &vmem{mem: mem}, w: 4, head: 0x80C00000, ntos: 0x80400000, drv: 0x8A000000, ghost: 0x8B000000}
	large := uint(22)
	if pae {
		s.pt, large = newPAE(mem), 21
	} else {
		s.pt = newX86(mem)
	}
	s.pt.mapRange(s.head, 0x200000, 0x4000)
	s.v.add(s.head, 0x200000, 0x4000)
	s.pt.mapPage(s.ntos, 0x400000, large)
	s.v.add(s.ntos, 0x400000, 1<<large)
	s.pt.mapRange(s.drv, 0x300000, 0x8000)
	s.v.add(s.drv, 0x300000, 0x8000)
	s.pt.mapRange(s.ghost, 0x7000000, 0x1000)
	s.fill(false)
	return s
}

func (s *scene) modules(wide bool) []testModule {
	mods := []testModule{
		{name: "ntoskrnl.exe", path: `\SystemRoot\system32\ntoskrnl.exe`, base: s.ntos, size: 0x1000000, pe: true, stamp: 0x5F8A1C2B},
		{name: "mydriver.sys", path: `\SystemRoot\System32\drivers\mydriver.sys`, base: s.drv, size: 0x8000, pe: true, stamp: 0x65000001},
	}
	if s.hal != 0 {
		mods = append(mods, testModule{name: "hal.dll", path: `\SystemRoot\system32\hal.dll`, base: s.hal, size: 0x100000, pe: true, stamp: 0x12345678})
	}
	return append(mods, testModule{name: "ghost.sys", path: `\??\C:\ghost.sys`, base: s.ghost, size: 0x1000, stamp: 0x77777777})
}

func (s *scene) fill(wide bool) {
	mods := s.modules(wide)
	s.entries = writeLdrList(s.v, s.head, s.head+0x1000, mods, s.w)
	for _, m := range mods {
		if m.pe {
			writePE(s.v, m, wide, m.name[:strings.LastIndexByte(m.name, '.')]+".pdb")
		}
	}
}

func analyzeBytes(t testing.TB, b []byte, opts Options) *Result {
	t.Helper()
	res, err := AnalyzeFile(context.Background(), bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		t.Fatalf("AnalyzeFile: %v", err)
	}
	return res
}

func wantModules(t *testing.T, res *Result, s *scene) {
	t.Helper()
	names := []string{}
	for _, m := range res.Modules {
		names = append(names, m.Name)
	}
	want := []string{"ntoskrnl.exe", "mydriver.sys", "ghost.sys"}
	if s.hal != 0 {
		want = []string{"ntoskrnl.exe", "mydriver.sys", "hal.dll", "ghost.sys"}
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("modules %v, want %v (problems %v)", names, want, res.Problems)
	}
	d := res.Module("MyDriver.sys")
	if uint64(d.Base) != s.drv || d.Size != 0x8000 || d.TimeDateStamp != 0x65000001 || d.CheckSum != 0xC0FFEE || d.Microsoft ||
		d.Path != `\SystemRoot\System32\drivers\mydriver.sys` {
		t.Errorf("mydriver.sys = %+v", *d)
	}
	if d.PDB != "mydriver.pdb" || d.GUID != "3844DBB9-2017-4967-BE7A-A4A2C20430FA" || d.Age != 1 ||
		d.SymbolPath != "mydriver.pdb/3844DBB920174967BE7AA4A2C20430FA1/mydriver.pdb" {
		t.Errorf("mydriver.sys identity = %q %q %d %q (%s)", d.PDB, d.GUID, d.Age, d.SymbolPath, d.Identity)
	}
	if n := res.Module("ntoskrnl.exe"); n.PDB != "ntoskrnl.pdb" || !n.Microsoft || n.TimeDateStamp != 0x5F8A1C2B {
		t.Errorf("ntoskrnl.exe (large page) = %+v", *n)
	}
	if s.hal != 0 {
		if h := res.Module("hal.dll"); h.PDB != "hal.pdb" || h.TimeDateStamp != 0x12345678 {
			t.Errorf("hal.dll (1 GiB page) = %+v", *h)
		}
	}
	for _, m := range res.Modules {
		if m.Name != "ghost.sys" && m.TimestampSource != TimestampPE {
			t.Errorf("%s: timestamp from %q, want the PE header", m.Name, m.TimestampSource)
		}
	}
	g := res.Module("ghost.sys")
	// Without its PE header the timestamp comes from the Windows 10 loader entry (0x9C/0x58),
	// not from the pointer at the published layout's 0x80/0x48.
	if g.PDB != "" || g.TimeDateStamp != 0x77777777 || g.TimestampSource != TimestampLoader ||
		!strings.Contains(g.Identity, "not in the dump") || !strings.Contains(g.Identity, "timestamp from the loader entry") {
		t.Errorf("ghost.sys = %#x from %q, identity %q; want the loader entry's stamp and a missing page", g.TimeDateStamp, g.TimestampSource, g.Identity)
	}
}

func TestX64FourAndFiveLevel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		levels int
		kb     uint64
		paging string
	}{
		{"4-level", 4, 0xFFFFF80000000000, "x64 (4-level)"},
		{"5-level", 5, 0xFF12340000000000, "x64 LA57 (5-level)"},
		// A 5-level kernel at addresses that are canonical under 4-level paging too: found
		// by trying 5-level when the 4-level walk fails.
		{"5-level, 4-level-canonical addresses", 5, 0xFFFFF80000000000, "x64 LA57 (5-level)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := x64Scene(tc.levels, tc.kb)
			b := buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root | 0x2, psl: s.head,
				bugcheck: 0xD1, params: [4]uint64{0x10, 2, 0, s.drv + 0x1234}, ip: s.drv + 0x1234}, s.mem)
			res := analyzeBytes(t, b, Options{})
			if res.Source != SourceLoaded || res.Paging != tc.paging {
				t.Fatalf("source %q paging %q", res.Source, res.Paging)
			}
			wantModules(t, res, s)
			c := res.Culprit
			if c == nil || c.Module != "mydriver.sys" || uint64(*c.Offset) != 0x1234 || c.Microsoft ||
				!strings.Contains(c.Evidence, "bug-check parameter 4 (the address that referenced memory)") {
				t.Fatalf("culprit %+v", c)
			}
			if len(res.Attributions) != 2 || res.Attributions[1].Source != "instruction pointer" || res.Attributions[1].Location() != "mydriver.sys+0x1234" {
				t.Errorf("attributions %+v", res.Attributions)
			}
			if res.PageReads == 0 || res.PageReads > 200 {
				t.Errorf("%d physical reads for 4 modules", res.PageReads)
			}
		})
	}
}

func TestX86PAEAndNonPAE(t *testing.T) {
	for _, pae := range []bool{false, true} {
		s := x86Scene(pae)
		b := buildFull(fullSpec{machine: dump.MachineI386, pae: pae, build: 19041, dtb: s.pt.root, psl: s.head,
			bugcheck: 0x1000008E, params: [4]uint64{0xC0000005, s.ntos + 0x5000, 0, 0}, ip: s.ntos + 0x5000, excAddr: s.drv + 0x20}, s.mem)
		res := analyzeBytes(t, b, Options{})
		want := map[bool]string{false: "x86 (2-level)", true: "x86 PAE (3-level)"}[pae]
		if res.Paging != want {
			t.Fatalf("paging %q, want %q", res.Paging, want)
		}
		wantModules(t, res, s)
		// Parameter 2 and the IP are in ntoskrnl, the exception address is in mydriver.sys:
		// the non-Microsoft driver is preferred.
		c := res.Culprit
		if c == nil || c.Module != "mydriver.sys" || uint64(*c.Offset) != 0x20 || !strings.HasPrefix(c.Evidence, "exception address") {
			t.Fatalf("pae=%v: culprit %+v", pae, c)
		}
		if a := res.Attributions[0]; a.Source != "bug-check parameter 2" || a.Location() != "ntoskrnl.exe+0x5000" {
			t.Errorf("first attribution %+v", a)
		}
	}
}

// TestLoaderStampChecks: the loader entry's TimeDateStamp is not taken from a pre-Windows 10
// dump, when SizeOfImageNotRounded does not round up to SizeOfImage, or when the entry's tail
// is on a page the dump does not hold (the entry itself still counts).
func TestLoaderStampChecks(t *testing.T) {
	ghostStamp := func(t *testing.T, s *scene, build uint32) *Module {
		t.Helper()
		res := analyzeBytes(t, buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2, build: build}, s.mem), Options{})
		g := res.Module("ghost.sys")
		if g == nil {
			t.Fatalf("no ghost.sys: problems %q", res.Problems)
		}
		return g
	}
	t.Run("Windows 8.1", func(t *testing.T) {
		if g := ghostStamp(t, x64Scene(4, 0xFFFFF80000000000), 9600); g.TimeDateStamp != 0 || g.TimestampSource != "" {
			t.Errorf("build 9600: ghost.sys stamp %#x from %q", g.TimeDateStamp, g.TimestampSource)
		}
	})
	t.Run("SizeOfImageNotRounded inconsistent", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		s.v.put32(s.entries[3]+0x98, 0x1001) // rounds up to 0x2000, SizeOfImage is 0x1000
		if g := ghostStamp(t, s, 0); g.TimeDateStamp != 0 || g.TimestampSource != "" {
			t.Errorf("ghost.sys stamp %#x from %q", g.TimeDateStamp, g.TimestampSource)
		}
	})
	t.Run("tail on a missing page", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		// Move ghost.sys's entry to 0x80 bytes before the end of the list's last page, so
		// its tail (0x80-0xA0) falls on the next page, which is mapped to an absent frame.
		e := s.head + 0x4000 - 0x80
		s.pt.mapRange(s.head+0x4000, 0x9000000, 0x1000)
		for o := uint64(0); o < 0x80; o += 8 {
			s.mem.put64(s.v.pa(e+o), binary.LittleEndian.Uint64(s.mem.page(s.v.pa(s.entries[3] + o))[(s.v.pa(s.entries[3]+o))&0xFFF:]))
		}
		s.v.put64(s.entries[2], e)
		g := ghostStamp(t, s, 0)
		if g.TimeDateStamp != 0 || g.TimestampSource != "" || uint64(g.Base) != s.ghost {
			t.Errorf("ghost.sys base %#x stamp %#x from %q", uint64(g.Base), g.TimeDateStamp, g.TimestampSource)
		}
	})
}

func TestMicrosoftOnlyEvidence(t *testing.T) {
	s := x64Scene(4, 0xFFFFF80000000000)
	b := buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head,
		bugcheck: 0x3B, params: [4]uint64{0xC0000005, s.ntos + 0x4242, 0, 0}, ip: s.ntos + 0x4242}, s.mem)
	c := analyzeBytes(t, b, Options{}).Culprit
	if c == nil || c.Module != "ntoskrnl.exe" || !c.Microsoft || !strings.Contains(c.Evidence, "no evidence points at a non-Microsoft module") {
		t.Fatalf("culprit %+v", c)
	}
}

func TestBrokenLists(t *testing.T) {
	t.Run("cycle", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		s.v.put64(s.entries[2], s.entries[0]) // hal.dll's Flink back to the first entry
		res := analyzeBytes(t, buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem), Options{})
		if len(res.Modules) != 3 || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "loops back to entry") {
			t.Fatalf("modules %d, problems %q", len(res.Modules), res.Problems)
		}
	})
	t.Run("self-loop", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		s.v.put64(s.entries[0], s.entries[0])
		res := analyzeBytes(t, buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem), Options{})
		if len(res.Modules) != 1 || !strings.Contains(strings.Join(res.Problems, "\n"), "loops back") {
			t.Fatalf("modules %d, problems %q", len(res.Modules), res.Problems)
		}
	})
	t.Run("entry on a missing page", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		missing := uint64(0xFFFFF80570000000)
		s.pt.mapRange(missing, 0x9000000, 0x1000) // PFN 0x9000 is not stored
		s.v.put64(s.entries[1], missing)
		res := analyzeBytes(t, buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem), Options{})
		if len(res.Modules) != 2 || len(res.Problems) != 1 ||
			res.Problems[0] != "module entry 3 at 0xFFFFF80570000000 cannot be read (its page is not in the dump); walk stopped" {
			t.Fatalf("modules %d, problems %q", len(res.Modules), res.Problems)
		}
	})
	t.Run("entry not mapped", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		s.v.put64(s.entries[0], 0xFFFFF80599990000)
		res := analyzeBytes(t, buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem), Options{})
		if len(res.Modules) != 1 || !strings.Contains(res.Problems[0], "(not mapped: its PDPTE 0x0") {
			t.Fatalf("modules %d, problems %q", len(res.Modules), res.Problems)
		}
	})
	t.Run("page table on a missing page", func(t *testing.T) {
		s := x64Scene(4, 0xFFFFF80000000000)
		// Point the PML4 entry of the list head at a page directory pointer table the
		// dump does not hold.
		pml4e := s.pt.root + ((s.head>>39)&0x1FF)*8
		s.mem.put64(pml4e, 0x8000000|3)
		res := analyzeBytes(t, buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem), Options{})
		if len(res.Modules) != 0 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "PDPTE (physical 0x8000") ||
			!strings.Contains(res.Problems[0], "is not in the dump") {
			t.Fatalf("modules %d, problems %q", len(res.Modules), res.Problems)
		}
	})
}

// TestThroughWriter feeds the same physical memory through the project's writer as a bitmap
// kernel dump, so the walk also runs over the bitmap page mapping.
func TestThroughWriter(t *testing.T) {
	s := x64Scene(4, 0xFFFFF80000000000)
	var runs []dump.Run
	for _, r := range s.mem.runs() {
		runs = append(runs, dump.Run{BasePage: r[0], PageCount: r[1]})
	}
	var b bytes.Buffer
	err := dump.Write(&b, dump.Spec{Type: dump.TypeBitmapKernel, Is64: true, BugCheck: 0x7E, Params: [4]uint64{0xC0000005, s.drv + 0x77}, Runs: runs,
		DirectoryTableBase: s.pt.root, PsLoadedModuleList: s.head}, func(pfn uint64, page []byte) error {
		copy(page, s.mem[pfn])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	res := analyzeBytes(t, b.Bytes(), Options{})
	wantModules(t, res, s)
	if c := res.Culprit; c == nil || c.Module != "mydriver.sys" || uint64(*c.Offset) != 0x77 {
		t.Fatalf("culprit %+v", c)
	}
}

func TestNoModuleList(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec dump.Spec
		want string
	}{
		{"header only", dump.Spec{Type: dump.TypeHeader, Is64: true, BugCheck: 0xE2}, "header-only"},
		{"ARM64 full, empty page tables", dump.Spec{Type: dump.TypeFull, Is64: true, Machine: dump.MachineARM64, BugCheck: 0xE2, Runs: []dump.Run{{BasePage: 1, PageCount: 1}}, DirectoryTableBase: 0x1000, PsLoadedModuleList: 0xFFFF800000001000}, "the page holding its L1 descriptor"},
		{"no PsLoadedModuleList", dump.Spec{Type: dump.TypeFull, Is64: true, BugCheck: 0xE2, Runs: []dump.Run{{BasePage: 1, PageCount: 1}}}, "does not set"},
	} {
		var b bytes.Buffer
		if err := dump.Write(&b, tc.spec, nil); err != nil {
			t.Fatal(err)
		}
		res := analyzeBytes(t, b.Bytes(), Options{})
		if len(res.Modules) != 0 || res.Culprit != nil || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], tc.want) {
			t.Errorf("%s: modules %d culprit %+v problems %q", tc.name, len(res.Modules), res.Culprit, res.Problems)
		}
	}
}

func TestTranslateLargePagesDirect(t *testing.T) {
	s := x64Scene(4, 0xFFFFF80000000000)
	b := buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem)
	f, err := dump.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	sp := NewSpace(f.PhysicalReader(), PagingX64, s.pt.root|0xFFF, 0)
	for _, c := range []struct{ va, pa uint64 }{
		{s.ntos + 0x1ABCDE, 0x400000 + 0x1ABCDE},      // inside the 2 MiB page
		{s.hal + 0x3FFFFFFF, 0x40000000 + 0x3FFFFFFF}, // last byte of the 1 GiB page
		{s.drv + 0x7FFF, 0x307FFF},
	} {
		if pa, err := sp.Translate(c.va); err != nil || pa != c.pa {
			t.Errorf("Translate(0x%X) = 0x%X, %v; want 0x%X", c.va, pa, err, c.pa)
		}
	}
	if _, err := sp.Translate(0x0000800000000000); err == nil || !strings.Contains(err.Error(), "non-canonical") {
		t.Errorf("non-canonical address: %v", err)
	}
}
