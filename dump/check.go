package dump

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Severity grades a finding.
type Severity int

// Severities, from least to most serious.
const (
	Info    Severity = iota // information
	Warning                 // the dump is usable but something is off
	Error                   // the dump is invalid or incomplete
)

var severityNames = [...]string{"info", "warning", "error"}

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the severity as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	for i, n := range severityNames {
		if string(b) == n {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("dump: unknown severity %q, want info, warning or error", b)
}

// Verdict is the overall result of a check.
type Verdict int

// Verdicts.
const (
	Valid             Verdict = iota // no warnings, no errors
	ValidWithWarnings                // warnings, no errors
	Corrupt                          // at least one error
)

var verdictNames = [...]string{"valid", "valid-with-warnings", "corrupt"}

// String returns "valid", "valid-with-warnings" or "corrupt".
func (v Verdict) String() string {
	if v >= 0 && int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// MarshalText encodes the verdict as its name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText decodes a verdict name.
func (v *Verdict) UnmarshalText(b []byte) error {
	for i, n := range verdictNames {
		if string(b) == n {
			*v = Verdict(i)
			return nil
		}
	}
	return fmt.Errorf("dump: unknown verdict %q, want valid, valid-with-warnings or corrupt", b)
}

// Finding is one result of a check. Code is a stable identifier for scripts, such as
// "truncated" or "bitmap-count"; Message says what is wrong and, where possible, what to do.
type Finding struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
}

// CheckOptions controls File.Check.
type CheckOptions struct {
	// Deep reads every stored page of full, bitmap and RDMP dumps and summarises unreadable
	// and all-zero pages. It reads on one goroutine per CPU (at most four), calling the
	// reader's ReadAt in parallel, as io.ReaderAt allows.
	Deep bool
	// ExpectBugCheck, when set, is the bug-check code the dump must hold; a different code
	// yields a "bugcheck-mismatch" warning and Report.Expectation.Match == false.
	ExpectBugCheck *uint32
	// Progress, when set, is called during the deep read with the bytes read so far and the
	// total.
	Progress func(done, total int64)
	// Now is the time "in the future" is measured against; the zero value means time.Now().
	Now time.Time
}

// BugCheck is the decoded bug check.
type BugCheck struct {
	Code       U32    `json:"code"`
	CodeHex    string `json:"code_hex"` // "0x000000E2", or "" when not set
	Name       string `json:"name"`
	Parameters [4]U64 `json:"parameters"`
	// BaseCode, BaseCodeHex and BaseName are set for a flagged "_M" variant (0x1000007E):
	// the bug check it stands for (0x7E). See BaseBugCheck.
	BaseCode    *uint32 `json:"base_code,omitempty"`
	BaseCodeHex string  `json:"base_code_hex,omitempty"`
	BaseName    string  `json:"base_name,omitempty"`
}

// Expectation is the result of CheckOptions.ExpectBugCheck.
type Expectation struct {
	Expected     uint32 `json:"expected"`
	ExpectedName string `json:"expected_name"`
	Match        bool   `json:"match"`
	// Variant is true when the dump matched through its flagged "_M" variant of the
	// expected code (expected 0x7E, the dump holds 0x1000007E).
	Variant bool `json:"variant,omitempty"`
}

// MemorySummary describes the physical memory a dump stores.
type MemorySummary struct {
	// DataStart is the file offset of the first stored page.
	DataStart uint64 `json:"data_start"`
	// StoredPages is the number of pages the layout says are stored.
	StoredPages uint64 `json:"stored_pages"`
	// PagesInFile is the number of those pages the file actually holds in full.
	PagesInFile uint64 `json:"pages_in_file"`
	// FirstMissingAddress is the physical address of the first page beyond the end of the
	// file, when the file is truncated.
	FirstMissingAddress *U64 `json:"first_missing_address,omitempty"`
	// RunCount is the number of runs of consecutive pages.
	RunCount uint64 `json:"run_count"`
	// Runs lists the runs in file order, at most MaxReportedRuns of them.
	Runs []Run `json:"runs"`
	// BitmapPages is the bitmap length in pages (bitmap dumps only).
	BitmapPages uint64 `json:"bitmap_pages,omitempty"`
}

// MaxReportedRuns bounds MemorySummary.Runs.
const MaxReportedRuns = 64

// maxListed bounds the addresses listed in a DeepResult.
const maxListed = 8

// DeepResult summarises the deep read of every stored page.
type DeepResult struct {
	PagesRead       uint64 `json:"pages_read"`
	ZeroPages       uint64 `json:"zero_pages"`
	UnreadablePages uint64 `json:"unreadable_pages"`
	// FirstUnreadable lists the physical addresses of the first unreadable pages.
	FirstUnreadable []U64 `json:"first_unreadable,omitempty"`
	// Skipped says why no page was read, if none was.
	Skipped string `json:"skipped,omitempty"`
}

// Report is the result of File.Check.
type Report struct {
	FileSize     int64          `json:"file_size"`
	DumpSize     int64          `json:"dump_size"`
	DumpTypeName string         `json:"dump_type_name"`
	Machine      string         `json:"machine"`
	BugCheck     BugCheck       `json:"bugcheck"`
	SystemTime   *time.Time     `json:"system_time_utc,omitempty"`
	Header       *Header        `json:"header,omitempty"` // nil when the header could not be decoded
	Bitmap       *BitmapHeader  `json:"bitmap,omitempty"`
	Triage       *TriageHeader  `json:"triage,omitempty"`
	RDMP         *RDMPHeader    `json:"rdmp,omitempty"`
	Memory       *MemorySummary `json:"memory,omitempty"`
	Deep         *DeepResult    `json:"deep,omitempty"`
	Expectation  *Expectation   `json:"expectation,omitempty"`
	Findings     []Finding      `json:"findings"`
	Verdict      Verdict        `json:"verdict"`
	// Passed equals OK(): the one value a script needs to read.
	Passed bool `json:"ok"`
}

// OK reports whether the dump is valid (possibly with warnings) and holds the expected bug
// check, if one was expected.
func (r *Report) OK() bool {
	return r.Verdict != Corrupt && (r.Expectation == nil || r.Expectation.Match)
}

func (r *Report) add(s Severity, code, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{s, code, fmt.Sprintf(format, args...)})
}

func (r *Report) finish() {
	defer func() { r.Passed = r.OK() }()
	r.Verdict = Valid
	for _, f := range r.Findings {
		switch {
		case f.Severity == Error:
			r.Verdict = Corrupt
		case f.Severity == Warning && r.Verdict == Valid:
			r.Verdict = ValidWithWarnings
		}
	}
}

// CheckFile opens the dump held by r and checks it. Unlike Open, it turns format errors
// (not a dump, user-mode minidump, truncated header) into a Corrupt report with one
// finding; it returns an error only for I/O errors and cancellation.
func CheckFile(ctx context.Context, r io.ReaderAt, size int64, opts CheckOptions) (*Report, error) {
	f, err := Open(r, size)
	if err != nil {
		var code string
		switch {
		case errors.Is(err, ErrUserMinidump):
			code = "user-minidump"
		case errors.Is(err, ErrNotDump):
			code = "not-a-dump"
		case errors.Is(err, ErrTruncated):
			code = "header-truncated"
		default:
			return nil, err
		}
		rep := &Report{FileSize: size, Findings: []Finding{}}
		rep.add(Error, code, "%s", strings.TrimPrefix(err.Error(), "dump: "))
		if opts.ExpectBugCheck != nil {
			rep.Expectation = &Expectation{Expected: *opts.ExpectBugCheck, ExpectedName: BugCheckName(*opts.ExpectBugCheck)}
		}
		rep.finish()
		return rep, nil
	}
	return f.Check(ctx, opts)
}

// Check validates the dump like dumpchk: header fields, the page layout, sizes and, with
// opts.Deep, every stored page. Problems are findings in the report, not errors; the error
// is non-nil only for I/O errors reading the file and for cancellation. Memory use does not
// depend on the size of the dump.
func (f *File) Check(ctx context.Context, opts CheckOptions) (*Report, error) {
	h := &f.hdr
	hdr := f.hdr
	r := &Report{
		FileSize:     f.size,
		DumpSize:     f.DumpSize(),
		DumpTypeName: h.DumpType.String(),
		Machine:      machineName(h.MachineImageType),
		Header:       &hdr,
		Bitmap:       f.bitmap,
		Triage:       f.triage,
		RDMP:         f.rdmp,
		Findings:     []Finding{},
		BugCheck:     BugCheck{Code: h.BugCheckCode, Parameters: h.BugCheckParameters},
	}
	if h.BugCheckCode.Set {
		r.BugCheck.Name = BugCheckName(h.BugCheckCode.Value)
		r.BugCheck.CodeHex = fmt.Sprintf("0x%08X", h.BugCheckCode.Value)
		if base, ok := BaseBugCheck(h.BugCheckCode.Value); ok {
			r.BugCheck.BaseCode = &base
			r.BugCheck.BaseCodeHex = fmt.Sprintf("0x%08X", base)
			r.BugCheck.BaseName = BugCheckName(base)
		}
	}
	if t, ok := h.Time(); ok {
		r.SystemTime = &t
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	f.checkHeaderFields(r, now)
	if opts.ExpectBugCheck != nil {
		want := *opts.ExpectBugCheck
		got := h.BugCheckCode.Value
		r.Expectation = &Expectation{Expected: want, ExpectedName: BugCheckName(want), Match: h.BugCheckCode.Set && BugCheckMatches(want, got),
			Variant: h.BugCheckCode.Set && got != want && BugCheckMatches(want, got)}
		if !r.Expectation.Match {
			got := "not set"
			if h.BugCheckCode.Set {
				got = FormatBugCheck(h.BugCheckCode.Value)
			}
			r.add(Warning, "bugcheck-mismatch", "bug check is %s, expected %s", got, FormatBugCheck(want))
		}
	}
	encrypted := f.checkAttributes(r)

	var mem *memLayout
	var err error
	switch t := h.DumpType; {
	case t == TypeFull || t.isRDMP() || t.isBitmap():
		mem, err = f.checkLayout(ctx, r)
	case t == TypeTriage:
		f.checkTriage(r)
	case t == TypeHeader:
		r.add(Info, "header-only", "header-only dump: it holds no memory pages")
	default:
		r.add(Error, "dump-type", "dump type %d is unknown (want 1 full, 2 summary, 3 header, 4 triage, 5/6 bitmap, 8-10 RDMP)", uint32(t))
	}
	if err != nil {
		return nil, err
	}
	if t := h.DumpType; t != TypeTriage {
		f.checkSize(r, mem)
	}
	if opts.Deep {
		switch {
		case h.DumpType == TypeTriage || h.DumpType == TypeHeader:
			r.Deep = &DeepResult{Skipped: "a " + h.DumpType.String() + " dump stores no physical memory pages"}
		case mem == nil:
			r.Deep = &DeepResult{Skipped: "the page layout is unusable (see the errors)"}
		case encrypted:
			r.Deep = &DeepResult{Skipped: "the dump's pages are encrypted"}
		default:
			if r.Deep, err = f.deepRead(ctx, mem, opts.Progress); err != nil {
				return nil, err
			}
			f.deepFindings(r)
		}
	}
	r.finish()
	return r, nil
}

func machineName(m U32) string {
	if !m.Set {
		return "not set"
	}
	switch m.Value {
	case MachineAMD64:
		return "x64 (0x8664)"
	case MachineARM64:
		return "ARM64 (0xAA64)"
	case MachineI386:
		return "x86 (0x14C)"
	}
	return fmt.Sprintf("unknown (0x%X)", m.Value)
}

func (f *File) checkHeaderFields(r *Report, now time.Time) {
	h := &f.hdr
	if m := h.MachineImageType; !m.Set {
		r.add(Warning, "machine", "machine type is not set")
	} else if h.Is64 && m.Value != MachineAMD64 && m.Value != MachineARM64 || !h.Is64 && m.Value != MachineI386 {
		r.add(Warning, "machine", "machine type 0x%X is unexpected for a %d-bit dump", m.Value, map[bool]int{true: 64, false: 32}[h.Is64])
	}
	if p := h.NumberProcessors; !p.Set || p.Value == 0 || p.Value > 4096 {
		r.add(Warning, "processors", "number of processors is %s, want 1 to 4096", fmtU32Dec(p))
	}
	if v := h.MajorVersion; !v.Set || v.Value != 0xF && v.Value != 0xC {
		r.add(Warning, "major-version", "major version is %s, want 0xF (free build) or 0xC (checked build)", v)
	}
	bc := h.BugCheckCode
	switch {
	case !bc.Set:
		r.add(Warning, "bugcheck-not-set", "bug check code is not set (PAGE filler)")
	case bc.Value == 0:
		r.add(Warning, "bugcheck-zero", "no bug check recorded (code 0)")
	case bc.Value == BugCheckManuallyInitiated:
		for i, p := range h.BugCheckParameters {
			if p.Set && p.Value != 0 {
				r.add(Warning, "bugcheck-parameters", "MANUALLY_INITIATED_CRASH should have zero parameters, but parameter %d is 0x%X", i+1, p.Value)
				break
			}
		}
	case bc.Value == BugCheckLiveSystemDump:
		r.add(Info, "live-dump", "live dump (LIVE_SYSTEM_DUMP): taken while the system kept running, not a crash")
	}
	if _, variant := BaseBugCheck(bc.Value); bc.Set && bc.Value != 0 && BugCheckName(bc.Value) == "" && !variant {
		r.add(Info, "bugcheck-unknown", "bug check code 0x%08X is not in Microsoft's bug check reference", bc.Value)
	}
	if t, ok := h.Time(); !ok {
		r.add(Warning, "system-time", "system time is not set")
	} else if t.Year() < 2000 || t.After(now.Add(24*time.Hour)) {
		r.add(Warning, "system-time", "system time %s is implausible (before 2000 or more than a day in the future)", t.Format(time.RFC3339))
	}
	// The AMD64 CONTEXT holds MxCsr twice; debuggers reject dumps where they differ.
	if h.Is64 && h.MachineImageType.Set && h.MachineImageType.Value == MachineAMD64 {
		ctx := f.raw[0x348:]
		flags := binary.LittleEndian.Uint32(ctx[0x30:])
		m1, m2 := binary.LittleEndian.Uint32(ctx[0x34:]), binary.LittleEndian.Uint32(ctx[0x118:])
		if flags != filler32 && m1 != filler32 && m1 != m2 {
			r.add(Warning, "context-mxcsr", "CONTEXT MxCsr 0x%X differs from the FltSave copy 0x%X: debuggers may reject the crashing CPU's context", m1, m2)
		}
	}
}

func fmtU32Dec(v U32) string {
	if !v.Set {
		return "not set"
	}
	return strconv.FormatUint(uint64(v.Value), 10)
}

// Attribute bits (DUMP_FILE_ATTRIBUTES).
const (
	AttrHiberCrash               = 1 << 0
	AttrDumpDevicePowerOff       = 1 << 1
	AttrInsufficientDumpfileSize = 1 << 2
	AttrKernelGeneratedTriage    = 1 << 3
	AttrLiveDumpGeneratedDump    = 1 << 4
	AttrDumpIsGeneratedOffline   = 1 << 5
	AttrFilterDumpFile           = 1 << 6
	AttrEarlyBootCrash           = 1 << 7
	AttrEncryptedDumpData        = 1 << 8
	AttrDecryptedDump            = 1 << 9
)

var attrNames = []string{"HiberCrash", "DumpDevicePowerOff", "InsufficientDumpfileSize",
	"KernelGeneratedTriageDump", "LiveDumpGeneratedDump", "DumpIsGeneratedOffline",
	"FilterDumpFile", "EarlyBootCrash", "EncryptedDumpData", "DecryptedDump"}

// AttributeNames returns the names of the bits set in a DUMP_FILE_ATTRIBUTES value;
// reserved bits appear as "bitN".
func AttributeNames(a uint32) []string {
	var out []string
	for b := 0; b < 32; b++ {
		if a&(1<<b) == 0 {
			continue
		}
		if b < len(attrNames) {
			out = append(out, attrNames[b])
		} else {
			out = append(out, "bit"+strconv.Itoa(b))
		}
	}
	return out
}

// checkAttributes adds attribute findings and reports whether the pages are encrypted.
func (f *File) checkAttributes(r *Report) (encrypted bool) {
	a := f.hdr.Attributes
	if !a.Set {
		return false
	}
	v := a.Value
	if v&AttrInsufficientDumpfileSize != 0 {
		r.add(Warning, "insufficient-dumpfile", "Windows marked the dump incomplete (InsufficientDumpfileSize): the pagefile or dump file was too small; enlarge it")
	}
	if v&AttrEncryptedDumpData != 0 && v&AttrDecryptedDump == 0 {
		r.add(Error, "encrypted", "the dump's pages are encrypted (EncryptedDumpData): decrypt it before analysis")
		encrypted = true
	}
	if v>>10 != 0 {
		r.add(Warning, "attributes-reserved", "reserved attribute bits are set (0x%X)", v&^0x3FF)
	}
	if v&AttrLiveDumpGeneratedDump != 0 && (!f.hdr.BugCheckCode.Set || f.hdr.BugCheckCode.Value != BugCheckLiveSystemDump) {
		r.add(Info, "live-dump-attribute", "LiveDumpGeneratedDump is set but the bug check is not LIVE_SYSTEM_DUMP (0x161)")
	}
	return encrypted
}

// memLayout is the validated page layout used by the size check and the deep read.
type memLayout struct {
	dataStart uint64
	stored    uint64
	runs      []Run // file order (run-based dumps)
	bitmap    *BitmapHeader
}

// checkLayout validates full, bitmap and RDMP layouts. It returns nil when the layout is
// unusable (the findings say why).
func (f *File) checkLayout(ctx context.Context, r *Report) (*memLayout, error) {
	h := &f.hdr
	hs := uint64(h.HeaderSize)
	switch t := h.DumpType; {
	case t == TypeFull:
		d := h.PhysicalMemory
		if d == nil {
			r.add(Error, "runs-missing", "full dump without a physical memory descriptor: the header's PhysicalMemoryBlock holds PAGE filler")
			return nil, nil
		}
		limit := 42
		if !h.Is64 {
			limit = 86
		}
		if int(d.NumberOfRuns) > len(d.Runs) {
			r.add(Error, "runs-count", "the descriptor claims %d memory runs, but at most %d fit in the header", d.NumberOfRuns, limit)
			return nil, nil
		}
		if int(d.NumberOfRuns) > limit {
			r.add(Warning, "runs-count", "%d memory runs: the last one overlaps the header padding (QEMU writes this, Windows does not)", d.NumberOfRuns)
		}
		var sum uint64
		for _, run := range d.Runs {
			if sum+run.PageCount < sum {
				sum = ^uint64(0)
				break
			}
			sum += run.PageCount
		}
		if sum != d.NumberOfPages {
			r.add(Error, "runs-pages", "the runs hold %d pages but the descriptor's NumberOfPages is %d", sum, d.NumberOfPages)
			return nil, nil
		}
		if _, err := newRunMapper(hs, d.Runs); err != nil {
			r.add(Error, "runs-invalid", "%s", strings.TrimPrefix(err.Error(), "dump: "))
			return nil, nil
		}
		m := &memLayout{dataStart: hs, stored: sum, runs: d.Runs}
		f.summariseRuns(r, m)
		return m, nil
	case t.isRDMP():
		_, runs, err := f.rdmpRanges()
		if err == nil {
			_, err = newRunMapper(f.rdmp.FirstPageOffset, runs)
		}
		if err != nil {
			if isIOError(err) {
				return nil, err
			}
			r.add(Error, "rdmp", "%s", strings.TrimPrefix(err.Error(), "dump: "))
			return nil, nil
		}
		var sum uint64
		for _, run := range runs {
			sum += run.PageCount
		}
		r.add(Info, "rdmp", "debugger-written dump (%s): pages are mapped, but no bug check produced it", t)
		m := &memLayout{dataStart: f.rdmp.FirstPageOffset, stored: sum, runs: runs}
		f.summariseRuns(r, m)
		return m, nil
	default: // bitmap
		b, err := f.checkBitmapHeader()
		if err != nil {
			code := "bitmap-header"
			if errors.Is(err, ErrTruncated) {
				code = "truncated"
			}
			r.add(Error, code, "%s", strings.TrimPrefix(err.Error(), "dump: "))
			return nil, nil
		}
		want := "SDMP"
		if t == TypeBitmapFull {
			want = "FDMP"
		}
		if b.Signature != want {
			r.add(Info, "bitmap-signature", "%s dump with a %s bitmap header (expected %s)", t, b.Signature, want)
		}
		m := &memLayout{dataStart: b.FirstPage, stored: b.PresentPages, bitmap: b}
		sum := &MemorySummary{DataStart: b.FirstPage, StoredPages: b.PresentPages, BitmapPages: b.Pages, Runs: []Run{}}
		var total uint64
		var cur Run
		inRun := false
		err = f.scanBitmap(b, func(block []byte, start uint64) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			total += popcountBits(block, uint64(len(block))*8)
			forEachRun(block, start, &cur, &inRun, func(run Run) {
				sum.RunCount++
				if len(sum.Runs) < MaxReportedRuns {
					sum.Runs = append(sum.Runs, run)
				}
			})
			return nil
		})
		if err != nil {
			return nil, err
		}
		if inRun {
			sum.RunCount++
			if len(sum.Runs) < MaxReportedRuns {
				sum.Runs = append(sum.Runs, cur)
			}
		}
		r.Memory = sum
		if total != b.PresentPages {
			r.add(Error, "bitmap-count", "the bitmap has %d pages set but the header counts %d present pages", total, b.PresentPages)
			return nil, nil
		}
		if err := f.checkBitmapTail(r, b); err != nil {
			return nil, err
		}
		return m, nil
	}
}

// checkBitmapTail notes pages in the last, partial byte of a bitmap whose length is not a
// multiple of 8: readers that size the bitmap as Pages/8 bytes (kdmp-parser, volatility3)
// do not see them.
func (f *File) checkBitmapTail(r *Report, b *BitmapHeader) error {
	if b.Pages%8 == 0 {
		return nil
	}
	var last [1]byte
	if err := readFull(f.r, last[:], f.hdr.HeaderSize+bitmapOffset+int64(b.Pages/8)); err != nil {
		return fmt.Errorf("dump: read bitmap: %w", err)
	}
	if n := bits.OnesCount8(last[0] & (byte(1)<<(b.Pages%8) - 1)); n > 0 {
		r.add(Info, "bitmap-tail", "the bitmap's length (%d pages) is not a multiple of 8: readers that take it as Pages/8 bytes (kdmp-parser, volatility3) miss its last %s", b.Pages, plural(uint64(n), "page"))
	}
	return nil
}

func isIOError(err error) bool {
	return !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated)
}

// forEachRun finds runs of set bits in block (whose first bit is page start), continuing
// the run in *cur across blocks.
func forEachRun(block []byte, start uint64, cur *Run, inRun *bool, emit func(Run)) {
	for i := 0; i < len(block); {
		if i+8 <= len(block) {
			w := binary.LittleEndian.Uint64(block[i:])
			if (w == 0 && !*inRun) || (w == ^uint64(0) && *inRun) {
				if *inRun {
					cur.PageCount += 64
				}
				i += 8
				continue
			}
		}
		c := block[i]
		for bit := 0; bit < 8; bit++ {
			set := c&(1<<bit) != 0
			switch {
			case set && *inRun:
				cur.PageCount++
			case set:
				*cur = Run{start + uint64(i)*8 + uint64(bit), 1}
				*inRun = true
			case *inRun:
				emit(*cur)
				*inRun = false
			}
		}
		i++
	}
}

func (f *File) summariseRuns(r *Report, m *memLayout) {
	s := &MemorySummary{DataStart: m.dataStart, StoredPages: m.stored, Runs: []Run{}}
	for _, run := range m.runs {
		if run.PageCount == 0 {
			continue
		}
		s.RunCount++
		if len(s.Runs) < MaxReportedRuns {
			s.Runs = append(s.Runs, run)
		}
	}
	r.Memory = s
}

// checkSize compares the file size with RequiredDumpSpace and the layout, and counts the
// pages a truncated file lacks.
func (f *File) checkSize(r *Report, m *memLayout) {
	h := &f.hdr
	size := uint64(f.size)
	rs := h.RequiredDumpSpace
	if !rs.Set {
		r.add(Warning, "required-size", "RequiredDumpSpace is not set")
	} else if rs.Value < uint64(h.HeaderSize) {
		r.add(Warning, "required-size", "RequiredDumpSpace 0x%X is implausible", rs.Value)
		rs.Set = false
	}
	var layoutEnd uint64
	if m != nil {
		end, ok := addMul(m.dataStart, m.stored, PageSize)
		if !ok {
			r.add(Error, "layout-size", "the layout's %d pages from 0x%X overflow a 64-bit offset", m.stored, m.dataStart)
			return
		}
		layoutEnd = uint64(end)
		if rs.Set && rs.Value != layoutEnd {
			r.add(Warning, "required-size", "RequiredDumpSpace is %d bytes but the page layout ends at %d", rs.Value, layoutEnd)
		}
		var inFile uint64
		if size > m.dataStart {
			inFile = min(m.stored, (size-m.dataStart)/PageSize)
		}
		if r.Memory != nil {
			r.Memory.PagesInFile = inFile
		}
		if inFile < m.stored {
			missing := m.stored - inFile
			addr, ok, err := f.pageAtIndex(m, inFile)
			where := ""
			if err == nil && ok {
				where = fmt.Sprintf(", from physical address 0x%X", addr*PageSize)
				if r.Memory != nil {
					r.Memory.FirstMissingAddress = &U64{addr * PageSize, true}
				}
			}
			r.add(Error, "truncated", "the file is %d bytes but its pages end at %d: %d of %d pages are missing%s (a copy in progress or an interrupted write?)",
				size, layoutEnd, missing, m.stored, where)
			return
		}
	}
	need := max(layoutEnd, uint64(h.HeaderSize))
	if rs.Set {
		need = max(need, rs.Value)
	}
	switch {
	case size < need:
		r.add(Error, "truncated", "the file is %d bytes but the dump needs %d (%d bytes missing)", size, need, need-size)
	case size > need:
		r.add(Warning, "trailing-data", "the file is %d bytes, %d more than the dump's %d: fine for pagefile.sys or a dedicated dump file (crashkey pull cuts the dump out), unexpected for MEMORY.DMP", size, size-need, need)
	}
}

// pageAtIndex returns the page frame number of the idx-th stored page in file order.
func (f *File) pageAtIndex(m *memLayout, idx uint64) (uint64, bool, error) {
	if m.bitmap == nil {
		for _, run := range m.runs {
			if idx < run.PageCount {
				return run.BasePage + idx, true, nil
			}
			idx -= run.PageCount
		}
		return 0, false, nil
	}
	var pfn uint64
	found := false
	stop := errors.New("stop")
	err := f.scanBitmap(m.bitmap, func(block []byte, start uint64) error {
		c := popcountBits(block, uint64(len(block))*8)
		if idx >= c {
			idx -= c
			return nil
		}
		for i, by := range block {
			n := uint64(bits.OnesCount8(by))
			if idx >= n {
				idx -= n
				continue
			}
			for bit := 0; bit < 8; bit++ {
				if by&(1<<bit) != 0 {
					if idx == 0 {
						pfn, found = start+uint64(i)*8+uint64(bit), true
						return stop
					}
					idx--
				}
			}
		}
		return stop
	})
	if err != nil && err != stop {
		return 0, false, err
	}
	return pfn, found, nil
}

// checkTriage validates the triage header.
func (f *File) checkTriage(r *Report) {
	t := f.triage
	size := uint64(f.size)
	if t == nil {
		r.add(Error, "truncated", "the file ends before the triage header at 0x%X", f.hdr.HeaderSize)
		return
	}
	if uint64(t.ValidOffset)+4 > size {
		r.add(Error, "triage-valid", "the triage ValidOffset 0x%X is beyond the end of the %d-byte file", t.ValidOffset, size)
	} else {
		var b [4]byte
		if err := readFull(f.r, b[:], int64(t.ValidOffset)); err == nil && binary.LittleEndian.Uint32(b[:]) != sigTRGD {
			r.add(Error, "triage-valid", "the triage valid marker at 0x%X is %q, want \"TRGD\": the triage dump was not completed", t.ValidOffset, printable(b[:]))
		}
	}
	if uint64(t.SizeOfDump) > size {
		r.add(Error, "truncated", "the triage dump is %d bytes (SizeOfDump) but the file only %d (%d bytes missing)", t.SizeOfDump, size, uint64(t.SizeOfDump)-size)
	} else if uint64(t.SizeOfDump) < uint64(f.hdr.HeaderSize) {
		r.add(Error, "triage-size", "SizeOfDump 0x%X is smaller than the header", t.SizeOfDump)
	}
	type span struct {
		name      string
		off, size uint32
	}
	spans := []span{
		{"ContextOffset", t.ContextOffset, 0}, {"ExceptionOffset", t.ExceptionOffset, 0},
		{"MmOffset", t.MmOffset, 0}, {"UnloadedDriversOffset", t.UnloadedDriversOffset, 0},
		{"PrcbOffset", t.PrcbOffset, 0}, {"ProcessOffset", t.ProcessOffset, 0},
		{"ThreadOffset", t.ThreadOffset, 0}, {"CallStackOffset", t.CallStackOffset, t.SizeOfCallStack},
		{"DriverListOffset", t.DriverListOffset, 0}, {"StringPoolOffset", t.StringPoolOffset, t.StringPoolSize},
		{"BrokenDriverOffset", t.BrokenDriverOffset, 0}, {"DebuggerDataOffset", t.DebuggerDataOffset, t.DebuggerDataSize},
		{"DataBlocksOffset", t.DataBlocksOffset, 0},
	}
	for _, s := range spans {
		if s.off == 0 {
			continue
		}
		if uint64(s.off)+uint64(s.size) > size || s.off >= uint32(min(size, 1<<32-1)) {
			r.add(Error, "triage-offset", "triage %s 0x%X (+%d bytes) points beyond the end of the %d-byte file", s.name, s.off, s.size, size)
		}
	}
	if size > uint64(t.SizeOfDump)+8 && t.SizeOfDump >= uint32(f.hdr.HeaderSize) {
		var b [8]byte
		if readFull(f.r, b[:], int64(t.SizeOfDump)) == nil && string(b[:]) == "DumpBlob" {
			r.add(Info, "secondary-data", "%d bytes of secondary data (DumpBlob) follow the triage dump", size-uint64(t.SizeOfDump))
		}
	}
}

// deepFindings turns the deep result into findings.
func (f *File) deepFindings(r *Report) {
	d := r.Deep
	if d.UnreadablePages > 0 {
		addrs := make([]string, len(d.FirstUnreadable))
		for i, a := range d.FirstUnreadable {
			addrs[i] = a.String()
		}
		r.add(Error, "unreadable-pages", "%d of %d pages could not be read (first at %s)", d.UnreadablePages, d.PagesRead+d.UnreadablePages, strings.Join(addrs, ", "))
	}
	if d.PagesRead > 0 {
		if d.ZeroPages == d.PagesRead {
			r.add(Warning, "all-zero", "all %d pages read are zero: the memory content was probably not written", d.PagesRead)
		} else {
			r.add(Info, "zero-pages", "%d of %d pages read are all zero (%.1f%%)", d.ZeroPages, d.PagesRead, 100*float64(d.ZeroPages)/float64(d.PagesRead))
		}
	}
}
