package dump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Errors returned by this package wrap them, so test with errors.Is.
var (
	// ErrNotDump means the data does not start with a kernel dump header (PAGE + DUMP/DU64).
	ErrNotDump = errors.New("not a Windows kernel crash dump")
	// ErrUserMinidump means the data is a user-mode minidump (MDMP). Errors wrapping it also
	// wrap ErrNotDump.
	ErrUserMinidump = errors.New("user-mode minidump (MDMP)")
	// ErrTruncated means the file ends before a structure the header announces.
	ErrTruncated = errors.New("dump is truncated")
	// ErrCorrupt means the header's layout fields are inconsistent, so pages cannot be located.
	ErrCorrupt = errors.New("dump layout is corrupt")
	// ErrAbsentPage means a physical address is not stored in the dump.
	ErrAbsentPage = errors.New("physical page not in dump")
	// ErrNoPhysicalMemory means the dump type stores no physical memory pages (triage,
	// header-only).
	ErrNoPhysicalMemory = errors.New("dump holds no physical memory pages")
)

// PageSize is the size of a physical page in a dump.
const PageSize = 0x1000

// Header sizes.
const (
	HeaderSize64 = 0x2000 // size of DUMP_HEADER64 (PAGEDU64)
	HeaderSize32 = 0x1000 // size of DUMP_HEADER32 (PAGEDUMP)
)

// Signatures as little-endian u32 values.
const (
	sigPAGE = 0x45474150 // "PAGE"
	sigDUMP = 0x504D5544 // "DUMP"
	sigDU64 = 0x34365544 // "DU64"
	sigSDMP = 0x504D4453 // "SDMP"
	sigFDMP = 0x504D4446 // "FDMP"
	sigRDMP = 0x504D4452 // "RDMP"
	sigTRGD = 0x44475254 // "TRGD"
	sigMDMP = 0x504D444D // "MDMP"

	filler32 = 0x45474150
	filler64 = 0x4547415045474150
)

// Machine types (MachineImageType).
const (
	MachineI386  = 0x14C
	MachineAMD64 = 0x8664
	MachineARM64 = 0xAA64
)

// DumpType is the DumpType field of the header.
type DumpType uint32

// Dump types. 1-7 come from the Windows SDK; 8-10 are WinDbg's RDMP dumps.
const (
	TypeFull         DumpType = 1  // run-based full (complete) dump; also QEMU win-dmp
	TypeSummary      DumpType = 2  // summary (kernel) dump with an SDMP bitmap
	TypeHeader       DumpType = 3  // header only
	TypeTriage       DumpType = 4  // triage dump (small memory dump, Minidump\*.dmp)
	TypeBitmapFull   DumpType = 5  // bitmap full dump (FDMP)
	TypeBitmapKernel DumpType = 6  // bitmap kernel dump (SDMP)
	TypeAutomatic    DumpType = 7  // a setting, not expected in a file
	TypeRDMPKernel   DumpType = 8  // WinDbg .dump /k
	TypeRDMPKernUser DumpType = 9  // WinDbg .dump /ka
	TypeRDMPComplete DumpType = 10 // WinDbg .dump /f
)

var dumpTypeNames = map[DumpType]string{
	TypeFull:         "full",
	TypeSummary:      "summary (kernel)",
	TypeHeader:       "header only",
	TypeTriage:       "triage (minidump)",
	TypeBitmapFull:   "bitmap full",
	TypeBitmapKernel: "bitmap kernel",
	TypeAutomatic:    "automatic",
	TypeRDMPKernel:   "debugger kernel (RDMP)",
	TypeRDMPKernUser: "debugger kernel and user (RDMP)",
	TypeRDMPComplete: "debugger complete (RDMP)",
}

// String returns a readable name such as "bitmap kernel", or "unknown (N)".
func (t DumpType) String() string {
	if n, ok := dumpTypeNames[t]; ok {
		return n
	}
	if t == 0xFFFFFFFF {
		return "invalid (-1)"
	}
	return "unknown (" + strconv.FormatUint(uint64(t), 10) + ")"
}

// isBitmap reports whether the type stores pages behind an SDMP/FDMP bitmap.
func (t DumpType) isBitmap() bool {
	return t == TypeSummary || t == TypeBitmapFull || t == TypeBitmapKernel
}

func (t DumpType) isRDMP() bool { return t >= TypeRDMPKernel && t <= TypeRDMPComplete }

// U32 is a 32-bit header field that may hold the "PAGE" filler of an unset field.
type U32 struct {
	Value uint32
	Set   bool // false when the field holds "PAGE" filler
}

// String returns the value in hex, or "not set".
func (v U32) String() string {
	if !v.Set {
		return "not set"
	}
	return fmt.Sprintf("0x%X", v.Value)
}

// MarshalJSON encodes the value as a number, or null when not set.
func (v U32) MarshalJSON() ([]byte, error) {
	if !v.Set {
		return []byte("null"), nil
	}
	return strconv.AppendUint(nil, uint64(v.Value), 10), nil
}

// UnmarshalJSON reads what MarshalJSON writes: null (not set) or a number.
func (v *U32) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = U32{}
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("dump: field %s: want null or a 32-bit number", b)
	}
	*v = U32{uint32(n), true}
	return nil
}

// U64 is a 64-bit (or widened 32-bit) header field that may hold "PAGE" filler.
type U64 struct {
	Value uint64
	Set   bool // false when the field holds "PAGE" filler
}

// String returns the value in hex, or "not set".
func (v U64) String() string {
	if !v.Set {
		return "not set"
	}
	return fmt.Sprintf("0x%X", v.Value)
}

// MarshalJSON encodes the value as a hex string ("0xFFFFF80312345678", exact in every JSON
// reader), or null when not set.
func (v U64) MarshalJSON() ([]byte, error) {
	if !v.Set {
		return []byte("null"), nil
	}
	return []byte(`"0x` + strings.ToUpper(strconv.FormatUint(v.Value, 16)) + `"`), nil
}

// UnmarshalJSON reads what MarshalJSON writes: null (not set) or a "0x…" hex string.
func (v *U64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = U64{}
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(strings.TrimPrefix(strings.ToLower(s), "0x"), 16, 64); err == nil {
			*v = U64{n, true}
			return nil
		}
	}
	return fmt.Errorf("dump: field %s: want null or a \"0x…\" hex string", b)
}

func u32At(b []byte, off int) U32 {
	v := binary.LittleEndian.Uint32(b[off:])
	return U32{v, v != filler32}
}

func u64At(b []byte, off int) U64 {
	v := binary.LittleEndian.Uint64(b[off:])
	return U64{v, v != filler64}
}

// u32w reads a 32-bit field and widens it.
func u32w(b []byte, off int) U64 {
	v := binary.LittleEndian.Uint32(b[off:])
	return U64{uint64(v), v != filler32}
}

// Run is one run of the physical memory descriptor: PageCount pages from page frame
// number BasePage.
type Run struct {
	BasePage  uint64 `json:"base_page"`
	PageCount uint64 `json:"page_count"`
}

// MemoryDescriptor is the physical memory descriptor of the header (used by full dumps).
type MemoryDescriptor struct {
	NumberOfRuns  uint32 `json:"number_of_runs"`
	NumberOfPages uint64 `json:"number_of_pages"`
	// Runs holds the runs that fit in the header (at most 43 for 64-bit, 86 for 32-bit),
	// even when NumberOfRuns claims more.
	Runs []Run `json:"runs"`
}

// ExceptionRecord holds the decoded start of the header's exception record.
type ExceptionRecord struct {
	Code    U32 `json:"code"`
	Flags   U32 `json:"flags"`
	Address U64 `json:"address"`
}

// Header is the decoded dump header, independent of the header's width. Fields holding the
// "PAGE" filler of real dumps are "not set" (Set == false).
type Header struct {
	Signature           string            `json:"signature"` // "PAGEDU64" or "PAGEDUMP"
	Is64                bool              `json:"is64"`
	HeaderSize          int64             `json:"header_size"`
	MajorVersion        U32               `json:"major_version"` // 0xF free build, 0xC checked build
	MinorVersion        U32               `json:"minor_version"` // OS build number
	DirectoryTableBase  U64               `json:"directory_table_base"`
	PfnDataBase         U64               `json:"pfn_database"`
	PsLoadedModuleList  U64               `json:"ps_loaded_module_list"`
	PsActiveProcessHead U64               `json:"ps_active_process_head"`
	MachineImageType    U32               `json:"machine_image_type"`
	NumberProcessors    U32               `json:"number_processors"`
	BugCheckCode        U32               `json:"bugcheck_code"`
	BugCheckParameters  [4]U64            `json:"bugcheck_parameters"`
	VersionUser         string            `json:"version_user,omitempty"`
	PaeEnabled          bool              `json:"pae_enabled,omitempty"` // 32-bit only
	KdSecondaryVersion  uint8             `json:"kd_secondary_version"`
	KdDebuggerDataBlock U64               `json:"kd_debugger_data_block"`
	PhysicalMemory      *MemoryDescriptor `json:"physical_memory"` // nil when the block is filler
	Exception           ExceptionRecord   `json:"exception"`
	DumpType            DumpType          `json:"dump_type"`
	RequiredDumpSpace   U64               `json:"required_dump_space"`
	SystemTime          U64               `json:"system_time"`    // FILETIME, 100 ns since 1601
	SystemUpTime        U64               `json:"system_up_time"` // 100 ns units
	Comment             string            `json:"comment,omitempty"`
	MiniDumpFields      U32               `json:"minidump_fields"`
	SecondaryDataState  U32               `json:"secondary_data_state"`
	ProductType         U32               `json:"product_type"`
	SuiteMask           U32               `json:"suite_mask"`
	WriterStatus        U32               `json:"writer_status"`
	Attributes          U32               `json:"attributes"`
	BootID              U32               `json:"boot_id"`
}

// filetimeEpoch is 1601-01-01 in Unix seconds.
const filetimeEpoch = -11644473600

// FileTime converts a FILETIME (100 ns intervals since 1601-01-01 UTC) to a time.Time.
func FileTime(ft uint64) time.Time {
	return time.Unix(filetimeEpoch+int64(ft/1e7), int64(ft%1e7)*100).UTC()
}

// ToFileTime converts t to a FILETIME; times before 1601 become 0.
func ToFileTime(t time.Time) uint64 {
	s := t.Unix() - filetimeEpoch
	if s < 0 {
		return 0
	}
	return uint64(s)*1e7 + uint64(t.Nanosecond()/100)
}

// Time returns SystemTime as UTC; ok is false when it is not set.
func (h *Header) Time() (t time.Time, ok bool) {
	if !h.SystemTime.Set {
		return time.Time{}, false
	}
	return FileTime(h.SystemTime.Value), true
}

// UpTime returns SystemUpTime as a duration; ok is false when it is not set.
func (h *Header) UpTime() (d time.Duration, ok bool) {
	if !h.SystemUpTime.Set || h.SystemUpTime.Value > uint64(1<<63-1)/100 {
		return 0, false
	}
	return time.Duration(h.SystemUpTime.Value * 100), true
}

// cString decodes a fixed-size char array: up to the first NUL, "" when it is filler.
func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	s := string(b)
	if strings.Trim(s, "PAGE") == "" || strings.HasPrefix(s, "PAGEPAGE") {
		return ""
	}
	var sb strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7F || r == 0xFFFD {
			r = '.'
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// Layout constants of the two header widths.
type layout struct {
	headerSize                                      int
	dtb, pfn, psl, pah, machine, nproc, bug, params int
	paramWidth                                      int
	versionUser, kdbg, physMem, maxRuns             int
	excCode, excFlags, excAddr                      int
	dumpType, required, sysTime, upTime, comment    int
	miniFields, secondary, product, suite, writer   int
	attributes, bootID, kdSecondary                 int
}

var layout64 = layout{
	headerSize: HeaderSize64,
	dtb:        0x10, pfn: 0x18, psl: 0x20, pah: 0x28, machine: 0x30, nproc: 0x34, bug: 0x38, params: 0x40,
	paramWidth:  8,
	versionUser: 0x60, kdbg: 0x80, physMem: 0x88, maxRuns: 43,
	excCode: 0xF00, excFlags: 0xF04, excAddr: 0xF10,
	dumpType: 0xF98, required: 0xFA0, sysTime: 0xFA8, upTime: 0x1030, comment: 0xFB0,
	miniFields: 0x1038, secondary: 0x103C, product: 0x1040, suite: 0x1044, writer: 0x1048,
	attributes: 0x1050, bootID: 0x1054, kdSecondary: 0x104D,
}

var layout32 = layout{
	headerSize: HeaderSize32,
	dtb:        0x10, pfn: 0x14, psl: 0x18, pah: 0x1C, machine: 0x20, nproc: 0x24, bug: 0x28, params: 0x2C,
	paramWidth:  4,
	versionUser: 0x3C, kdbg: 0x60, physMem: 0x64, maxRuns: 86,
	excCode: 0x7D0, excFlags: 0x7D4, excAddr: 0x7DC,
	dumpType: 0xF88, required: 0xFA0, sysTime: 0xFC0, upTime: 0xFB8, comment: 0x820,
	miniFields: 0xF8C, secondary: 0xF90, product: 0xF94, suite: 0xF98, writer: 0xF9C,
	attributes: 0x8A0, bootID: 0x8A4, kdSecondary: 0x5D,
}

// decodeHeader decodes a complete header buffer (0x2000 or 0x1000 bytes).
func decodeHeader(b []byte, is64 bool) Header {
	l := layout32
	h := Header{Signature: "PAGEDUMP", HeaderSize: HeaderSize32}
	wide := u32w
	if is64 {
		l = layout64
		h = Header{Signature: "PAGEDU64", Is64: true, HeaderSize: HeaderSize64}
		wide = u64At
	}
	h.MajorVersion = u32At(b, 0x08)
	h.MinorVersion = u32At(b, 0x0C)
	h.DirectoryTableBase = wide(b, l.dtb)
	h.PfnDataBase = wide(b, l.pfn)
	h.PsLoadedModuleList = wide(b, l.psl)
	h.PsActiveProcessHead = wide(b, l.pah)
	h.MachineImageType = u32At(b, l.machine)
	h.NumberProcessors = u32At(b, l.nproc)
	h.BugCheckCode = u32At(b, l.bug)
	for i := range h.BugCheckParameters {
		h.BugCheckParameters[i] = wide(b, l.params+i*l.paramWidth)
	}
	h.VersionUser = cString(b[l.versionUser : l.versionUser+32])
	if !is64 {
		h.PaeEnabled = b[0x5C] != 0 && b[0x5C] != 'P'
	}
	h.KdSecondaryVersion = b[l.kdSecondary]
	h.KdDebuggerDataBlock = wide(b, l.kdbg)
	h.PhysicalMemory = decodeDescriptor(b[l.physMem:], is64, l.maxRuns)
	h.Exception = ExceptionRecord{Code: u32At(b, l.excCode), Flags: u32At(b, l.excFlags), Address: wide(b, l.excAddr)}
	h.DumpType = DumpType(binary.LittleEndian.Uint32(b[l.dumpType:]))
	h.RequiredDumpSpace = u64At(b, l.required)
	h.SystemTime = u64At(b, l.sysTime)
	h.SystemUpTime = u64At(b, l.upTime)
	h.Comment = cString(b[l.comment : l.comment+128])
	h.MiniDumpFields = u32At(b, l.miniFields)
	h.SecondaryDataState = u32At(b, l.secondary)
	h.ProductType = u32At(b, l.product)
	h.SuiteMask = u32At(b, l.suite)
	h.WriterStatus = u32At(b, l.writer)
	h.Attributes = u32At(b, l.attributes)
	h.BootID = u32At(b, l.bootID)
	return h
}

// decodeDescriptor decodes the physical memory descriptor; nil when it holds filler.
func decodeDescriptor(b []byte, is64 bool, maxRuns int) *MemoryDescriptor {
	var d MemoryDescriptor
	d.NumberOfRuns = binary.LittleEndian.Uint32(b)
	if is64 {
		d.NumberOfPages = binary.LittleEndian.Uint64(b[8:])
		if d.NumberOfRuns == filler32 || d.NumberOfPages == filler64 {
			return nil
		}
	} else {
		np := binary.LittleEndian.Uint32(b[4:])
		d.NumberOfPages = uint64(np)
		if d.NumberOfRuns == filler32 || np == filler32 {
			return nil
		}
	}
	n := min(int(min(d.NumberOfRuns, uint32(maxRuns))), maxRuns)
	d.Runs = make([]Run, n)
	for i := range d.Runs {
		if is64 {
			d.Runs[i] = Run{binary.LittleEndian.Uint64(b[16+16*i:]), binary.LittleEndian.Uint64(b[24+16*i:])}
		} else {
			d.Runs[i] = Run{uint64(binary.LittleEndian.Uint32(b[8+8*i:])), uint64(binary.LittleEndian.Uint32(b[12+8*i:]))}
		}
	}
	return &d
}

// readFull reads len(p) bytes at off. A short read at the end of the data is reported with
// io.ErrUnexpectedEOF; other errors are I/O errors.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
