// Command mkdump writes a synthetic Windows kernel crash dump with dump.Write, for
// benchmarks and manual tests:
//
//	go run ./dump/internal/mkdump -type bitmap-kernel -size 2GiB -o /tmp/big.dmp
//
// The physical memory layout mimics a PC: pages 1-0x9E, then 1 MiB up to the requested
// size with a hole every 64 MiB, so that the bitmap has many runs, and a last run of 3 pages
// after a hole, so that the highest page + 1 is not a multiple of 8.
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
	params := flag.String("params", "", "bug-check parameters: up to 4 comma-separated hex values")
	zeroEvery := flag.Int("zero-every", 8, "make every Nth page all-zero (0: none)")
	packed := flag.Bool("packed", false, "bitmap dumps: the older packed layout (first page right after the bitmap)")
	flag.Parse()
	if err := run(*typ, *size, *out, !*is32, *bug, *params, *zeroEvery, *packed); err != nil {
		fmt.Fprintln(os.Stderr, "mkdump:", err)
		os.Exit(1)
	}
}

func run(typ, size, out string, is64 bool, bug, params string, zeroEvery int, packed bool) error {
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
	var p [4]uint64
	if params != "" {
		fields := strings.Split(params, ",")
		if len(fields) > 4 {
			return fmt.Errorf("-params takes at most 4 values, got %d", len(fields))
		}
		for i, v := range fields {
			if p[i], err = strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(v), "0x"), 16, 64); err != nil {
				return fmt.Errorf("bad -params value %q: %w", v, err)
			}
		}
	}
	pages := bytes / dump.PageSize
	runs := []dump.Run{{BasePage: 1, PageCount: 0x9E}}
	const chunk = 64 << 20 / dump.PageSize
	maxRuns := uint64(39)
	base := uint64(0x100)
	for left := pages; left > 0; base += chunk + 16 {
		n := min(left, chunk)
		if t == dump.TypeFull && uint64(len(runs)) == maxRuns {
			n = left
		}
		runs = append(runs, dump.Run{BasePage: base, PageCount: n})
		left -= n
		if left == 0 {
			base += n
			break
		}
	}
	runs = append(runs, dump.Run{BasePage: (base+16)&^7 + 2, PageCount: 3}) // ends at 5 mod 8
	spec := dump.Spec{Type: t, Is64: is64, BugCheck: code, Params: p, Processors: 4, Build: 19041,
		DirectoryTableBase: 0x1AD002, PfnDataBase: 0xFFFFFA8000000000, PsLoadedModuleList: 0xFFFFF8024A22A2D0,
		PsActiveProcessHead: 0xFFFFF8024A21CD40, KdDebuggerDataBlock: 0xFFFFF8024A000B20,
		SystemTime: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), SystemUpTime: 90 * time.Minute, Runs: runs,
		PackedFirstPage: packed}
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
