package analyze

import (
	"fmt"
	"io"
	"strings"

	"github.com/crashkey/crashkey/internal/termsafe"
)

// The text forms print every string read from the dump (module, PDB and driver names)
// through termsafe: a name with control characters or bidi overrides cannot rewrite the
// terminal. The Result itself holds them exactly, as --json prints them.

// WriteText writes the analysis for people: where the module list came from, the mapped
// addresses, "Probably caused by" with its evidence, and what could not be read.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-22s%s\n", label+":", termsafe.String(fmt.Sprintf(format, args...)))
	}
	b.WriteString("\nAnalysis:\n")
	switch {
	case r.Source == "":
		p("Modules", "none")
	case r.Source == SourceTriage:
		p("Modules", "%d from the %s, %s", len(r.Modules), r.Source, plural(len(r.Unloaded), "unloaded driver"))
	default:
		p("Modules", "%d from %s (%s paging, %d physical reads)", len(r.Modules), r.Source, r.Paging, r.PageReads)
	}
	for _, a := range r.Attributions {
		label := strings.ToUpper(a.Source[:1]) + a.Source[1:]
		label = strings.Replace(label, "Bug-check parameter", "Parameter", 1)
		p(label, "%s", describeShort(a))
	}
	if len(r.Stack) > 0 {
		parts := make([]string, 0, 4)
		for i, a := range r.Stack {
			if i == 4 {
				parts = append(parts, fmt.Sprintf("… %d in all", len(r.Stack)))
				break
			}
			parts = append(parts, a.Location())
		}
		p("Stack (scanned)", "%s", strings.Join(parts, ", "))
	}
	if c := r.Culprit; c != nil {
		loc := c.Module
		if c.Offset != nil {
			loc = fmt.Sprintf("%s (%s+0x%X)", c.Module, c.Module, uint64(*c.Offset))
		}
		p("Probably caused by", "%s", loc)
		p("  Evidence", "%s", c.Evidence)
	} else {
		p("Probably caused by", "unknown: no address from the dump lies in a known module")
	}
	for i, pr := range r.Problems {
		label := ""
		if i == 0 {
			label = "Not read:"
		}
		if i == maxTextProblems {
			fmt.Fprintf(&b, "%-22s... %d more (--json lists them all)\n", label, len(r.Problems)-i)
			break
		}
		fmt.Fprintf(&b, "%-22s%s\n", label, termsafe.String(pr))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxTextProblems bounds the problems WriteText prints.
const maxTextProblems = 6

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func describeShort(a Attribution) string {
	s := a.Location()
	if a.Module != "" {
		s = fmt.Sprintf("0x%X = %s", uint64(a.Address), s)
	}
	if a.What != "" {
		s += " (" + a.What + ")"
	}
	return s
}

// WriteModules writes the module list as a table, with each module's symbol-server path,
// then the unloaded drivers.
func (r *Result) WriteModules(w io.Writer) error {
	var b strings.Builder
	src := r.Source
	if src == "" {
		src = "no module list"
	}
	fmt.Fprintf(&b, "\nModules (%d, %s):\n", len(r.Modules), src)
	if len(r.Modules) > 0 {
		fmt.Fprintf(&b, "  %-18s %-10s %-10s %-24s %s\n", "Base", "Size", "Timestamp", "Name", "Symbols")
	}
	for _, m := range r.Modules {
		sym := m.SymbolPath
		if sym == "" {
			sym = "-"
			if m.Identity != "" && m.Identity != "triage driver list" {
				sym = "- (" + m.Identity + ")"
			}
		}
		fmt.Fprintf(&b, "  0x%016X 0x%08X 0x%08X %-24s %s\n", uint64(m.Base), m.Size, m.TimeDateStamp, termsafe.String(m.Name), termsafe.String(sym))
	}
	if len(r.Unloaded) > 0 {
		fmt.Fprintf(&b, "\nUnloaded drivers (%d):\n", len(r.Unloaded))
		for _, u := range r.Unloaded {
			fmt.Fprintf(&b, "  0x%016X-0x%016X %s\n", uint64(u.Start), uint64(u.End), termsafe.String(u.Name))
		}
	}
	if len(r.Regions) > 0 {
		b.WriteString("\nTriage dump holds:\n")
		for _, g := range r.Regions {
			d := "decoded"
			if !g.Decoded {
				d = "located, not decoded"
			}
			fmt.Fprintf(&b, "  %-18s at 0x%06X, %d bytes, %s\n", g.Name, g.Offset, g.Size, d)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
