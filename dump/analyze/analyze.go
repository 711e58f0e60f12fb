// Package analyze says what crashed in a Windows kernel dump: it lists the loaded modules
// (from a triage dump's driver list, or by walking PsLoadedModuleList through the page
// tables of full, kernel and bitmap dumps), reads each module's identity from its PE header
// (timestamp, size, PDB name, GUID and age: the symbol-server key), maps the exception
// address, the instruction pointer and the bug-check parameters that hold code addresses to
// module+offset, and names the probable culprit the way WinDbg's !analyze puts it.
//
// Everything it reads comes from the dump through bounded reads: a page the dump does not
// hold is reported as missing, never guessed; list walks detect cycles and stop after
// MaxModules entries; a Space stops after a bounded number of physical reads, so hostile page
// tables cost bounded time and memory.
//
//	f, _ := dump.Open(r, size)
//	res, err := analyze.Analyze(ctx, r, f, analyze.Options{})
//	if res.Culprit != nil { fmt.Println("Probably caused by:", res.Culprit.Module) }
package analyze

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/crashkey/crashkey/dump"
)

// Options controls Analyze.
type Options struct {
	// Paging forces a translation scheme for full, kernel and bitmap dumps; PagingNone (the
	// zero value) detects it from the header (machine, PaeEnabled, and 5-level paging when
	// PsLoadedModuleList is canonical only under 5-level paging; ARM64 for 0xAA64).
	Paging Paging
	// ReadBudget bounds the physical reads (0: DefaultReadBudget).
	ReadBudget int
	// SkipIdentity skips reading the modules' PE headers.
	SkipIdentity bool
}

// Source values of Result.Source.
const (
	SourceTriage = "triage driver list"
	SourceLoaded = "PsLoadedModuleList"
)

// maxStackHits bounds the stack addresses reported.
const maxStackHits = 32

// Result is what Analyze found.
type Result struct {
	// Source is where the module list comes from (SourceTriage, SourceLoaded), or "" when
	// there is none.
	Source string `json:"module_source"`
	// Paging is the translation scheme used for a full/kernel/bitmap dump.
	Paging   string           `json:"paging,omitempty"`
	Modules  []Module         `json:"modules"`
	Unloaded []UnloadedDriver `json:"unloaded_drivers,omitempty"`
	// Regions are the structures a triage dump holds.
	Regions []Region `json:"triage_regions,omitempty"`
	// InstructionPointer and StackPointer come from the dump's context record.
	InstructionPointer *Hex `json:"instruction_pointer,omitempty"`
	StackPointer       *Hex `json:"stack_pointer,omitempty"`
	// Attributions are the direct evidence: the broken driver, the bug-check parameters
	// that hold code addresses, the exception address and the instruction pointer.
	Attributions []Attribution `json:"attributions"`
	// Stack lists the words of the stack that point into modules: a triage dump's saved
	// stack, or up to 16 KiB from the context's stack pointer in other dumps.
	Stack   []Attribution `json:"stack_addresses,omitempty"`
	Culprit *Culprit      `json:"culprit"`
	// Problems says what could not be read (missing pages, cycles, bounds reached).
	Problems []string `json:"analysis_problems,omitempty"`
	// PageReads counts the physical reads of the module walk and identity reads.
	PageReads int `json:"page_reads"`
}

// Module returns the module named name (case-insensitive), or nil.
func (r *Result) Module(name string) *Module {
	for i := range r.Modules {
		if equalFold(r.Modules[i].Name, name) {
			return &r.Modules[i]
		}
	}
	return nil
}

// AnalyzeFile opens the dump held by r and analyses it.
func AnalyzeFile(ctx context.Context, r io.ReaderAt, size int64, opts Options) (*Result, error) {
	f, err := dump.Open(r, size)
	if err != nil {
		return nil, err
	}
	return Analyze(ctx, r, f, opts)
}

// Analyze analyses the dump f, opened from r. Unreadable parts of the dump become
// Result.Problems; the error is non-nil only for I/O errors reading r and cancellation.
func Analyze(ctx context.Context, r io.ReaderAt, f *dump.File, opts Options) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := f.Header()
	res := &Result{Modules: []Module{}, Attributions: []Attribution{}}
	var mem virtReader
	var tri *triageResult

	switch t := f.Type(); {
	case t == dump.TypeTriage:
		var err error
		if tri, err = readTriage(r, f); err != nil {
			return nil, err
		}
		res.Source = SourceTriage
		res.Modules, res.Unloaded, res.Regions = tri.modules, tri.unloaded, tri.regions
		res.Problems = append(res.Problems, tri.problems...)
		mem = tri.mem
	case t == dump.TypeHeader:
		res.Problems = append(res.Problems, "a header-only dump holds no memory, so no module list")
	default:
		s, err := walk(f, opts, res)
		if err != nil {
			return nil, err
		}
		if s != nil {
			mem = s
			defer func() { res.PageReads = s.Reads }()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range res.Modules {
		res.Modules[i].Microsoft = IsMicrosoftModule(res.Modules[i].Name)
		if mem != nil && !opts.SkipIdentity && res.Modules[i].Base != 0 {
			id, err := readIdentity(mem, uint64(res.Modules[i].Base))
			if errors.Is(err, ErrBudget) {
				res.Problems = append(res.Problems, "physical read budget exhausted while reading module identities")
				mem = nil
				continue
			}
			if tri != nil && id == nil {
				continue // the triage dump rarely saves PE headers; keep the entry's fields
			}
			if err != nil {
				err = errors.New("identity: " + explain(err))
			}
			res.Modules[i].applyIdentity(id, err)
		}
		res.Modules[i].useLoaderStamp()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	idx := newModuleIndex(res.Modules)
	if tri != nil && tri.broken != "" {
		if m := res.Module(tri.broken); m != nil {
			off := Hex(0)
			res.Attributions = append(res.Attributions, Attribution{Source: "broken driver", What: "BrokenDriverOffset of the triage header", Address: m.Base, Module: m.Name, Offset: &off, microsoft: m.Microsoft})
		}
	}
	if h.BugCheckCode.Set {
		if p, ok := lookupCodeParam(h.BugCheckCode.Value); ok && h.BugCheckParameters[p.index-1].Set {
			res.Attributions = append(res.Attributions, idx.attribute(fmt.Sprintf("bug-check parameter %d", p.index), p.what, h.BugCheckParameters[p.index-1].Value))
		}
	}
	if e := h.Exception; e.Code.Set && e.Address.Set && e.Address.Value != 0 {
		res.Attributions = append(res.Attributions, idx.attribute("exception address", fmt.Sprintf("exception code 0x%X", e.Code.Value), e.Address.Value))
	}
	if ip, sp, ok := contextPointers(r, f); ok {
		res.InstructionPointer, res.StackPointer = &ip, &sp
		if ip != 0 {
			res.Attributions = append(res.Attributions, idx.attribute("instruction pointer", "from the dump's context record", uint64(ip)))
		}
	}
	if tri != nil && tri.stackLen > 0 {
		stack, err := scanStack(r, tri, f.Is64(), idx)
		if err != nil {
			return nil, err
		}
		res.Stack = stack
	} else if sp, ok := mem.(*Space); ok && res.StackPointer != nil && *res.StackPointer != 0 {
		res.Stack = scanVirtualStack(sp, uint64(*res.StackPointer), f.Is64(), idx)
	}
	res.Culprit = chooseCulprit(res.Attributions, res.Stack)
	return res, nil
}

// walk translates and walks PsLoadedModuleList of a full, kernel or bitmap dump.
func walk(f *dump.File, opts Options, res *Result) (*Space, error) {
	h := f.Header()
	paging := opts.Paging
	if paging == PagingNone {
		paging = detectPaging(h)
	}
	if paging == PagingNone {
		res.Problems = append(res.Problems, fmt.Sprintf("virtual addresses of a %s dump are not translated (x64, x86 and ARM64 only), so no module list", machineString(h)))
		return nil, nil
	}
	res.Paging = paging.String()
	if !h.DirectoryTableBase.Set || !h.PsLoadedModuleList.Set || h.PsLoadedModuleList.Value == 0 {
		res.Problems = append(res.Problems, "the header does not set DirectoryTableBase and PsLoadedModuleList, so no module list")
		return nil, nil
	}
	if _, _, err := f.PageOffset(0); err != nil && !errors.Is(err, dump.ErrAbsentPage) {
		res.Problems = append(res.Problems, "physical memory cannot be read: "+err.Error())
		return nil, nil
	}
	s := NewSpace(f.PhysicalReader(), paging, h.DirectoryTableBase.Value, opts.ReadBudget)
	l := ldr32
	if paging == PagingX64 || paging == PagingX64LA57 || paging == PagingARM64 {
		l = ldr64 // ARM64's KLDR_DATA_TABLE_ENTRY has x64's offsets (same 64-bit layout)
	}
	// The loader entry's own TimeDateStamp is at the Windows 10 offsets only (modules.go).
	win10 := !h.MinorVersion.Set || h.MinorVersion.Value >= 10240
	mods, problems, err := walkLoadedModules(s, h.PsLoadedModuleList.Value, l, win10)
	if len(mods) == 0 && err == nil && opts.Paging == PagingNone && paging == PagingX64 {
		// The header has no paging-mode field: a 5-level kernel whose list address is also
		// 4-level canonical is found by trying. The result counts only if the list walks.
		s5 := NewSpace(f.PhysicalReader(), PagingX64LA57, h.DirectoryTableBase.Value, opts.ReadBudget)
		if mods5, problems5, err5 := walkLoadedModules(s5, h.PsLoadedModuleList.Value, l, win10); len(mods5) > 0 && err5 == nil {
			s, mods, problems, paging = s5, mods5, problems5, PagingX64LA57
			res.Paging = paging.String()
			problems = append([]string{"4-level translation of PsLoadedModuleList failed and 5-level translation walks the list: using 5-level paging"}, problems...)
		}
	}
	res.Problems = append(res.Problems, problems...)
	if err != nil {
		res.Problems = append(res.Problems, "module list: "+explain(err))
	}
	res.Source = SourceLoaded
	if mods != nil {
		res.Modules = mods
	}
	return s, nil
}

// detectPaging picks the scheme from the header.
func detectPaging(h dump.Header) Paging {
	if !h.MachineImageType.Set {
		return PagingNone
	}
	switch h.MachineImageType.Value {
	case dump.MachineAMD64:
		if v := h.PsLoadedModuleList.Value; h.PsLoadedModuleList.Set {
			if top := v >> 47; top != 0 && top != 0x1FFFF {
				if top57 := v >> 56; top57 == 0 || top57 == 0xFF {
					return PagingX64LA57
				}
			}
		}
		return PagingX64
	case dump.MachineI386:
		if h.PaeEnabled {
			return PagingPAE
		}
		return PagingX86
	case dump.MachineARM64:
		return PagingARM64
	}
	return PagingNone
}

func machineString(h dump.Header) string {
	if !h.MachineImageType.Set {
		return "machine-type-not-set"
	}
	switch h.MachineImageType.Value {
	case dump.MachineARM64:
		return "ARM64"
	}
	return fmt.Sprintf("machine 0x%X", h.MachineImageType.Value)
}

// CONTEXT offsets of the instruction and stack pointers (winnt.h): AMD64 Rip @0xF8, Rsp
// @0x98; ARM64 Pc @0x108, Sp @0x100; x86 Eip @0xB8, Esp @0xC4. The header's CONTEXT is at
// 0x348 (64-bit) or 0x320 (32-bit); a triage dump's ContextOffset points at it too.
func contextPointers(r io.ReaderAt, f *dump.File) (ip, sp Hex, ok bool) {
	h := f.Header()
	off := int64(0x320)
	if f.Is64() {
		off = 0x348
	}
	if t := f.Triage(); t != nil && t.ContextOffset != 0 && int64(t.ContextOffset)+0x110 <= f.Size() {
		off = int64(t.ContextOffset)
	}
	if !h.MachineImageType.Set {
		return 0, 0, false
	}
	var ipOff, spOff, width int
	switch h.MachineImageType.Value {
	case dump.MachineAMD64:
		ipOff, spOff, width = 0xF8, 0x98, 8
	case dump.MachineARM64:
		ipOff, spOff, width = 0x108, 0x100, 8
	case dump.MachineI386:
		ipOff, spOff, width = 0xB8, 0xC4, 4
	default:
		return 0, 0, false
	}
	b := make([]byte, 0x110)
	if readAt(r, b, off) != nil {
		return 0, 0, false
	}
	get := func(o int) uint64 {
		if width == 8 {
			return binary.LittleEndian.Uint64(b[o:])
		}
		return uint64(binary.LittleEndian.Uint32(b[o:]))
	}
	v := get(ipOff)
	if v == 0x4547415045474150 || width == 4 && v == 0x45474150 {
		return 0, 0, false // PAGE filler: not set
	}
	return Hex(v), Hex(get(spOff)), true
}

// scanStack reports the words of the saved stack that point into modules.
func scanStack(r io.ReaderAt, tri *triageResult, is64 bool, idx moduleIndex) ([]Attribution, error) {
	n := min(tri.stackLen, maxTriageRead)
	b := make([]byte, n)
	if err := readAt(r, b, tri.stackOff); err != nil {
		return nil, err
	}
	w := uint64(4)
	if is64 {
		w = 8
	}
	var out []Attribution
	for o := uint64(0); o+w <= n && len(out) < maxStackHits; o += w {
		v := uint64(binary.LittleEndian.Uint32(b[o:]))
		if is64 {
			v = binary.LittleEndian.Uint64(b[o:])
		}
		if m := idx.find(v); m != nil {
			a := idx.attribute("stack", "", v)
			so := Hex(o)
			a.StackOffset = &so
			out = append(out, a)
		}
	}
	return out, nil
}

// maxStackScan bounds the bytes of a full dump's stack scanned from the stack pointer.
const maxStackScan = 0x4000

// scanVirtualStack reads the stack of a full, kernel or bitmap dump from the context's stack
// pointer, page by page up to maxStackScan bytes or the first page it cannot read, and
// reports the words that point into modules.
func scanVirtualStack(s *Space, sp uint64, is64 bool, idx moduleIndex) []Attribution {
	w := uint64(4)
	if is64 {
		w = 8
	}
	sp &^= w - 1
	var out []Attribution
	buf := make([]byte, 0x1000)
	for done := uint64(0); done < maxStackScan && len(out) < maxStackHits; {
		va := sp + done
		chunk := buf[:min(0x1000-va&0xFFF, maxStackScan-done)]
		if n, _ := s.ReadVirtual(chunk, va); n < len(chunk) {
			break
		}
		for o := uint64(0); o+w <= uint64(len(chunk)) && len(out) < maxStackHits; o += w {
			v := uint64(binary.LittleEndian.Uint32(chunk[o:]))
			if is64 {
				v = binary.LittleEndian.Uint64(chunk[o:])
			}
			if idx.find(v) != nil {
				a := idx.attribute("stack", "", v)
				so := Hex(done + o)
				a.StackOffset = &so
				out = append(out, a)
			}
		}
		done += uint64(len(chunk))
	}
	return out
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
