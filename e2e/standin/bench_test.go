package standin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/registry"
)

// BenchmarkWriteCrashDump writes the complete dump of a 256 MiB guest (16 MiB at the default
// scale) into a 32 MiB paging file in four extents of a raw disk file, fsync included: what
// the stand-in spends between the bug check and the reboot.
//
//	go test -run '^$' -bench WriteCrashDump -benchtime 10x ./e2e/standin
func BenchmarkWriteCrashDump(b *testing.B) {
	path := filepath.Join(b.TempDir(), "disk.raw")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(path, 40<<20); err != nil {
		b.Fatal(err)
	}
	const piece = 8 << 20
	pf := &DiskFile{Path: "pagefile.sys", Size: 4 * piece}
	for i := int64(0); i < 4; i++ {
		pf.Extents = append(pf.Extents, disk.Extent{FileOffset: i * piece, DiskOffset: (3-i)*piece + 1<<20, Length: piece})
	}
	m := &Machine{ProductType: "ServerNT", Crash: CrashConfig{Type: registry.DumpComplete, CrashDumpEnabled: 1}, Pagefile: pf}
	opts := DumpOptions{Processors: 2, Memory: []MemRange{{0, 0x9fc00}, {0x100000, 0xffe0000}}}
	p, err := PlanDump(m, 0xE2, [4]uint64{}, crashTime, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(p.Size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Write(path); err != nil {
			b.Fatal(err)
		}
	}
}
