package standin

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/crashkey/crashkey/dump"
)

// MemRange is a range of physical memory, [Start, End) in bytes.
type MemRange struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

// maxMemRanges bounds how many ranges are read from a memory map; firmware maps have tens.
const maxMemRanges = 4096

// SystemMemory returns the running system's RAM: the "System RAM" ranges of the firmware
// memory map (/sys/firmware/memmap), or of /proc/iomem when that is missing (its addresses
// read as zero without CAP_SYS_ADMIN, which is refused here).
func SystemMemory() ([]MemRange, error) {
	r, err := readMemmap("/sys/firmware/memmap")
	if err == nil && len(r) > 0 {
		return r, nil
	}
	b, ierr := os.ReadFile("/proc/iomem")
	if ierr != nil {
		if err == nil {
			err = ierr
		}
		return nil, fmt.Errorf("memory map: /sys/firmware/memmap and /proc/iomem: %w", err)
	}
	return ParseIOMem(b)
}

// readMemmap reads dir/N/{start,end,type} entries (end inclusive, as the kernel writes it).
func readMemmap(dir string) ([]MemRange, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("memory map: %w", err)
	}
	var out []MemRange
	for _, e := range ents {
		if len(out) >= maxMemRanges {
			break
		}
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name(), name))
			return strings.TrimSpace(string(b))
		}
		if read("type") != "System RAM" {
			continue
		}
		s, err1 := strconv.ParseUint(read("start"), 0, 64)
		en, err2 := strconv.ParseUint(read("end"), 0, 64)
		if err1 != nil || err2 != nil || en < s || en == ^uint64(0) {
			return nil, fmt.Errorf("memory map: %s: bad start/end", filepath.Join(dir, e.Name()))
		}
		out = append(out, MemRange{s, en + 1})
	}
	return normalise(out), nil
}

// ParseIOMem reads the top-level "System RAM" lines of /proc/iomem ("00100000-bfffffff :
// System RAM", end inclusive). Addresses that are all zero (an unprivileged reader) are an
// error.
func ParseIOMem(b []byte) ([]MemRange, error) {
	var out []MemRange
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue // nested resources (kernel code, devices)
		}
		rng, name, ok := strings.Cut(line, " : ")
		if !ok || strings.TrimSpace(name) != "System RAM" {
			continue
		}
		lo, hi, ok := strings.Cut(strings.TrimSpace(rng), "-")
		if !ok {
			return nil, fmt.Errorf("iomem: bad range %q", rng)
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || e < s || e == ^uint64(0) {
			return nil, fmt.Errorf("iomem: bad range %q", rng)
		}
		if len(out) >= maxMemRanges {
			return nil, fmt.Errorf("iomem: more than %d System RAM ranges", maxMemRanges)
		}
		out = append(out, MemRange{s, e + 1})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("iomem: %w", err)
	}
	allZero := len(out) > 0
	for _, r := range out {
		if r.Start != 0 || r.End != 1 {
			allZero = false
		}
	}
	if allZero {
		return nil, fmt.Errorf("iomem: addresses read as zero: reading /proc/iomem needs CAP_SYS_ADMIN")
	}
	return normalise(out), nil
}

// normalise sorts ranges and merges overlapping or touching ones.
func normalise(in []MemRange) []MemRange {
	sort.Slice(in, func(i, j int) bool { return in[i].Start < in[j].Start })
	var out []MemRange
	for _, r := range in {
		if r.End <= r.Start {
			continue
		}
		if n := len(out); n > 0 && r.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// PageRuns turns byte ranges into runs of whole pages (partial pages at the edges are left
// out, as Windows' memory descriptor does), at most limit runs: the largest are kept.
func PageRuns(ranges []MemRange, limit int) []dump.Run {
	var runs []dump.Run
	for _, r := range ranges {
		first := (r.Start + dump.PageSize - 1) / dump.PageSize
		end := r.End / dump.PageSize
		if end > first && first < 1<<40 {
			runs = append(runs, dump.Run{BasePage: first, PageCount: min(end, 1<<40) - first})
		}
	}
	if len(runs) > limit {
		sort.SliceStable(runs, func(i, j int) bool { return runs[i].PageCount > runs[j].PageCount })
		runs = runs[:limit]
		sort.Slice(runs, func(i, j int) bool { return runs[i].BasePage < runs[j].BasePage })
	}
	return runs
}

// scaleRuns keeps the first ceil(count × num / den) pages of every run (at least one), so a
// dump of a 256 MiB guest fits a paging file of a few tens of MiB.
func scaleRuns(runs []dump.Run, num, den uint64) []dump.Run {
	out := make([]dump.Run, 0, len(runs))
	for _, r := range runs {
		n := max(1, (r.PageCount*num+den-1)/den)
		out = append(out, dump.Run{BasePage: r.BasePage, PageCount: min(n, r.PageCount)})
	}
	return out
}
