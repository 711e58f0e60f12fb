package analyze

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/crashkey/crashkey/dump"
)

// countingReader counts the reads and bytes that reach the file.
type countingReader struct {
	r            io.ReaderAt
	reads, bytes atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	c.bytes.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

// sparseBitmapDump writes a 2 GiB bitmap kernel dump of the x64 scene as a sparse file: the
// header (dump-format.md §3), the SDMP header and bitmap (§9) with every page of the first
// 2 GiB present, FirstPage not page-aligned as in real dumps, and only the scene's pages
// written; the rest are holes.
func sparseBitmapDump(tb testing.TB) (*os.File, int64, *scene) {
	tb.Helper()
	s := x64Scene(4, 0xFFFFF80000000000)
	const pages = 0x80000 // 2 GiB
	hdr := buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head,
		bugcheck: 0xD1, params: [4]uint64{0, 2, 0, s.drv + 0x1234}, ip: s.drv + 0x1234}, physMem{})[:0x2000]
	le := binary.LittleEndian
	le.PutUint32(hdr[0xF98:], 6)                 // bitmap kernel
	copy(hdr[0x88:], []byte("PAGEPAGEPAGEPAGE")) // no run descriptor
	first := uint64(0x2000 + 0x38 + pages/8)
	size := int64(first + pages*0x1000)
	le.PutUint64(hdr[0xFA0:], uint64(size))
	sd := make([]byte, 0x38)
	copy(sd, "SDMPDUMP")
	le.PutUint64(sd[0x20:], first)
	le.PutUint64(sd[0x28:], pages)
	le.PutUint64(sd[0x30:], pages)
	bitmap := make([]byte, pages/8)
	for i := range bitmap {
		bitmap[i] = 0xFF
	}
	path := filepath.Join(tb.TempDir(), "MEMORY.DMP")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	for _, part := range []struct {
		b   []byte
		off int64
	}{{hdr, 0}, {sd, 0x2000}, {bitmap, 0x2038}} {
		if _, err := f.WriteAt(part.b, part.off); err != nil {
			tb.Fatal(err)
		}
	}
	for pfn, p := range s.mem {
		if pfn < pages {
			if _, err := f.WriteAt(p, int64(first+pfn*0x1000)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return f, size, s
}

// TestWalkReadsOnlyNeededPages: on a 2 GiB bitmap dump the analysis reads the header, the
// bitmap blocks it needs and the pages of the page tables, the list, the names and the PE
// headers: a few hundred KiB, not the dump.
func TestWalkReadsOnlyNeededPages(t *testing.T) {
	f, size, _ := sparseBitmapDump(t)
	c := &countingReader{r: f}
	res, err := AnalyzeFile(context.Background(), c, size, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// hal.dll's 1 GiB page lies at 1 GiB, inside the bitmap: all four modules are found.
	if len(res.Modules) != 4 || res.Culprit == nil || res.Culprit.Module != "mydriver.sys" {
		t.Fatalf("modules %d, culprit %+v, problems %q", len(res.Modules), res.Culprit, res.Problems)
	}
	if got := c.bytes.Load(); got > 512<<10 {
		t.Errorf("the analysis read %d bytes of a %d-byte dump", got, size)
	}
	t.Logf("%d reads, %d bytes, %d physical reads", c.reads.Load(), c.bytes.Load(), res.PageReads)
}

// BenchmarkAnalyzeSparseBitmap measures the whole analysis (open, module walk, identities,
// attribution) of a 2 GiB bitmap dump, reporting the file reads and bytes per run; compare
// its ns/op with BenchmarkOpenCheck, the check it is added to (goal: +50 ms at most).
func BenchmarkAnalyzeSparseBitmap(b *testing.B) {
	f, size, _ := sparseBitmapDump(b)
	c := &countingReader{r: f}
	b.ReportAllocs()
	var phys int
	for b.Loop() {
		res, err := AnalyzeFile(context.Background(), c, size, Options{})
		if err != nil || len(res.Modules) != 4 {
			b.Fatal(err, res)
		}
		phys = res.PageReads
	}
	b.ReportMetric(float64(c.reads.Load())/float64(b.N), "reads/op")
	b.ReportMetric(float64(c.bytes.Load())/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(phys), "phys-reads/op")
}

// BenchmarkOpenCheck is the header check of the same dump, without --deep.
func BenchmarkOpenCheck(b *testing.B) {
	f, size, _ := sparseBitmapDump(b)
	for b.Loop() {
		d, err := dump.Open(f, size)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Check(context.Background(), dump.CheckOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
