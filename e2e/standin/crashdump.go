package standin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/registry"
)

// DefaultMemoryScale divides the pages of every memory run: the stand-in's dump describes the
// guest's real memory layout but stores 1/16 of each run, so a 256 MiB guest's complete dump
// is about 16 MiB and its kernel dump about 5 MiB.
const DefaultMemoryScale = 16

// triageSize is SizeOfDump of the stand-in's small memory dumps (real ones are 256 KiB and up).
const triageSize = 0x40000

// Plausible kernel addresses for the header (a Windows 10 x64 kernel's layout).
const (
	kernelBase          = 0xFFFFF80572A00000
	directoryTableBase  = 0x00000000001AD002 // PCID bits set, as real dumps show
	pfnDataBase         = 0xFFFFFA8000000000
	psLoadedModuleList  = kernelBase + 0xC2A2B0
	psActiveProcessHead = kernelBase + 0xC1F3C0
	kdDebuggerDataBlock = kernelBase + 0xC00B20
)

// NMIParams are the bug-check parameters of 0x80 NMI_HARDWARE_FAILURE as Windows 8 and later
// record them: the HAL passes Arg1 = 0x004F4454 ("TDO"; windows-crash.md §4).
var NMIParams = [4]uint64{0x004F4454}

// DumpOptions say what the running system looks like; zero values are read from it.
type DumpOptions struct {
	// Processors is NumberProcessors; 0 means runtime.NumCPU().
	Processors int
	// Memory is the physical memory; nil means SystemMemory().
	Memory []MemRange
	// UpTime is SystemUpTime; 0 means /proc/uptime (left unset if unreadable).
	UpTime time.Duration
	// Scale divides every memory run's pages; 0 means DefaultMemoryScale, 1 stores all of RAM.
	Scale uint64
}

// DumpPlan is a dump the crash-dump stack is about to write: its header and layout, its size
// and where it goes.
type DumpPlan struct {
	// Spec is what dump.Write gets.
	Spec dump.Spec
	// Setting is the CrashControl dump type the plan follows.
	Setting registry.DumpType
	// Size is the dump's length in bytes (RequiredDumpSpace, or SizeOfDump for a small dump).
	Size int64
	// Target is the paging file (or dedicated dump file) it is written into.
	Target *DiskFile
	// Seed selects the page contents (dump.PatternPages(Seed)): page PFN starts with PFN and
	// Seed as little-endian u64s, so a reader can tell which page it got.
	Seed uint64
	// Memory is the physical memory the header describes.
	Memory []MemRange
}

// DumpInfo describes a dump written into the device.
type DumpInfo struct {
	// Type is the header's DumpType and Setting the CrashControl dump type it comes from.
	Type    dump.DumpType     `json:"type"`
	Setting registry.DumpType `json:"setting"`
	// BugCheck and Params are the bug check recorded.
	BugCheck uint32    `json:"bugcheck"`
	Params   [4]uint64 `json:"params"`
	// Size is the dump's length; SHA256 the digest of exactly those bytes.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Target is the file of the Windows volume it went into, TargetSize that file's size.
	Target     string `json:"target"`
	TargetSize int64  `json:"target_size"`
	// DiskOffset is where the dump starts on the disk.
	DiskOffset int64 `json:"disk_offset"`
	// Processors, Runs and StoredPages summarise the header.
	Processors  uint32 `json:"processors"`
	Runs        int    `json:"runs"`
	StoredPages uint64 `json:"stored_pages"`
	// Seed selects the page contents (see DumpPlan.Seed).
	Seed uint64 `json:"seed"`
	// SystemTime is the crash time in the header.
	SystemTime time.Time `json:"system_time"`
}

// Line renders the dump in one line for a log.
func (d *DumpInfo) Line() string {
	return fmt.Sprintf("dump type=%d (%s, %s) bugcheck=%s size=%d sha256=%s target=%s disk_offset=%d processors=%d pages=%d",
		d.Type, d.Type, d.Setting, dump.FormatBugCheck(d.BugCheck), d.Size, d.SHA256, d.Target, d.DiskOffset, d.Processors, d.StoredPages)
}

// PlanDump decides, as the crash-dump stack does at bug-check time, which dump m writes for
// bug check code with params at time now. The DumpType follows CrashControl: complete →
// full (1, the memory runs in the header's descriptor); active → bitmap full (5, about half
// of the scaled pages); kernel and automatic → bitmap kernel (6, about a third); small →
// triage (4, 256 KiB, moved to MinidumpDir at the next boot). Bitmap dumps' bitmaps cover all
// of physical memory and mark only the pages stored. Errors wrap ErrDumpDisabled (CrashDumpEnabled 0),
// ErrNoDumpTarget (no paging file) or ErrDumpTooLarge (the dump does not fit the paging
// file; Windows then writes no dump).
func PlanDump(m *Machine, code uint32, params [4]uint64, now time.Time, opts DumpOptions) (*DumpPlan, error) {
	setting := m.Crash.Type
	var typ dump.DumpType
	switch setting {
	case registry.DumpNone:
		return nil, fmt.Errorf("%w (CrashControl\\CrashDumpEnabled=%d): Windows writes no dump; arm with crashkey arm --dump-type kernel", ErrDumpDisabled, m.Crash.CrashDumpEnabled)
	case registry.DumpComplete:
		typ = dump.TypeFull
	case registry.DumpActive:
		typ = dump.TypeBitmapFull
	case registry.DumpKernel, registry.DumpAutomatic:
		typ = dump.TypeBitmapKernel
	case registry.DumpSmall:
		typ = dump.TypeTriage
	default:
		return nil, fmt.Errorf("%w: CrashDumpEnabled=%d is not a dump type Windows knows (0, 1, 2, 3 or 7)", ErrDumpDisabled, m.Crash.CrashDumpEnabled)
	}
	target, err := m.Target()
	if err != nil {
		return nil, err
	}
	procs := opts.Processors
	if procs <= 0 {
		procs = runtime.NumCPU()
	}
	procs = min(procs, 4096)
	mem := opts.Memory
	if mem == nil {
		if mem, err = SystemMemory(); err != nil {
			return nil, err
		}
	}
	mem = normalise(append([]MemRange(nil), mem...))
	up := opts.UpTime
	if up == 0 {
		up = uptime()
	}
	scale := opts.Scale
	if scale == 0 {
		scale = DefaultMemoryScale
	}
	seed := dump.ToFileTime(now)
	spec := dump.Spec{
		Type: typ, Is64: true,
		BugCheck: code, Params: params,
		Processors:         uint32(procs),
		Major:              0xF,
		Build:              19045, // Windows 10 22H2
		ProductType:        map[string]uint32{"WinNT": 1, "LanmanNT": 2, "ServerNT": 3}[m.ProductType],
		SuiteMask:          0x110,
		DirectoryTableBase: directoryTableBase, PfnDataBase: pfnDataBase,
		PsLoadedModuleList: psLoadedModuleList, PsActiveProcessHead: psActiveProcessHead,
		KdDebuggerDataBlock: kdDebuggerDataBlock,
		SystemTime:          now, SystemUpTime: up,
	}
	if spec.ProductType == 0 {
		spec.ProductType = 1
	}
	if spec.ProductType != 1 {
		spec.Build = 20348 // Windows Server 2022
	}
	all := PageRuns(mem, 42)
	if len(all) == 0 {
		return nil, fmt.Errorf("memory map has no whole page of System RAM")
	}
	var highest uint64
	for _, r := range all {
		highest = max(highest, r.BasePage+r.PageCount)
	}
	switch typ {
	case dump.TypeFull:
		spec.Runs = scaleRuns(all, 1, scale)
	case dump.TypeBitmapFull, dump.TypeBitmapKernel:
		// The bitmap covers all of memory; an active dump keeps about half of the (scaled)
		// pages, a kernel dump about a third.
		part := uint64(2)
		if typ == dump.TypeBitmapKernel {
			part = 3
		}
		spec.Runs = scaleRuns(all, 1, scale*part)
		spec.BitmapPages = highest
	case dump.TypeTriage:
		spec.TriageSize = triageSize
	}
	size, err := spec.Size()
	if err != nil {
		return nil, err
	}
	if size > target.Size {
		return nil, fmt.Errorf("%w: a %s dump of this machine takes %d bytes but %s holds %d; Windows writes no dump (make the paging file larger: scripts/guest/standin-disk.sh --pagefile-mib)",
			ErrDumpTooLarge, setting, size, target.Path, target.Size)
	}
	return &DumpPlan{Spec: spec, Setting: setting, Size: size, Target: target, Seed: seed, Memory: mem}, nil
}

func stored(runs []dump.Run) uint64 {
	var n uint64
	for _, r := range runs {
		n += r.PageCount
	}
	return n
}

// uptime reads /proc/uptime; 0 when it cannot.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil || s <= 0 || s > 1e9 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

// Write writes the dump straight into the target file's sectors on dev (a raw disk or block
// device, opened read-write; never through a file system), the signature last, and syncs.
func (p *DumpPlan) Write(dev string) (*DumpInfo, error) {
	fd, eio, err := openRaw(dev, p.Target, true)
	if err != nil {
		return nil, fmt.Errorf("write dump: %w", err)
	}
	defer fd.Close()
	h := sha256.New()
	sw := &streamWriter{e: eio, held: make([]byte, 8)}
	cw := &countWriter{w: io.MultiWriter(sw, h)}
	if err := dump.Write(cw, p.Spec, dump.PatternPages(p.Seed)); err != nil {
		return nil, fmt.Errorf("write dump into %s on %s: %w", p.Target.Path, dev, err)
	}
	if cw.n != p.Size {
		return nil, fmt.Errorf("write dump: wrote %d bytes, planned %d (a bug in the size computation)", cw.n, p.Size)
	}
	if err := sw.commit(); err != nil {
		return nil, fmt.Errorf("write dump into %s on %s: %w", p.Target.Path, dev, err)
	}
	if err := fd.Close(); err != nil {
		return nil, fmt.Errorf("write dump: close %s: %w", dev, err)
	}
	return &DumpInfo{
		Type: p.Spec.Type, Setting: p.Setting,
		BugCheck: p.Spec.BugCheck, Params: p.Spec.Params,
		Size: p.Size, SHA256: hex.EncodeToString(h.Sum(nil)),
		Target: p.Target.Path, TargetSize: p.Target.Size, DiskOffset: p.Target.Extents[0].DiskOffset,
		Processors: p.Spec.Processors, Runs: len(p.Spec.Runs), StoredPages: stored(p.Spec.Runs),
		Seed: p.Seed, SystemTime: p.Spec.SystemTime.UTC(),
	}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteCrashDump does what Windows' crash-dump stack does after a bug check: it builds the
// dump CrashControl asks for (with the running system's processors and memory, see
// DumpOptions) and writes it straight into the paging file's sectors on dev. It writes
// nothing, and returns an error wrapping ErrDumpDisabled, ErrNoDumpTarget or ErrDumpTooLarge,
// when Windows would write nothing.
func WriteCrashDump(m *Machine, dev string, bugcheck uint32, params [4]uint64, now time.Time) (*DumpInfo, error) {
	return WriteCrashDumpWith(m, dev, bugcheck, params, now, DumpOptions{})
}

// WriteCrashDumpWith is WriteCrashDump with the system's facts given in opts.
func WriteCrashDumpWith(m *Machine, dev string, bugcheck uint32, params [4]uint64, now time.Time, opts DumpOptions) (*DumpInfo, error) {
	p, err := PlanDump(m, bugcheck, params, now, opts)
	if err != nil {
		return nil, fmt.Errorf("crash dump: %w", err)
	}
	return p.Write(dev)
}

// CrashResult is what BugCheck did.
type CrashResult struct {
	// Panic is the pvpanic event raised; PanicError why raising it failed (the dump is
	// written regardless).
	Panic      PanicKind `json:"panic"`
	PanicError string    `json:"panic_error,omitempty"`
	// Dump is the dump written, nil when none was.
	Dump *DumpInfo `json:"dump,omitempty"`
}

// BugCheck is the whole crash path after the bug check fires: it plans the dump; when dumps
// are disabled it raises pvpanic Panicked and writes nothing; otherwise it raises CrashLoaded
// (as virtio-win's driver does at the start of dump I/O) and writes the dump into the paging
// file on dev. The error is non-nil when no dump was written (wrapping ErrDumpDisabled,
// ErrNoDumpTarget, ErrDumpTooLarge or the I/O error); the result is never nil. Rebooting
// (when m.Crash.AutoReboot) is the caller's job.
func BugCheck(m *Machine, dev string, code uint32, params [4]uint64, now time.Time, pv PVPanic, opts DumpOptions) (*CrashResult, error) {
	res := &CrashResult{}
	signal := func(k PanicKind) {
		res.Panic = k
		if err := pv.Signal(k); err != nil {
			res.PanicError = err.Error()
		}
	}
	plan, err := PlanDump(m, code, params, now, opts)
	if err != nil {
		if errors.Is(err, ErrDumpDisabled) {
			signal(Panicked)
		}
		return res, fmt.Errorf("bug check %s: no dump: %w", dump.FormatBugCheck(code), err)
	}
	signal(CrashLoaded)
	info, err := plan.Write(dev)
	if err != nil {
		return res, fmt.Errorf("bug check %s: %w", dump.FormatBugCheck(code), err)
	}
	res.Dump = info
	return res, nil
}
