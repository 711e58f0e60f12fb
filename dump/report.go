package dump

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Problem returns a one-line summary of why the report is not OK (see Report.OK), or "" when
// it is: the first error finding, or the bug-check mismatch.
func (r *Report) Problem() string {
	for _, f := range r.Findings {
		if f.Severity == Error {
			return f.Message
		}
	}
	if e := r.Expectation; e != nil && !e.Match {
		for _, f := range r.Findings {
			if f.Code == "bugcheck-mismatch" {
				return f.Message
			}
		}
		return "the bug check is not the expected " + FormatBugCheck(e.Expected)
	}
	return ""
}

// WriteText writes the report in a readable form like dumpchk's: the header fields, the
// memory layout, the findings with their severity, and a verdict line. name is the file
// name shown on the first line.
func (r *Report) WriteText(w io.Writer, name string) error {
	var b strings.Builder
	p := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-22s%s\n", label+":", fmt.Sprintf(format, args...))
	}
	p("File", "%s (%d bytes)", name, r.FileSize)
	if h := r.Header; h != nil {
		width := 32
		if h.Is64 {
			width = 64
		}
		p("Dump", "%d-bit %s, %s (type %d)", width, h.Signature, r.DumpTypeName, uint32(h.DumpType))
		p("Dump size", "%d bytes (RequiredDumpSpace %s)", r.DumpSize, h.RequiredDumpSpace)
		bc := "not set"
		if r.BugCheck.Code.Set {
			bc = FormatBugCheck(r.BugCheck.Code.Value)
		}
		p("Bug check", "%s", bc)
		params := make([]string, 4)
		for i, v := range r.BugCheck.Parameters {
			params[i] = v.String()
		}
		p("  Parameters", "%s", strings.Join(params, " "))
		p("Machine", "%s", r.Machine)
		p("Processors", "%s", fmtU32Dec(h.NumberProcessors))
		build := "not set"
		if h.MinorVersion.Set {
			build = fmt.Sprintf("%d", h.MinorVersion.Value)
		}
		kind := ""
		if h.MajorVersion.Set {
			switch h.MajorVersion.Value {
			case 0xF:
				kind = ", free build"
			case 0xC:
				kind = ", checked build"
			}
		}
		p("OS build", "%s (major version %s%s)", build, h.MajorVersion, kind)
		p("Product type", "%s%s, suite mask %s", h.ProductType, productName(h.ProductType), h.SuiteMask)
		if r.SystemTime != nil {
			p("System time", "%s", r.SystemTime.Format("2006-01-02 15:04:05.0000000 UTC"))
		} else {
			p("System time", "not set")
		}
		if d, ok := h.UpTime(); ok {
			p("System uptime", "%s", d.Round(time.Millisecond))
		} else {
			p("System uptime", "not set")
		}
		p("DirectoryTableBase", "%s", h.DirectoryTableBase)
		p("PfnDataBase", "%s", h.PfnDataBase)
		p("PsLoadedModuleList", "%s", h.PsLoadedModuleList)
		p("PsActiveProcessHead", "%s", h.PsActiveProcessHead)
		p("KdDebuggerDataBlock", "%s", h.KdDebuggerDataBlock)
		if h.Exception.Code.Set {
			p("Exception", "code %s at %s", h.Exception.Code, h.Exception.Address)
		}
		attrs := h.Attributes.String()
		if h.Attributes.Set && h.Attributes.Value != 0 {
			attrs += " (" + strings.Join(AttributeNames(h.Attributes.Value), ", ") + ")"
		}
		p("Attributes", "%s", attrs)
		if h.Comment != "" {
			p("Comment", "%q", h.Comment)
		} else {
			p("Comment", "not set")
		}
		if d := h.PhysicalMemory; d != nil {
			p("Memory descriptor", "%d runs, %d pages", d.NumberOfRuns, d.NumberOfPages)
		}
	}
	if bm := r.Bitmap; bm != nil {
		p("Bitmap header", "%s%s, first page at 0x%X, %d present pages, bitmap of %d pages", bm.Signature, bm.ValidDump, bm.FirstPage, bm.PresentPages, bm.Pages)
	}
	if t := r.Triage; t != nil {
		p("Triage header", "SizeOfDump 0x%X, TRGD at 0x%X, %d drivers, call stack %d bytes at 0x%X", t.SizeOfDump, t.ValidOffset, t.DriverCount, t.SizeOfCallStack, t.CallStackOffset)
	}
	if x := r.RDMP; x != nil {
		p("RDMP header", "%s%s, metadata %d bytes, first page at 0x%X", x.Signature, x.ValidDump, x.MetadataSize, x.FirstPageOffset)
	}
	if m := r.Memory; m != nil {
		p("Physical memory", "%d pages (%s) in %d runs, stored from file offset 0x%X; %d pages in the file", m.StoredPages, byteSize(m.StoredPages*PageSize), m.RunCount, m.DataStart, m.PagesInFile)
		for i, run := range m.Runs {
			label := ""
			if i == 0 {
				label = "  Runs"
			}
			fmt.Fprintf(&b, "%-22s0x%X-0x%X (%s)\n", label, run.BasePage*PageSize, (run.BasePage+run.PageCount)*PageSize-1, plural(run.PageCount, "page"))
		}
		if m.RunCount > uint64(len(m.Runs)) {
			fmt.Fprintf(&b, "%-22s... %d more runs\n", "", m.RunCount-uint64(len(m.Runs)))
		}
	}
	if d := r.Deep; d != nil {
		if d.Skipped != "" {
			p("Deep check", "skipped: %s", d.Skipped)
		} else {
			p("Deep check", "%d pages read, %d all-zero, %d unreadable", d.PagesRead, d.ZeroPages, d.UnreadablePages)
		}
	}
	if e := r.Expectation; e != nil {
		res := "matches"
		if !e.Match {
			res = "DIFFERS"
		}
		if e.Variant {
			res += " (through its _M variant)"
		}
		p("Expected bug check", "%s: %s", FormatBugCheck(e.Expected), res)
	}
	b.WriteString("\nFindings:\n")
	if len(r.Findings) == 0 {
		b.WriteString("  none\n")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  %-8s %-22s %s\n", strings.ToUpper(f.Severity.String()), f.Code, f.Message)
	}
	verdict := map[Verdict]string{Valid: "VALID", ValidWithWarnings: "VALID WITH WARNINGS", Corrupt: "CORRUPT"}[r.Verdict]
	if r.Header == nil && len(r.Findings) > 0 && (r.Findings[0].Code == "not-a-dump" || r.Findings[0].Code == "user-minidump") {
		verdict += " (not a kernel crash dump)"
	}
	if e := r.Expectation; e != nil && !e.Match {
		verdict += "; the bug check is not the expected " + FormatBugCheck(e.Expected)
	}
	fmt.Fprintf(&b, "\nVerdict: %s\n", verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

func productName(v U32) string {
	if !v.Set {
		return ""
	}
	switch v.Value {
	case 1:
		return " (workstation)"
	case 2:
		return " (domain controller)"
	case 3:
		return " (server)"
	}
	return ""
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func plural(n uint64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
