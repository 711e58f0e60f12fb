package dump

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCheckFindings(t *testing.T) {
	full := func() []byte { return writeDump(t, baseSpec(TypeFull, true), nil) }
	bitmap := func() []byte { return writeDump(t, baseSpec(TypeBitmapKernel, true), nil) }
	full32 := func() []byte { return writeDump(t, baseSpec(TypeFull, false), nil) }
	bm := bitmap()
	first := int(open(t, bm).Bitmap().FirstPage)
	tests := []struct {
		name    string
		build   func() []byte
		opts    CheckOptions
		code    string
		sev     Severity
		verdict Verdict
		msg     string // substring of the finding's message
	}{
		{"full: truncated", func() []byte { return full()[:0x2000+0x9E*PageSize+5] }, CheckOptions{}, "truncated", Error, Corrupt,
			"131 of 289 pages are missing, from physical address 0x100000"},
		{"bitmap: truncated", func() []byte { return bitmap()[:first+0x100*PageSize] }, CheckOptions{}, "truncated", Error, Corrupt,
			"33 of 289 pages are missing, from physical address 0x162000"},
		{"bitmap: cut inside the bitmap", func() []byte { return bitmap()[:0x2040] }, CheckOptions{}, "truncated", Error, Corrupt, "beyond the end"},
		{"full 32-bit: cut to the header", func() []byte { return full32()[:0x1000] }, CheckOptions{}, "truncated", Error, Corrupt,
			"289 of 289 pages are missing, from physical address 0x1000"},
		{"full: trailing data", func() []byte { return append(full(), make([]byte, 0x3000)...) }, CheckOptions{}, "trailing-data", Warning, ValidWithWarnings, "12288 more"},
		{"full: run sum", func() []byte { b := full(); put64(b, 0x90, 7); return b }, CheckOptions{}, "runs-pages", Error, Corrupt, "NumberOfPages is 7"},
		{"full: descriptor filler", func() []byte { b := full(); copy(b[0x88:0x98], "PAGEPAGEPAGEPAGE"); return b }, CheckOptions{}, "runs-missing", Error, Corrupt, ""},
		{"full: too many runs", func() []byte { b := full(); put32(b, 0x88, 44); return b }, CheckOptions{}, "runs-count", Error, Corrupt, "claims 44"},
		{"full: overlapping runs", func() []byte { b := full(); put64(b, 0x98+16, 0x50); return b }, CheckOptions{}, "runs-invalid", Error, Corrupt, "overlap"},
		{"bitmap: count", func() []byte { b := bitmap(); put64(b, 0x2028, 290); return b }, CheckOptions{}, "bitmap-count", Error, Corrupt, "289 pages set"},
		{"bitmap: signature", func() []byte { b := bitmap(); copy(b[0x2000:], "XDMP"); return b }, CheckOptions{}, "bitmap-header", Error, Corrupt, "SDMP"},
		{"bitmap: huge page count", func() []byte { b := bitmap(); put64(b, 0x2030, 1<<62); return b }, CheckOptions{}, "bitmap-header", Error, Corrupt, "more than the"},
		{"bitmap: first page inside bitmap", func() []byte { b := bitmap(); put64(b, 0x2020, 0x2040); return b }, CheckOptions{}, "bitmap-header", Error, Corrupt, "overlaps the bitmap"},
		{"bitmap: FDMP in a kernel dump", func() []byte { b := bitmap(); copy(b[0x2000:], "FDMP"); return b }, CheckOptions{}, "bitmap-signature", Info, Valid, ""},
		{"required size differs", func() []byte { b := full(); put64(b, 0xFA0, 0x1000000); return b }, CheckOptions{}, "required-size", Warning, Corrupt, "page layout ends"},
		{"unknown dump type", func() []byte { b := full(); put32(b, 0xF98, 42); return b }, CheckOptions{}, "dump-type", Error, Corrupt, "42"},
		{"insufficient dump file", func() []byte { b := full(); put32(b, 0x1050, AttrInsufficientDumpfileSize); return b }, CheckOptions{}, "insufficient-dumpfile", Warning, ValidWithWarnings, ""},
		{"encrypted", func() []byte { b := full(); put32(b, 0x1050, AttrEncryptedDumpData); return b }, CheckOptions{Deep: true}, "encrypted", Error, Corrupt, "decrypt"},
		{"decrypted", func() []byte { b := full(); put32(b, 0x1050, AttrEncryptedDumpData|AttrDecryptedDump); return b }, CheckOptions{}, "", Info, Valid, ""},
		{"reserved attributes", func() []byte { b := full(); put32(b, 0x1050, 1<<20); return b }, CheckOptions{}, "attributes-reserved", Warning, ValidWithWarnings, "0x100000"},
		{"MxCsr mismatch", func() []byte { b := full(); put32(b, 0x348+0x118, 0x1F81); return b }, CheckOptions{}, "context-mxcsr", Warning, ValidWithWarnings, "0x1F81"},
		{"bug check 0", func() []byte { b := bitmap(); put32(b, 0x38, 0); return b }, CheckOptions{}, "bugcheck-zero", Warning, ValidWithWarnings, ""},
		{"0xE2 with parameters", func() []byte { b := full(); put64(b, 0x50, 5); return b }, CheckOptions{}, "bugcheck-parameters", Warning, ValidWithWarnings, "parameter 3"},
		{"bug check not set", func() []byte { b := full(); copy(b[0x38:], "PAGE"); return b }, CheckOptions{}, "bugcheck-not-set", Warning, ValidWithWarnings, ""},
		{"expected NMI", func() []byte { return full() }, CheckOptions{ExpectBugCheck: ptr(uint32(0x80))}, "bugcheck-mismatch", Warning, ValidWithWarnings,
			"bug check is 0x000000E2 (MANUALLY_INITIATED_CRASH), expected 0x00000080 (NMI_HARDWARE_FAILURE)"},
		{"live dump", func() []byte {
			b := full()
			put32(b, 0x38, 0x161)
			put32(b, 0x1050, AttrLiveDumpGeneratedDump)
			return b
		}, CheckOptions{}, "live-dump", Info, Valid, ""},
		{"unlisted bug check", func() []byte { b := full(); put32(b, 0x38, 0x12345); return b }, CheckOptions{}, "bugcheck-unknown", Info, Valid, ""},
		{"time before 2000", func() []byte {
			b := full()
			put64(b, 0xFA8, ToFileTime(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)))
			return b
		}, CheckOptions{}, "system-time", Warning, ValidWithWarnings, "1999"},
		{"time in the future", func() []byte { b := full(); put64(b, 0xFA8, ToFileTime(when.Add(72*time.Hour))); return b }, CheckOptions{}, "system-time", Warning, ValidWithWarnings, ""},
		{"no processors", func() []byte { b := full(); put32(b, 0x34, 0); return b }, CheckOptions{}, "processors", Warning, ValidWithWarnings, "is 0"},
		{"ARM64 is fine", func() []byte { b := full(); put32(b, 0x30, MachineARM64); put32(b, 0x348+0x118, 7); return b }, CheckOptions{}, "", Info, Valid, ""},
		{"i386 in a 64-bit header", func() []byte { b := full(); put32(b, 0x30, MachineI386); return b }, CheckOptions{}, "machine", Warning, ValidWithWarnings, "0x14C"},
		{"checked build", func() []byte { b := full(); put32(b, 0x8, 0xC); return b }, CheckOptions{}, "", Info, Valid, ""},
		{"43 runs as QEMU writes them", func() []byte {
			runs := make([]Run, 42)
			for i := range runs {
				runs[i] = Run{uint64(2 * i), 1}
			}
			spec := baseSpec(TypeFull, true)
			spec.Runs = runs
			b := writeDump(t, spec, nil)
			put32(b, 0x88, 43)
			put64(b, 0x90, 43)
			put64(b, 0x338, 0x1000) // run 43 reaches into the padding at 0x344
			put64(b, 0x340, 1)
			put64(b, 0xFA0, uint64(len(b))+PageSize)
			return append(b, make([]byte, PageSize)...)
		}, CheckOptions{}, "runs-count", Warning, ValidWithWarnings, "43 memory runs"},
		{"odd major version", func() []byte { b := full(); put32(b, 0x8, 3); return b }, CheckOptions{}, "major-version", Warning, ValidWithWarnings, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.build()
			r := check(t, open(t, b), tt.opts)
			if r.Verdict != tt.verdict {
				t.Errorf("verdict %v, want %v; findings %+v", r.Verdict, tt.verdict, r.Findings)
			}
			if tt.code == "" {
				for _, f := range r.Findings {
					if f.Severity != Info {
						t.Errorf("unexpected finding %+v", f)
					}
				}
				return
			}
			for _, f := range r.Findings {
				if f.Code == tt.code && f.Severity == tt.sev {
					if !strings.Contains(f.Message, tt.msg) {
						t.Errorf("message %q lacks %q", f.Message, tt.msg)
					}
					return
				}
			}
			t.Errorf("no %v %q finding in %+v", tt.sev, tt.code, r.Findings)
		})
	}
}

func TestCheckExpectation(t *testing.T) {
	f := open(t, writeDump(t, baseSpec(TypeFull, true), nil))
	r := check(t, f, CheckOptions{ExpectBugCheck: ptr(uint32(0xE2))})
	if !r.OK() || !r.Expectation.Match || r.Expectation.ExpectedName != "MANUALLY_INITIATED_CRASH" {
		t.Errorf("match: %+v", r.Expectation)
	}
	r = check(t, f, CheckOptions{ExpectBugCheck: ptr(uint32(0x80))})
	if r.OK() || r.Expectation.Match || r.Verdict == Corrupt {
		t.Errorf("mismatch: ok %v, %+v, verdict %v", r.OK(), r.Expectation, r.Verdict)
	}
}

// faultyReader fails reads that touch [badFrom, badTo).
type faultyReader struct {
	r              io.ReaderAt
	badFrom, badTo int64
}

var errMedium = errors.New("medium error")

func (f faultyReader) ReadAt(p []byte, off int64) (int, error) {
	if off < f.badTo && off+int64(len(p)) > f.badFrom {
		return 0, errMedium
	}
	return f.r.ReadAt(p, off)
}

// slowReader delays reads that start in [from, to).
type slowReader struct {
	r        io.ReaderAt
	from, to int64
}

func (s slowReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.from && off < s.to {
		time.Sleep(20 * time.Millisecond)
	}
	return s.r.ReadAt(p, off)
}

func TestCheckDeep(t *testing.T) {
	zeroOdd := func(pfn uint64, page []byte) error {
		if pfn%2 == 1 {
			return nil
		}
		FillPattern(page, pfn, 3)
		return nil
	}
	spec := baseSpec(TypeBitmapFull, true)
	b := writeDump(t, spec, zeroOdd)
	f := open(t, b)
	var calls int
	var last, total int64
	r := check(t, f, CheckOptions{Deep: true, Progress: func(d, tot int64) { calls++; last, total = d, tot }})
	// Pages 1..0x9E: 79 odd; 0x100..0x17F: 64 odd; 0x1000..0x1002: 1 odd.
	if r.Deep.PagesRead != 289 || r.Deep.ZeroPages != 79+64+1 || r.Deep.UnreadablePages != 0 {
		t.Errorf("deep %+v", r.Deep)
	}
	if calls == 0 || last != total || total != 289*PageSize {
		t.Errorf("progress: %d calls, last %d of %d", calls, last, total)
	}
	if !hasFinding(r, "zero-pages", Info) || r.Verdict != Valid {
		t.Errorf("findings %+v", r.Findings)
	}

	// Pages 0x100 and 0x101 (file index 0x9E, 0x9F) cannot be read.
	first := int64(f.Bitmap().FirstPage)
	fr := faultyReader{bytes.NewReader(b), first + 0x9E*PageSize + 100, first + 0xA0*PageSize - 100}
	f2, err := Open(fr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	r = check(t, f2, CheckOptions{Deep: true})
	if r.Deep.UnreadablePages != 2 || r.Deep.PagesRead != 287 || r.Verdict != Corrupt ||
		len(r.Deep.FirstUnreadable) != 2 || r.Deep.FirstUnreadable[0].Value != 0x100000 || r.Deep.FirstUnreadable[1].Value != 0x101000 {
		t.Errorf("unreadable: deep %+v verdict %v", r.Deep, r.Verdict)
	}
	if !hasFinding(r, "unreadable-pages", Error) {
		t.Errorf("findings %+v", r.Findings)
	}

	// Unreadable pages in several chunks, whose reads the workers finish out of order (the
	// first chunk is slow): FirstUnreadable lists the first ones in file order.
	fr = faultyReader{slowReader{bytes.NewReader(b), first, first + deepChunk}, first + 0x30*PageSize, first + 0x110*PageSize}
	f4, err := Open(fr, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	r = check(t, f4, CheckOptions{Deep: true})
	if r.Deep.UnreadablePages != 0xE0 || r.Deep.PagesRead != 289-0xE0 || len(r.Deep.FirstUnreadable) != maxListed {
		t.Fatalf("unreadable: deep %+v", r.Deep)
	}
	for i, a := range r.Deep.FirstUnreadable {
		if want := uint64(0x31+i) * PageSize; a.Value != want { // file index 0x30 is PFN 0x31
			t.Errorf("FirstUnreadable[%d] = %v, want 0x%X", i, a, want)
		}
	}

	// A bitmap that cannot be read is an I/O error, not a finding.
	f3, err := Open(faultyReader{bytes.NewReader(b), 0x2100, 0x2101}, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f3.Check(context.Background(), CheckOptions{}); !errors.Is(err, errMedium) {
		t.Errorf("bitmap I/O error: %v", err)
	}
}

func TestCheckCancel(t *testing.T) {
	f := open(t, writeDump(t, baseSpec(TypeFull, true), nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Check(ctx, CheckOptions{Deep: true}); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context = %v", err)
	}
}

func TestBugCheckNames(t *testing.T) {
	if n := len(BugCheckNames()); n != 380 {
		t.Errorf("%d names, want 379 + LIVE_SYSTEM_DUMP", n)
	}
	for code, name := range map[uint32]string{0xE2: "MANUALLY_INITIATED_CRASH", 0x80: "NMI_HARDWARE_FAILURE",
		0x161: "LIVE_SYSTEM_DUMP", 0xDEADDEAD: "MANUALLY_INITIATED_CRASH1", 0x1: "APC_INDEX_MISMATCH", 0x12345: ""} {
		if got := BugCheckName(code); got != name {
			t.Errorf("BugCheckName(0x%X) = %q, want %q", code, got, name)
		}
	}
	tests := []struct {
		in   string
		want uint32
		err  bool
	}{
		{"0xE2", 0xE2, false}, {"0x000000e2", 0xE2, false}, {"e2", 0xE2, false}, {"E2", 0xE2, false},
		{"80", 0x80, false}, {"0n226", 0xE2, false}, {"0n128", 0x80, false}, {"161", 0x161, false}, {"0x80", 0x80, false},
		{"MANUALLY_INITIATED_CRASH", 0xE2, false}, {"manually_initiated_crash", 0xE2, false},
		{" NMI_HARDWARE_FAILURE ", 0x80, false}, {"live_system_dump", 0x161, false}, {"DEADDEAD", 0xDEADDEAD, false},
		{"", 0, true}, {"0x", 0, true}, {"0x100000000", 0, true}, {"NOT_A_BUGCHECK", 0, true}, {"-1", 0, true}, {"0xZZ", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseBugCheck(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseBugCheck(%q) = 0x%X, %v", tt.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrUnknownBugCheck) {
			t.Errorf("ParseBugCheck(%q) error %v does not wrap ErrUnknownBugCheck", tt.in, err)
		}
	}
}

// TestReportJSONRoundTrip: a report's JSON decodes back into a Report with the same header.
func TestReportJSONRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, baseSpec(TypeFull, true), nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := f.Check(context.Background(), CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, b)
	}
	if back.Header == nil || back.Header.BugCheckCode != rep.Header.BugCheckCode || back.Header.DirectoryTableBase != rep.Header.DirectoryTableBase || back.Verdict != rep.Verdict {
		t.Errorf("round trip: %+v vs %+v", back.Header, rep.Header)
	}
}

// TestBugCheckVariants: the flagged "_M" codes match their base code, not the other way
// round, and reports show both.
func TestBugCheckVariants(t *testing.T) {
	for _, tt := range []struct {
		want, got uint32
		match     bool
	}{
		{0x7E, 0x7E, true}, {0x7E, 0x1000007E, true}, {0x1000007E, 0x1000007E, true}, {0x1000007E, 0x7E, false},
		{0x8E, 0x1000008E, true}, {0xEA, 0x100000EA, true}, {0x7F, 0x1000007F, true},
		{0xA, 0x1000000A, true},   // IRQL_NOT_LESS_OR_EQUAL_M is not in Microsoft's list but is the same bug check
		{0x7E, 0x1000008E, false}, // another base
		{0x7E, 0x3000007E, false}, // other high bits are not the variant flag
		{0, 0x10000000, false},    // no base
		{0xCEADDEAD, 0xDEADDEAD, false},
		{0x12345, 0x10012345, false}, // base not a bug check
	} {
		if got := BugCheckMatches(tt.want, tt.got); got != tt.match {
			t.Errorf("BugCheckMatches(0x%X, 0x%X) = %v, want %v", tt.want, tt.got, got, tt.match)
		}
	}
	for code, want := range map[uint32]string{
		0x1000007E: "0x1000007E (SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M; base 0x0000007E SYSTEM_THREAD_EXCEPTION_NOT_HANDLED)",
		0x1000000A: "0x1000000A (IRQL_NOT_LESS_OR_EQUAL_M; base 0x0000000A IRQL_NOT_LESS_OR_EQUAL)",
		0x7E:       "0x0000007E (SYSTEM_THREAD_EXCEPTION_NOT_HANDLED)",
		0xDEADDEAD: "0xDEADDEAD (MANUALLY_INITIATED_CRASH1)",
		0x10012345: "0x10012345",
	} {
		if got := FormatBugCheck(code); got != want {
			t.Errorf("FormatBugCheck(0x%X) = %q, want %q", code, got, want)
		}
	}
	for in, want := range map[string]uint32{"SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M": 0x1000007E,
		"kernel_mode_exception_not_handled_m": 0x1000008E, "IRQL_NOT_LESS_OR_EQUAL_M": 0x1000000A,
		"SYSTEM_THREAD_EXCEPTION_NOT_HANDLED": 0x7E} {
		if got, err := ParseBugCheck(in); err != nil || got != want {
			t.Errorf("ParseBugCheck(%q) = 0x%X, %v; want 0x%X", in, got, err, want)
		}
	}
	if _, err := ParseBugCheck("MANUALLY_INITIATED_CRASH1_M"); err == nil {
		t.Error("ParseBugCheck accepted the _M variant of a code with high bits set")
	}

	// The hand-built triage dump holds 0x1000007E, as the public x64 sample does.
	f := open(t, triageDump())
	r := check(t, f, CheckOptions{ExpectBugCheck: ptr(uint32(0x7E))})
	if !r.OK() || r.Expectation == nil || !r.Expectation.Match || !r.Expectation.Variant || hasFinding(r, "bugcheck-mismatch", Warning) {
		t.Errorf("expect 0x7E on 0x1000007E: ok %v expectation %+v findings %+v", r.OK(), r.Expectation, r.Findings)
	}
	if r.BugCheck.BaseCode == nil || *r.BugCheck.BaseCode != 0x7E || r.BugCheck.BaseName != "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED" || r.BugCheck.BaseCodeHex != "0x0000007E" {
		t.Errorf("bug check %+v", r.BugCheck)
	}
	var text strings.Builder
	if err := r.WriteText(&text, "triage.dmp"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Bug check:            0x1000007E (SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M; base 0x0000007E SYSTEM_THREAD_EXCEPTION_NOT_HANDLED)",
		"Expected bug check:   0x0000007E (SYSTEM_THREAD_EXCEPTION_NOT_HANDLED): matches (through its _M variant)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"base_code":126`, `"base_code_hex":"0x0000007E"`, `"variant":true`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}
	if r := check(t, f, CheckOptions{ExpectBugCheck: ptr(uint32(0x1000007E))}); !r.OK() || r.Expectation.Variant {
		t.Errorf("expect 0x1000007E on itself: %+v", r.Expectation)
	}
	if r := check(t, f, CheckOptions{ExpectBugCheck: ptr(uint32(0x8E))}); r.OK() || !hasFinding(r, "bugcheck-mismatch", Warning) {
		t.Errorf("expect 0x8E on 0x1000007E: %+v", r.Expectation)
	}
	// Expecting the _M code on a dump holding the base code fails.
	b := triageDump()
	put32(b, 0x38, 0x7E)
	if r := check(t, open(t, b), CheckOptions{ExpectBugCheck: ptr(uint32(0x1000007E))}); r.OK() || r.BugCheck.BaseCode != nil {
		t.Errorf("expect 0x1000007E on 0x7E: %+v %+v", r.Expectation, r.BugCheck)
	}
}
