// Package dump reads, validates and writes Windows kernel crash dumps (MEMORY.DMP, a dump
// at the start of pagefile.sys or a dedicated dump file, and Minidump\*.dmp triage dumps).
//
// Open decodes the header of a dump held by any io.ReaderAt; it reads a few kilobytes and
// nothing else, so it is cheap enough to probe every candidate file. File.Check validates
// the header and the page layout like Microsoft's dumpchk and returns a Report with
// findings and a verdict; with CheckOptions.Deep it also reads every page. File.ReadPhysical
// and File.PhysicalReader read guest physical memory by address. Everything streams with
// memory bounded independently of the dump's size: counts and sizes from the header are
// untrusted and checked against the file size before use.
//
// Supported layouts: 32-bit (PAGEDUMP) and 64-bit (PAGEDU64) headers; full (run-based),
// summary, bitmap full and bitmap kernel dumps; header-only dumps; triage dumps
// (TRIAGE_DUMP at the end of the header, TRGD marker); WinDbg's RDMP dumps (mapped, types
// 8-10); live dumps (bug check 0x161). A user-mode minidump (MDMP) is recognised and
// rejected with ErrUserMinidump.
//
// 32-bit summary and bitmap dumps are read with the 64-bit bitmap layout placed after the
// 0x1000-byte header; the public SDK does not document a different one, and older parsers
// disagree about it.
//
// Write builds dumps of every supported shape from a Spec, streaming the pages from a
// PageSource, for tests and for stand-in guests. Bitmap dumps get a bitmap of whole bytes
// and their first page on a page boundary, so that other readers (kdmp-parser, volatility3)
// read every page; scripts/test.d/30-dump.sh checks that
// kdmp-parser reads the same header, runs and pages as this package.
//
// Bug checks flagged with VariantFlag (0x1000007E, the "_M" names) are the same bug checks
// as their base code: BaseBugCheck finds it, BugCheckMatches and CheckOptions.ExpectBugCheck
// accept a variant where its base is expected, and FormatBugCheck shows both.
//
// A typical use:
//
//	f, err := dump.Open(r, size) // r is an *os.File or any io.ReaderAt
//	if errors.Is(err, dump.ErrNotDump) { ... }
//	rep, err := f.Check(ctx, dump.CheckOptions{Deep: true, ExpectBugCheck: &code})
//	if !rep.OK() { ... rep.Problem() ... }
//	n, err := f.ReadPhysical(buf, 0x1000) // guest physical address 0x1000
//
// The layouts follow the Windows SDK's mindumpdef.h and the third-party parsers listed in
// the project's reference notes (dump-format.md). Unused header fields hold the ASCII
// filler "PAGE" in real dumps; such fields decode as "not set".
package dump
