package registry

import (
	"fmt"
	"strconv"
	"strings"
)

// PagingFile is one entry of Memory Management\PagingFiles: "C:\pagefile.sys 1024 4096"
// (initial and maximum size in MB), "C:\pagefile.sys 0 0" or "?:\pagefile.sys"
// (system-managed; "?:" stands for every drive, the boot volume included).
type PagingFile struct {
	// Spec is the entry as stored.
	Spec string `json:"spec"`
	// Path is the file's path ("C:\pagefile.sys").
	Path string `json:"path"`
	// Drive is the upper-case drive letter, or "?" for "all drives".
	Drive string `json:"drive"`
	// SystemManaged reports a size chosen (and grown) by Windows.
	SystemManaged bool `json:"systemManaged"`
	// MinMB and MaxMB are the sizes of a fixed paging file, in MB.
	MinMB uint64 `json:"minMB,omitempty"`
	MaxMB uint64 `json:"maxMB,omitempty"`
}

// OnBootVolume reports whether the entry puts a paging file on the boot volume. crashkey
// assumes the boot volume is C:, as on nearly every Windows installation.
func (p PagingFile) OnBootVolume() bool { return p.Drive == "?" || p.Drive == "C" }

// ParsePagingFile parses one PagingFiles entry.
func ParsePagingFile(spec string) (PagingFile, error) {
	f := strings.Fields(spec)
	if len(f) == 0 {
		return PagingFile{}, fmt.Errorf("empty paging file entry")
	}
	p := PagingFile{Spec: spec, Path: f[0]}
	if len(f[0]) < 3 || f[0][1] != ':' || f[0][2] != '\\' || !isDriveLetter(f[0][0]) {
		return p, fmt.Errorf("paging file entry %q does not start with a drive path like C:\\pagefile.sys", spec)
	}
	p.Drive = strings.ToUpper(f[0][:1])
	if len(f) > 3 {
		return p, fmt.Errorf("paging file entry %q has more than a path and two sizes", spec)
	}
	var sizes [2]uint64
	for i, s := range f[1:] {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return p, fmt.Errorf("paging file entry %q: size %q is not a number of MB", spec, s)
		}
		sizes[i] = n
	}
	if p.Drive == "?" || len(f) == 1 || sizes[0] == 0 && sizes[1] == 0 {
		p.SystemManaged = true
		return p, nil
	}
	p.MinMB, p.MaxMB = sizes[0], max(sizes[0], sizes[1])
	return p, nil
}

// PagingReport says where the dump is written at crash time and whether it fits.
type PagingReport struct {
	// Files are the parsed PagingFiles entries.
	Files []PagingFile `json:"files"`
	// Target is where the dump goes at crash time: the boot volume's paging file or the
	// DedicatedDumpFile.
	Target string `json:"target,omitempty"`
	// NeedMB is the space the dump type needs, when the guest's memory is known (the upper
	// estimate for kernel and automatic dumps).
	NeedMB uint64 `json:"needMB,omitempty"`
	// Fits is "yes", "no", "maybe" (kernel dumps whose size depends on what the kernel
	// holds), "unknown" (the guest's memory size is needed) or "n/a" (no dump).
	Fits string `json:"fits"`
	// Detail explains Fits.
	Detail string `json:"detail"`
}

// dumpNeed returns the space (MB) a dump of type dt needs on a guest with ramMB of memory:
// sure is enough for every case, likely is the typical size (windows-crash.md §5: a complete
// dump needs RAM + 1 MB; a kernel dump is roughly a third of RAM and can need RAM + 128 MB
// on 64-bit).
func dumpNeed(dt DumpType, ramMB uint64) (sure, likely uint64) {
	switch dt {
	case DumpComplete, DumpActive:
		return ramMB + 1, ramMB + 1
	case DumpKernel, DumpAutomatic:
		return ramMB + 128, ramMB/3 + 1
	case DumpSmall:
		return 2, 2
	}
	return 0, 0
}

// pagingFit judges where the dump goes and whether it fits. It returns the problems found.
func pagingFit(s *Settings, dt DumpType, ramMB uint64) (PagingReport, []Problem) {
	var pr PagingReport
	var probs []Problem
	for _, spec := range s.PagingFiles {
		if strings.TrimSpace(spec) == "" {
			continue
		}
		p, err := ParsePagingFile(spec)
		if err != nil {
			probs = append(probs, Problem{ID: "pagefile-entry", Severity: SeverityWarning, Message: err.Error() + "; Windows may ignore it"})
			continue
		}
		pr.Files = append(pr.Files, p)
	}
	if ded := s.CrashControl.DedicatedDumpFile; ded != nil && *ded != "" {
		pr.Target = *ded
		size := uint64(0)
		if s.CrashControl.DumpFileSize != nil {
			size = uint64(*s.CrashControl.DumpFileSize)
		}
		if size == 0 {
			pr.Fits, pr.Detail = "yes", "DedicatedDumpFile without DumpFileSize: Windows sizes the file for the dump type at boot"
			return pr, probs
		}
		return judge(pr, probs, dt, ramMB, size, "DedicatedDumpFile (DumpFileSize)")
	}
	var boot []PagingFile
	for _, p := range pr.Files {
		if p.OnBootVolume() {
			boot = append(boot, p)
		}
	}
	switch {
	case len(pr.Files) == 0:
		pr.Fits, pr.Detail = "no", "no paging file and no DedicatedDumpFile: Windows has nowhere to write the dump at crash time"
		probs = append(probs, Problem{ID: "pagefile-none", Severity: SeverityError, Message: pr.Detail})
		return pr, probs
	case len(boot) == 0:
		pr.Fits, pr.Detail = "no", "no paging file on the boot volume (C:): Windows writes the dump only into the boot volume's paging file or a DedicatedDumpFile"
		probs = append(probs, Problem{ID: "pagefile-not-boot", Severity: SeverityError, Message: pr.Detail})
		return pr, probs
	}
	pr.Target = boot[0].Path
	var fixed uint64
	for _, p := range boot {
		if p.SystemManaged {
			pr.Target = p.Path
			pr.Fits = "yes"
			pr.Detail = "system-managed paging file on the boot volume: Windows sizes it for the dump type"
			return pr, probs
		}
		if p.MaxMB > fixed {
			fixed, pr.Target = p.MaxMB, p.Path
		}
	}
	return judge(pr, probs, dt, ramMB, fixed, "the paging file "+pr.Target)
}

func judge(pr PagingReport, probs []Problem, dt DumpType, ramMB, haveMB uint64, what string) (PagingReport, []Problem) {
	if ramMB == 0 {
		pr.Fits = "unknown"
		switch dt {
		case DumpComplete, DumpActive:
			pr.Detail = fmt.Sprintf("%s holds %d MB: a %s dump fits if the guest has at most %d MB of memory (needs RAM + 1 MB); give --memory to check", what, haveMB, dt, max(haveMB, 1)-1)
		case DumpKernel, DumpAutomatic:
			if haveMB > 128 {
				pr.Detail = fmt.Sprintf("%s holds %d MB: a %s dump (about a third of RAM, at most RAM + 128 MB) surely fits up to %d MB of memory, likely up to %d MB; give --memory to check", what, haveMB, dt, haveMB-128, 3*haveMB)
			} else {
				pr.Detail = fmt.Sprintf("%s holds %d MB: a %s dump (about a third of RAM, at most RAM + 128 MB) likely fits up to %d MB of memory; give --memory to check", what, haveMB, dt, 3*haveMB)
			}
		default:
			pr.Detail = fmt.Sprintf("%s holds %d MB; a small dump needs about 2 MB", what, haveMB)
			if haveMB >= 2 {
				pr.Fits = "yes"
			}
		}
		return pr, probs
	}
	sure, likely := dumpNeed(dt, ramMB)
	pr.NeedMB = sure
	switch {
	case haveMB >= sure:
		pr.Fits = "yes"
		pr.Detail = fmt.Sprintf("%s holds %d MB; a %s dump of a %d MB guest needs at most %d MB", what, haveMB, dt, ramMB, sure)
	case haveMB >= likely:
		pr.Fits = "maybe"
		pr.Detail = fmt.Sprintf("%s holds %d MB; a %s dump of a %d MB guest needs about %d MB and up to %d MB", what, haveMB, dt, ramMB, likely, sure)
		probs = append(probs, Problem{ID: "pagefile-small", Severity: SeverityWarning, Message: pr.Detail + ": the dump may be cut short"})
	default:
		pr.Fits = "no"
		pr.Detail = fmt.Sprintf("%s holds %d MB; a %s dump of a %d MB guest needs %d MB", what, haveMB, dt, ramMB, likely)
		probs = append(probs, Problem{ID: "pagefile-small", Severity: SeverityError, Message: pr.Detail + ": Windows will not write the dump"})
	}
	return pr, probs
}

func isDriveLetter(c byte) bool { return c == '?' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }
