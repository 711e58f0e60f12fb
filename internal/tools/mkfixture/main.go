// Command mkfixture writes the dump-shaped files that disk/testdata/mkfixtures.sh and
// scripts/bench/pull.sh put into NTFS test images. It uses the dump package's writer, so
// the files are what crashkey's own dump reader expects.
//
//	mkfixture -o MEMORY.DMP -type full -bugcheck 0xE2 -pages 300 -seed 1 -time 2026-11-20T10:00:00Z
//	mkfixture -o pagefile.sys -type full -pages 100 -tail 1048576       (a pagefile: dump + other data)
//	mkfixture -o Mini.dmp -type triage -triage-size 65536 -secondary 4096
//	mkfixture -o junk.bin -junk 65536 -seed 3                           (deterministic non-dump bytes)
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/crashkey/crashkey/dump"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixture:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("mkfixture", flag.ContinueOnError)
	out := fl.String("o", "", "output file (required)")
	typ := fl.String("type", "full", "dump type: full, bitmap, triage")
	bug := fl.String("bugcheck", "0xE2", "bug-check code (hex or name)")
	pages := fl.Uint64("pages", 64, "physical pages stored (full and bitmap dumps)")
	seed := fl.Uint64("seed", 1, "seed of the page contents")
	ts := fl.String("time", "2026-11-20T10:00:00Z", "SystemTime (RFC 3339)")
	tail := fl.Int64("tail", 0, "bytes of non-dump data appended after the dump (a pagefile's other pages)")
	triageSize := fl.Uint("triage-size", 0x10000, "SizeOfDump of a triage dump")
	secondary := fl.Int("secondary", 0, "bytes of DumpBlob secondary data after a triage dump")
	junk := fl.Int64("junk", -1, "write this many deterministic non-dump bytes instead of a dump")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-o is required")
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if *junk >= 0 {
		err = writeJunk(w, *junk, *seed)
	} else {
		err = writeDump(w, *typ, *bug, *pages, *seed, *ts, uint32(*triageSize), *secondary)
		if err == nil {
			err = writeJunk(w, *tail, *seed+1000)
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeDump(w io.Writer, typ, bug string, pages, seed uint64, ts string, triageSize uint32, secondary int) error {
	code, err := dump.ParseBugCheck(bug)
	if err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return err
	}
	spec := dump.Spec{Is64: true, BugCheck: code, Processors: 2, SystemTime: t, SystemUpTime: 90 * time.Minute,
		KdDebuggerDataBlock: 0xFFFFF80000000000 | seed<<12, DirectoryTableBase: 0x1AA000}
	switch typ {
	case "full":
		spec.Type = dump.TypeFull
		spec.Runs = []dump.Run{{BasePage: 1, PageCount: pages / 2}, {BasePage: 0x100, PageCount: pages - pages/2}}
	case "bitmap":
		spec.Type = dump.TypeBitmapKernel
		spec.Runs = []dump.Run{{BasePage: 1, PageCount: pages}}
	case "triage":
		spec.Type = dump.TypeTriage
		spec.TriageSize = triageSize
		spec.SecondaryData = secondary
	default:
		return fmt.Errorf("unknown -type %q (full, bitmap, triage)", typ)
	}
	return dump.Write(w, spec, dump.PatternPages(seed))
}

// writeJunk writes n bytes of xorshift noise: incompressible and never a dump signature.
func writeJunk(w io.Writer, n int64, seed uint64) error {
	x := seed*0x9E3779B97F4A7C15 | 1
	buf := make([]byte, 1<<16)
	for n > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			binary.LittleEndian.PutUint64(buf[i:], x)
		}
		m := int64(len(buf))
		if m > n {
			m = n
		}
		if _, err := w.Write(buf[:m]); err != nil {
			return err
		}
		n -= m
	}
	return nil
}
