// Command dumpinfo prints what crashkey's dump reader reads from a Windows kernel dump, in
// the format of dump/testdata/kdmpcheck/kdmpcheck.cc (the same from kdmp-parser), so that
// scripts/test.d/30-dump.sh can compare the two readers:
//
//	dumpinfo DUMP PAGES > summary.txt
//
// summary.txt holds the header fields, the header's memory descriptor (full dumps), the
// number of physical pages and the runs of consecutive pages; PAGES receives every physical
// page in address order, each as its address (u64, little-endian) then its 4096 bytes. The
// pages are found through the reader's public API (PageOffset, ReadPhysical), probing every
// page frame up to the end of the bitmap or of the highest run.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/crashkey/crashkey/dump"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: dumpinfo DUMP PAGES")
		os.Exit(2)
	}
	if err := run(os.Stdout, os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "dumpinfo:", err)
		os.Exit(1)
	}
}

func run(stdout io.Writer, name, pagesPath string) error {
	in, err := os.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	f, err := dump.Open(in, st.Size())
	if err != nil {
		return err
	}
	h := f.Header()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintf(w, "type %d\n", uint32(h.DumpType))
	fmt.Fprintf(w, "DirectoryTableBase 0x%x\n", h.DirectoryTableBase.Value)
	fmt.Fprintf(w, "PfnDatabase 0x%x\n", h.PfnDataBase.Value)
	fmt.Fprintf(w, "PsLoadedModuleList 0x%x\n", h.PsLoadedModuleList.Value)
	fmt.Fprintf(w, "PsActiveProcessHead 0x%x\n", h.PsActiveProcessHead.Value)
	fmt.Fprintf(w, "MachineImageType 0x%x\n", h.MachineImageType.Value)
	fmt.Fprintf(w, "NumberProcessors %d\n", h.NumberProcessors.Value)
	fmt.Fprintf(w, "BugCheckCode 0x%x\n", h.BugCheckCode.Value)
	for i, p := range h.BugCheckParameters {
		fmt.Fprintf(w, "BugCheckParameter%d 0x%x\n", i+1, p.Value)
	}
	fmt.Fprintf(w, "KdDebuggerDataBlock 0x%x\n", h.KdDebuggerDataBlock.Value)

	var end uint64 // one past the highest page frame that may be present
	switch {
	case h.DumpType == dump.TypeFull:
		d := h.PhysicalMemory
		if d == nil {
			return fmt.Errorf("%s: full dump without a memory descriptor", name)
		}
		fmt.Fprintf(w, "descriptor %d runs %d pages\n", d.NumberOfRuns, d.NumberOfPages)
		for _, r := range d.Runs {
			fmt.Fprintf(w, "descriptor-run 0x%x 0x%x\n", r.BasePage, r.PageCount)
			end = max(end, r.BasePage+r.PageCount)
		}
	case f.Bitmap() != nil:
		b := f.Bitmap()
		fmt.Fprintf(w, "bitmap FirstPage 0x%x TotalPresentPages %d Pages %d\n", b.FirstPage, b.PresentPages, b.Pages)
		end = b.Pages
	default:
		return fmt.Errorf("%s: a %s dump has no physical pages to compare", name, h.DumpType)
	}
	if end > 1<<32 {
		return fmt.Errorf("%s: %d page frames are too many to probe", name, end)
	}

	out, err := os.Create(pagesPath)
	if err != nil {
		return err
	}
	defer out.Close()
	pw := bufio.NewWriterSize(out, 1<<20)
	var runs []dump.Run
	var n uint64
	page := make([]byte, 8+dump.PageSize)
	for pfn := uint64(0); pfn < end; pfn++ {
		addr := pfn * dump.PageSize
		_, ok, err := f.PageOffset(addr)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		binary.LittleEndian.PutUint64(page, addr)
		if _, err := f.ReadPhysical(page[8:], addr); err != nil {
			return err
		}
		if _, err := pw.Write(page); err != nil {
			return err
		}
		n++
		if k := len(runs) - 1; k >= 0 && runs[k].BasePage+runs[k].PageCount == pfn {
			runs[k].PageCount++
		} else {
			runs = append(runs, dump.Run{BasePage: pfn, PageCount: 1})
		}
	}
	if err := pw.Flush(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, "pages %d\n", n)
	for _, r := range runs {
		fmt.Fprintf(w, "run 0x%x 0x%x\n", r.BasePage*dump.PageSize, r.PageCount)
	}
	return nil
}
