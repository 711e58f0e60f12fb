// Command mkdump writes a synthetic Windows kernel crash dump with dump.Write, for
// benchmarks and manual tests:
//
//	go run ./dump/internal/mkdump -type bitmap-kernel -size 2GiB -o /tmp/big.dmp
//
// The physical memory layout mimics a PC: pages 1-0x9E, then 1 MiB up to the requested
// size with a hole every 64 MiB, so that the bitmap has many runs.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/crashkey/crashkey/dump"
)

func main() {
	typ := flag.String("type", "bitmap-kernel", "full, summary, header, triage, bitmap-full or bitmap-kernel")
	size := flag.String("size", "64MiB", "approximate amount of page data (KiB, MiB, GiB suffixes)")
	out := flag.String("o", "", "output file (written atomically)")
	is32 := flag.Bool("32", false, "write a 32-bit (PAGEDUMP) header")
	bug := flag.String("bugcheck", "0xE2", "bug-check code or name")
	zeroEvery := flag.Int("zero-every", 8, "make every Nth page all-zero (0: none)")
	flag.Parse()
	if err := run(*typ, *size, *out, !*is32, *bug, *zeroEvery); err != nil {
		fmt.Fprintln(os.Stderr, "mkdump:", err)
		os.Exit(1)
	}
}

func run(typ, size, out string, is64 bool, bug string, zeroEvery int) error {
	if out == "" {
		return fmt.Errorf("-o is required")
	}
	types := map[string]dump.DumpType{"full": dump.TypeFull, "summary": dump.TypeSummary, "header": dump.TypeHeader,
		"triage": dump.TypeTriage, "bitmap-full": dump.TypeBitmapFull, "bitmap-kernel": dump.TypeBitmapKernel}
	t, ok := types[typ]
	if !ok {
		return fmt.Errorf("unknown -type %q", typ)
	}
	bytes, err := parseSize(size)
	if err != nil {
		return err
	}
	code, err := dump.ParseBugCheck(bug)
	if err != nil {
		return err
	}
	pages := bytes / dump.PageSize
	runs := []dump.Run{{BasePage: 1, PageCount: 0x9E}}
	const chunk = 64 << 20 / dump.PageSize
	maxRuns := uint64(40)
	for base, left := uint64(0x100), pages; left > 0; base += chunk + 16 {
		n := min(left, chunk)
		if t == dump.TypeFull && uint64(len(runs)) == maxRuns {
			n = left
		}
		runs = append(runs, dump.Run{BasePage: base, PageCount: n})
		left -= n
	}
	spec := dump.Spec{Type: t, Is64: is64, BugCheck: code, Processors: 4, Build: 19041,
		DirectoryTableBase: 0x1AD002, PsLoadedModuleList: 0xFFFFF8024A22A2D0, KdDebuggerDataBlock: 0xFFFFF8024A000B20,
		SystemTime: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), SystemUpTime: 90 * time.Minute, Runs: runs}
	src := dump.PatternPages(7)
	if zeroEvery > 0 {
		src = func(pfn uint64, page []byte) error {
			if pfn%uint64(zeroEvery) == 0 {
				return nil
			}
			dump.FillPattern(page, pfn, 7)
			return nil
		}
	}
	return dump.WriteFile(out, spec, src)
}

func parseSize(s string) (uint64, error) {
	mult := uint64(1)
	for suf, m := range map[string]uint64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
			break
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad -size %q: %w", s, err)
	}
	return v * mult, nil
}
