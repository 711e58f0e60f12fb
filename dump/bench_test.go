package dump

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// benchDump writes a bitmap kernel dump of about 64 MiB of pages to a temporary file.
func benchDump(b *testing.B) (*os.File, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.dmp")
	runs := []Run{{1, 0x9E}, {0x100, 0x2000}, {0x2200, 0x2000}}
	if err := WriteFile(path, Spec{Type: TypeBitmapKernel, Is64: true, BugCheck: 0xE2, Processors: 2, Runs: runs, SystemTime: when}, nil); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	return f, st.Size()
}

// BenchmarkCheckDeep measures Check with Deep on a 64 MiB bitmap dump in the page cache;
// compare its MB/s with BenchmarkSequentialRead. scripts/bench/check-deep.sh runs the same
// comparison on a 2 GiB dump through the CLI.
func BenchmarkCheckDeep(b *testing.B) {
	f, size := benchDump(b)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		d, err := Open(f, size)
		if err != nil {
			b.Fatal(err)
		}
		r, err := d.Check(context.Background(), CheckOptions{Deep: true})
		if err != nil || r.Verdict != Valid {
			b.Fatalf("%v %v", err, r.Findings)
		}
	}
}

// BenchmarkSequentialRead reads the same file with 1 MiB reads: the baseline.
func BenchmarkSequentialRead(b *testing.B) {
	f, size := benchDump(b)
	b.SetBytes(size)
	buf := make([]byte, 1<<20)
	for b.Loop() {
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := f.ReadAt(buf, off); err != nil && off+int64(len(buf)) < size {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkOpen measures decoding a header, which pull does for every candidate file.
func BenchmarkOpen(b *testing.B) {
	f, size := benchDump(b)
	for b.Loop() {
		if _, err := Open(f, size); err != nil {
			b.Fatal(err)
		}
	}
}
