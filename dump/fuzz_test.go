package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
)

func fuzzSeeds(t testing.TB) [][]byte {
	small := []Run{{1, 2}, {0x10, 1}, {0x200, 1}}
	var seeds [][]byte
	for _, typ := range []DumpType{TypeFull, TypeSummary, TypeHeader, TypeTriage, TypeBitmapFull, TypeBitmapKernel} {
		for _, is64 := range []bool{true, false} {
			spec := baseSpec(typ, is64)
			spec.Runs = small
			spec.TriageSize = 0x3000
			seeds = append(seeds, writeDump(t, spec, PatternPages(1)))
			if typ == TypeBitmapFull || typ == TypeBitmapKernel {
				// The older packed layout: first page right after a bitmap of Pages%8 != 0.
				spec.PackedFirstPage = true
				spec.BitmapPages = 0x203
				seeds = append(seeds, writeDump(t, spec, PatternPages(1)))
			}
		}
	}
	seeds = append(seeds, triageDump(), bitmapDump(5, "FDMP", 0x3000), bitmapDump(6, "SDMP", 0x2078))
	return seeds
}

// FuzzOpenCheck opens, checks (deeply) and reads arbitrary data. Invariants: Open returns a
// file XOR an error; Check on an in-memory file never fails (there are no I/O errors) and
// always returns a verdict; physical reads return data XOR an error; nothing panics.
func FuzzOpenCheck(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("MDMP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		df, err := Open(bytes.NewReader(data), int64(len(data)))
		if (df == nil) == (err == nil) {
			t.Fatalf("Open = %v, %v: want exactly one", df, err)
		}
		if err != nil {
			if !errors.Is(err, ErrNotDump) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("Open error %v wraps no sentinel", err)
			}
			return
		}
		if ds := df.DumpSize(); ds < df.Header().HeaderSize {
			t.Fatalf("DumpSize %d below the header size", ds)
		}
		r, err := df.Check(context.Background(), CheckOptions{Deep: true, ExpectBugCheck: ptr(uint32(0xE2))})
		if err != nil || r == nil {
			t.Fatalf("Check = %v, %v", r, err)
		}
		if (r.Verdict == Corrupt) != hasSeverity(r, Error) {
			t.Fatalf("verdict %v disagrees with findings %+v", r.Verdict, r.Findings)
		}
		if err := r.WriteText(&bytes.Buffer{}, "fuzz"); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 2*PageSize)
		for _, a := range []uint64{0, 0x1000, 0x1800, 0x10000, 0x200000, 1 << 40, ^uint64(0) - 10} {
			n, err := df.ReadPhysical(p, a)
			if err == nil && n != len(p) || err != nil && n == len(p) {
				t.Fatalf("ReadPhysical(0x%X) = %d, %v", a, n, err)
			}
		}
	})
}

func hasSeverity(r *Report, s Severity) bool {
	for _, f := range r.Findings {
		if f.Severity == s {
			return true
		}
	}
	return false
}

// TestHugeClaims checks that headers claiming huge counts and sizes are rejected without
// allocating memory in proportion to the claims.
func TestHugeClaims(t *testing.T) {
	full := writeDump(t, Spec{Type: TypeFull, Is64: true, Runs: []Run{{1, 2}}}, nil)
	bm := writeDump(t, Spec{Type: TypeBitmapKernel, Is64: true, Runs: []Run{{1, 2}}}, nil)
	// onBitmap returns a mutator that sets the u64 at off of a copy of the bitmap dump.
	onBitmap := func(off int, v uint64) func([]byte) []byte {
		return func([]byte) []byte {
			b := append([]byte(nil), bm...)
			put64(b, off, v)
			return b
		}
	}
	// rdmp turns the full dump into an RDMP (type 10) dump with the given metadata size and
	// first-page offset.
	rdmp := func(metadata, firstPage uint64) func([]byte) []byte {
		return func(b []byte) []byte {
			put32(b, 0xF98, 10)
			b = append(b[:0x2000], make([]byte, 0x100)...)
			put32(b, 0x2000, 0x40)
			copy(b[0x2004:], "RDMPDUMP")
			put64(b, 0x2010, metadata)
			put64(b, 0x2018, firstPage)
			return b
		}
	}
	tests := []struct {
		name string
		mut  func(b []byte) []byte
	}{
		{"runs 2^32-1", func(b []byte) []byte { put32(b, 0x88, 0xFFFFFFFF); return b }},
		{"run of 2^63 pages", func(b []byte) []byte { put64(b, 0x98+8, 1<<63); put64(b, 0x90, 1<<63); return b }},
		{"pages 2^64-1", func(b []byte) []byte { put64(b, 0x90, ^uint64(0)); return b }},
		{"required 2^63-1", func(b []byte) []byte { put64(b, 0xFA0, 1<<63-1); return b }},
		{"bitmap pages 2^64-1", onBitmap(0x2030, ^uint64(0))},
		{"bitmap present 2^64-1", onBitmap(0x2028, ^uint64(0))},
		{"bitmap first page 2^64-1", onBitmap(0x2020, ^uint64(0))},
		{"triage sizes", func([]byte) []byte {
			b := triageDump()
			for off := 0x2000; off < 0x2080; off += 4 {
				put32(b, off, 0xFFFFFFF0)
			}
			return b
		}},
		{"rdmp metadata 2^64-1", rdmp(^uint64(0), 0x2040)},
		{"rdmp metadata 2^62, consistent first page", rdmp(1<<62, 1<<62-0x20+0x2040)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mut(append([]byte(nil), full...))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			df, err := Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			r, err := df.Check(context.Background(), CheckOptions{Deep: true})
			if err != nil {
				t.Fatal(err)
			}
			df.ReadPhysical(make([]byte, 16), 0x1000)
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
			if r.Verdict != Corrupt {
				t.Errorf("verdict %v, findings %+v", r.Verdict, r.Findings)
			}
		})
	}
}

// FuzzParseBugCheck: a code XOR an error; a parsed code round-trips through its hex form and
// its name.
func FuzzParseBugCheck(f *testing.F) {
	for _, s := range []string{"0xE2", "e2", "226", "0n226", "MANUALLY_INITIATED_CRASH", "nmi_hardware_failure", "DEADDEAD", "", "0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		code, err := ParseBugCheck(s)
		if err != nil {
			if code != 0 || !errors.Is(err, ErrUnknownBugCheck) {
				t.Fatalf("ParseBugCheck(%q) = 0x%X, %v", s, code, err)
			}
			return
		}
		if back, err := ParseBugCheck(fmt.Sprintf("0x%X", code)); err != nil || back != code {
			t.Fatalf("hex round trip of 0x%X: 0x%X, %v", code, back, err)
		}
		if n := BugCheckName(code); n != "" {
			if back, err := ParseBugCheck(n); err != nil || back != code {
				t.Fatalf("name round trip of %s: 0x%X, %v", n, back, err)
			}
		}
	})
}
