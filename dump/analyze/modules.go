package analyze

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/crashkey/crashkey/dump"
)

// Module is one loaded kernel module (driver or kernel image).
type Module struct {
	Name          string `json:"name"`           // base name, "mydriver.sys"
	Path          string `json:"path,omitempty"` // full name as the loader recorded it
	Base          Hex    `json:"base"`
	Size          uint32 `json:"size"`
	EntryPoint    Hex    `json:"entry_point,omitempty"`
	CheckSum      uint32 `json:"checksum,omitempty"`
	TimeDateStamp uint32 `json:"timestamp,omitempty"`
	// PDB, GUID and Age identify the module's symbols (from its PE header in the dump).
	PDB  string `json:"pdb,omitempty"`
	GUID string `json:"guid,omitempty"`
	Age  uint32 `json:"age,omitempty"`
	// SymbolPath is the symbol-server path of the PDB: pdbname/GUIDAGE/pdbname.
	SymbolPath string `json:"symbol_path,omitempty"`
	// Microsoft is true for modules on the list of known Microsoft kernel modules.
	Microsoft bool `json:"microsoft"`
	// Identity says where TimeDateStamp/PDB came from, or why they are missing.
	Identity string `json:"identity,omitempty"`
	// TimestampSource says where TimeDateStamp came from: TimestampPE, TimestampLoader or
	// TimestampTriage; "" when there is none.
	TimestampSource string `json:"timestamp_source,omitempty"`
	// ldrStamp is the loader entry's TimeDateStamp, when the entry passes its check.
	ldrStamp uint32
}

// Values of Module.TimestampSource.
const (
	TimestampPE     = "PE header"
	TimestampLoader = "loader entry"
	TimestampTriage = "triage driver list"
)

// End returns the first address after the module.
func (m *Module) End() uint64 { return uint64(m.Base) + uint64(m.Size) }

// Contains reports whether addr lies inside the module.
func (m *Module) Contains(addr uint64) bool { return addr >= uint64(m.Base) && addr < m.End() }

func (m *Module) applyIdentity(id *Identity, err error) {
	switch {
	case id != nil:
		m.TimeDateStamp, m.TimestampSource = id.TimeDateStamp, TimestampPE
		m.PDB, m.GUID, m.Age, m.SymbolPath = id.PDB, id.GUID, id.Age, id.SymbolPath()
		m.Identity = "PE header in the dump"
		if id.PDB == "" {
			m.Identity = "PE header in the dump (no CodeView record)"
		}
		if err != nil {
			m.Identity += "; " + err.Error()
		}
	case err != nil:
		m.Identity = err.Error()
	}
}

// useLoaderStamp takes the loader entry's TimeDateStamp when no PE header gave one.
func (m *Module) useLoaderStamp() {
	if m.TimestampSource != "" || m.ldrStamp == 0 {
		return
	}
	m.TimeDateStamp, m.TimestampSource = m.ldrStamp, TimestampLoader
	note := "timestamp from the loader entry (KLDR_DATA_TABLE_ENTRY.TimeDateStamp)"
	if m.Identity != "" {
		note = m.Identity + "; " + note
	}
	m.Identity = note
}

// Hex is a 64-bit address that encodes in JSON as a "0x…" string.
type Hex uint64

// MarshalText encodes the value as 0x… in upper-case hex.
func (h Hex) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("0x%X", uint64(h))), nil }

// UnmarshalText reads what MarshalText writes.
func (h *Hex) UnmarshalText(b []byte) error {
	var v uint64
	if _, err := fmt.Sscanf(strings.ToLower(string(b)), "0x%x", &v); err != nil {
		return fmt.Errorf("analyze: %q is not a 0x… hex value", b)
	}
	*h = Hex(v)
	return nil
}

// KLDR_DATA_TABLE_ENTRY offsets (the loader's kernel module entry, "must match ntldr.w" in
// Microsoft's published debugger headers; identical in dbgeng's KLDR_DATA_TABLE_ENTRY64/32):
//
//	x64: InLoadOrderLinks 0x00, DllBase 0x30, EntryPoint 0x38, SizeOfImage 0x40,
//	     FullDllName 0x48, BaseDllName 0x58, CheckSum 0x78
//	x86: InLoadOrderLinks 0x00, DllBase 0x18, EntryPoint 0x1C, SizeOfImage 0x20,
//	     FullDllName 0x24, BaseDllName 0x2C, CheckSum 0x40
//
// A module's TimeDateStamp comes from its PE header in the dump. When that page is missing it
// comes from the loader entry, where the field moved: 0x80 in the published debugger layout
// (and in a triage dump's DUMP_DRIVER_ENTRY), but on Windows 10 and later (build >= 10240)
// 0x80 holds CoverageSection and the in-memory KLDR_DATA_TABLE_ENTRY ends with
//
//	x64/ARM64: SizeOfImageNotRounded 0x98, TimeDateStamp 0x9C (entry size 0xA0)
//	x86:       SizeOfImageNotRounded 0x54, TimeDateStamp 0x58 (entry size 0x5C)
//
// (KLDR_DATA_TABLE_ENTRY as generated from ntoskrnl symbols, e.g. the ntdiff/headers and
// Vergilius type dumps). Only a nonzero TimeDateStamp whose entry's SizeOfImageNotRounded,
// rounded up to a page, equals SizeOfImage is taken, and Module.TimestampSource says so.
//
// UNICODE_STRING: Length u16 @0, MaximumLength u16 @2, Buffer @8 (x64) or @4 (x86).
type ldrLayout struct {
	entryFields
	size, fullName, baseName int
	// full is the Windows 10 entry size; notRounded and stamp are the offsets of
	// SizeOfImageNotRounded and TimeDateStamp in it (read only when the walk asks for them).
	full, notRounded, stamp int
}

// entryFields are the offsets of a module entry's fields, in a KLDR_DATA_TABLE_ENTRY or a
// triage dump's DUMP_DRIVER_ENTRY, and its pointer width.
type entryFields struct {
	dllBase, entry, sizeOfImage, checkSum, timeStamp int
	ptr                                              int
}

var (
	ldr64 = ldrLayout{entryFields{dllBase: 0x30, entry: 0x38, sizeOfImage: 0x40, checkSum: 0x78, timeStamp: -1, ptr: 8}, 0x80, 0x48, 0x58, 0xA0, 0x98, 0x9C}
	ldr32 = ldrLayout{entryFields{dllBase: 0x18, entry: 0x1C, sizeOfImage: 0x20, checkSum: 0x40, timeStamp: -1, ptr: 4}, 0x44, 0x24, 0x2C, 0x5C, 0x54, 0x58}
)

func (l entryFields) pointer(b []byte, off int) uint64 {
	if l.ptr == 8 {
		return binary.LittleEndian.Uint64(b[off:])
	}
	return uint64(binary.LittleEndian.Uint32(b[off:]))
}

// module decodes the fields of the entry e (timeStamp < 0: the entry has none).
func (l entryFields) module(e []byte) Module {
	m := Module{
		Base:       Hex(l.pointer(e, l.dllBase)),
		EntryPoint: Hex(l.pointer(e, l.entry)),
		Size:       binary.LittleEndian.Uint32(e[l.sizeOfImage:]),
		CheckSum:   binary.LittleEndian.Uint32(e[l.checkSum:]),
	}
	if l.timeStamp >= 0 {
		m.TimeDateStamp = binary.LittleEndian.Uint32(e[l.timeStamp:])
	}
	return m
}

// unicodeString decodes a UNICODE_STRING at off: its length in bytes and buffer address.
func (l ldrLayout) unicodeString(b []byte, off int) (length int, buf uint64) {
	return int(binary.LittleEndian.Uint16(b[off:])), l.pointer(b, off+l.ptr)
}

// maxNameBytes bounds a module name read from the dump.
const maxNameBytes = 1024

// MaxModules bounds the module list walk.
const MaxModules = 4096

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	s := string(utf16.Decode(u))
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return s // exact; printed through termsafe
}

func baseName(path string) string {
	if i := strings.LastIndexAny(path, `\/`); i >= 0 {
		return path[i+1:]
	}
	return path
}

// walkLoadedModules walks the InLoadOrderLinks list headed at head (PsLoadedModuleList). It
// stops at the head, at a cycle, after MaxModules entries, or at an entry it cannot read,
// and says why in problems. A missing page is reported, never guessed. With win10 it also
// reads each entry's Windows 10 tail for the loader's TimeDateStamp (optional: an entry whose
// tail cannot be read still counts).
func walkLoadedModules(s *Space, head uint64, l ldrLayout, win10 bool) (mods []Module, problems []string, err error) {
	link := make([]byte, l.ptr)
	if _, err := s.ReadVirtual(link, head); err != nil {
		if errors.Is(err, ErrBudget) {
			return nil, nil, err
		}
		return nil, []string{fmt.Sprintf("the PsLoadedModuleList head at 0x%X cannot be read (%s), so no module list", head, explain(err))}, nil
	}
	cur := l.pointer(link, 0)
	seen := map[uint64]bool{head: true}
	n := l.size
	if win10 {
		n = l.full
	}
	entry := make([]byte, n)
	for cur != head {
		if seen[cur] {
			problems = append(problems, fmt.Sprintf("the module list loops back to entry 0x%X after %d entries without returning to its head; walk stopped", cur, len(mods)))
			break
		}
		if len(mods) >= MaxModules {
			problems = append(problems, fmt.Sprintf("more than %d modules in the list; walk stopped", MaxModules))
			break
		}
		seen[cur] = true
		// One read of the whole entry; only the first l.size bytes are required (the
		// Windows 10 tail past them may sit on a page the dump does not hold).
		got, err := s.ReadVirtual(entry, cur)
		if got < l.size {
			if errors.Is(err, ErrBudget) {
				return mods, problems, err
			}
			problems = append(problems, fmt.Sprintf("module entry %d at 0x%X cannot be read (%s); walk stopped", len(mods)+1, cur, explain(err)))
			break
		}
		m := l.module(entry)
		if got == len(entry) && l.full == len(entry) {
			m.ldrStamp = l.loaderStamp(entry, m.Size)
		}
		m.Path = readName(s, l, entry, l.fullName, &problems, len(mods)+1)
		m.Name = readName(s, l, entry, l.baseName, &problems, len(mods)+1)
		if m.Name == "" {
			m.Name = baseName(m.Path)
		}
		if m.Name == "" {
			m.Name = fmt.Sprintf("module_%X", uint64(m.Base))
		}
		mods = append(mods, m)
		cur = l.pointer(entry, 0)
	}
	return mods, problems, nil
}

// loaderStamp returns the TimeDateStamp of a Windows 10 loader entry when its
// SizeOfImageNotRounded is consistent with the entry's SizeOfImage, else 0.
func (l ldrLayout) loaderStamp(entry []byte, size uint32) uint32 {
	notRounded := binary.LittleEndian.Uint32(entry[l.notRounded:])
	if notRounded == 0 || notRounded > size || (uint64(notRounded)+0xFFF)&^0xFFF != uint64(size) {
		return 0
	}
	return binary.LittleEndian.Uint32(entry[l.stamp:])
}

func readName(s *Space, l ldrLayout, entry []byte, off int, problems *[]string, idx int) string {
	n, buf := l.unicodeString(entry, off)
	n = min(n, maxNameBytes) &^ 1
	if n == 0 || buf == 0 {
		return ""
	}
	b := make([]byte, n)
	if _, err := s.ReadVirtual(b, buf); err != nil {
		*problems = append(*problems, fmt.Sprintf("module entry %d: name at 0x%X cannot be read (%s)", idx, buf, explain(err)))
		return ""
	}
	return utf16String(b)
}

// explain says why a read failed, in a few words and with the page-table detail.
func explain(err error) string {
	var te *TranslateError
	if errors.As(err, &te) {
		return te.short()
	}
	if errors.Is(err, dump.ErrAbsentPage) {
		return "its page is not in the dump"
	}
	return strings.ReplaceAll(err.Error(), "analyze: ", "")
}

// reason shortens a translation error for a problem line.
func reason(err error) string {
	switch {
	case errors.Is(err, dump.ErrAbsentPage):
		return "its page is not in the dump"
	case errors.Is(err, ErrNotMapped):
		return "not mapped"
	case errors.Is(err, ErrNonCanonical):
		return "non-canonical address"
	case errors.Is(err, ErrBudget):
		return "read budget exhausted"
	}
	return err.Error()
}
