package registry

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/crashkey/crashkey/hid"
)

// WriteText writes the report for people: what was read, each keyboard driver's hotkey,
// the dump settings, the paging files, the hotkey answer, the problems with their fixes and
// a verdict line.
func (r *Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	s := r.Settings
	switch {
	case r.Image != "":
		p("preflight: %s, volume %d, %s", r.Image, r.Volume, r.Hive)
	default:
		p("preflight: hive %s", r.Hive)
	}
	for _, w := range r.Warnings {
		p("  note: %s", w)
	}
	state := "clean"
	switch {
	case s.Hive.Replay != nil:
		state = fmt.Sprintf("dirty, replayed from its logs (%s)", replaySummary(s.Hive.Replay))
	case s.Hive.Dirty:
		state = "DIRTY (possibly stale)"
	}
	p("hive: format %s, %d bytes, %s, sequence %d/%d; %s (from %s)", s.Hive.Version, s.Hive.Size, state,
		s.Hive.Sequence1, s.Hive.Sequence2, r.ControlSet, s.ControlSetFrom)
	if rp := s.Hive.Replay; rp != nil {
		for _, e := range rp.Applied {
			p("  applied: %s", e)
		}
	}
	product := "unknown (treated as server)"
	if r.ProductType == "" && r.Client {
		product = "unknown (client, from the SOFTWARE hive's InstallationType)"
	}
	if r.ProductType != "" {
		kind := "server"
		if r.Client {
			kind = "client"
		}
		product = fmt.Sprintf("%s (%s)", r.ProductType, kind)
	}
	p("product type: %s", product)
	switch {
	case r.Windows != nil:
		p("windows: %s", r.Windows)
		if rp := r.Windows.Hive; rp != nil && rp.Replay != nil {
			p("  SOFTWARE hive dirty, replayed from its logs (%s)", replaySummary(rp.Replay))
		}
	case r.VersionUnknown != "":
		p("windows: version unknown (%s)", r.VersionUnknown)
	}

	p("")
	p("keyboard drivers:")
	for _, d := range r.Drivers {
		head := fmt.Sprintf("  %-8s %-9s", d.Driver, "("+shortKeyboards(d.Driver)+")")
		if !d.Present && d.Source != "unknown" {
			p("%s not installed", head)
			continue
		}
		start := d.Start
		if start == "" {
			start = "start type not set"
		}
		switch {
		case d.Armed:
			p("%s %s; fires on %s = %s (from %s)", head, start, d.Hotkey, d.Registry, d.Source)
		case d.Source == "unknown":
			p("%s %s; HOTKEY UNKNOWN: %s", head, start, d.Reason)
		default:
			p("%s %s; NO HOTKEY: %s", head, start, d.Reason)
		}
		p("           values: %s", driverValues(d))
		if line := r.driverLayoutLine(d); line != "" {
			p("           %s", line)
		}
	}

	p("")
	p("crash dump: %s (%s)", r.Dump.Type, r.Dump.Setting)
	p("  DumpFile %s, MinidumpDir %s, AutoReboot %s, Overwrite %s", r.Dump.DumpFile, r.Dump.MinidumpDir, yesNo(r.Dump.AutoReboot), yesNo(r.Dump.Overwrite))
	if r.Dump.DedicatedDumpFile != "" {
		p("  DedicatedDumpFile %s", r.Dump.DedicatedDumpFile)
	}
	p("  NMI: %s", r.Dump.NMI)
	p("  host dump: %s", r.Dump.HostDump)
	var files []string
	for _, f := range r.Paging.Files {
		files = append(files, f.Spec)
	}
	p("paging files: %s", listOr(files, "none"))
	p("  dump fits: %s: %s", r.Paging.Fits, r.Paging.Detail)

	if h := r.Hotkey; h != nil {
		p("")
		p("hotkey %s (%s):", h.Hotkey, h.Registry)
		if line := r.hotkeyLayoutLine(); line != "" {
			p("  %s", line)
		}
		for _, v := range []struct {
			kb string
			fv FireVerdict
		}{{"PS/2", h.PS2}, {"USB ", h.USB}} {
			if v.fv.Fires {
				p("  %s (%s): fires", v.kb, v.fv.Driver)
			} else {
				p("  %s (%s): does NOT fire: %s", v.kb, v.fv.Driver, v.fv.Reason)
			}
		}
	}

	p("")
	if len(r.Problems) == 0 {
		p("no problems found")
	} else {
		p("problems:")
		for _, pr := range r.Problems {
			p("  %-7s %s: %s", pr.Severity, pr.ID, pr.Message)
			switch {
			case pr.Fix == "":
			case pr.Fix == r.Fix:
				p("          fix: the command below")
			default:
				p("          fix: %s", pr.Fix)
			}
		}
	}
	errs, warns := r.count()
	switch {
	case errs > 0:
		p("verdict: NOT READY (%s, %s)", plural(errs, "error"), plural(warns, "warning"))
		p("fix: %s", r.Fix)
	case warns > 0:
		p("verdict: ready, with %s", plural(warns, "warning"))
	default:
		p("verdict: ready")
	}
	_, err := w.Write(b.Bytes())
	return err
}

// replaySummary is "HvLE, 3 entries, sequence 207".
func replaySummary(rp *Replay) string {
	n := "1 entry"
	if len(rp.Applied) != 1 {
		n = fmt.Sprintf("%d entries", len(rp.Applied))
	}
	return fmt.Sprintf("%s format, %s applied, now sequence %d", rp.Format, n, rp.Sequence)
}

func (r *Report) count() (errs, warns int) {
	for _, p := range r.Problems {
		if p.Severity == SeverityError {
			errs++
		} else {
			warns++
		}
	}
	return
}

func shortKeyboards(d hid.Driver) string {
	switch d {
	case hid.I8042prt:
		return "PS/2"
	case hid.Kbdhid:
		return "USB"
	}
	return "Hyper-V"
}

func driverValues(d DriverReport) string {
	var v []string
	add := func(name string, x *uint32) {
		if x == nil {
			v = append(v, name+" absent")
		} else {
			v = append(v, fmt.Sprintf("%s=%#x", name, *x))
		}
	}
	add(`Parameters\CrashOnCtrlScroll`, d.CrashOnCtrlScroll)
	add(`crashdump\Dump1Keys`, d.Dump1Keys)
	add(`crashdump\Dump2Key`, d.Dump2Key)
	return strings.Join(v, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
