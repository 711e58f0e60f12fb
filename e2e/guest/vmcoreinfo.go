package main

// The stand-in's Windows dump header for QEMU's win-dmp writer (dump/win_dump.c), published
// through the vmcoreinfo device as virtio-win's FwCfg driver does on a real Windows guest.
//
// QEMU's writer takes the note the guest published (an ELF note "VMCOREINFO" whose descriptor is
// a DUMP_HEADER64), loads the header's DirectoryTableBase into the first CPU's CR3 and, through
// those page tables, reads the KDBG block at KdDebuggerDataBlock (owner tag "KDBG" at +0x10;
// BugcheckParameter1 is its fallback), MmPfnDatabase (+0xC0), KiBugcheckData (+0x88),
// KiProcessorBlock (+0x218) and OffsetPrcbContext (+0x338), writes each CPU's registers into
// the context its PRCB points to, patches RequiredDumpSpace and the bug check (0x161
// LIVE_SYSTEM_DUMP when KiBugcheckData holds none) and writes the header and every page of the
// header's PhysicalMemoryBlock runs.
//
// The stand-in builds all of that in one physically contiguous 2 MiB region (a huge page it
// locks; its physical address comes from /proc/self/pagemap): four levels of page tables that
// map the region at the kernel-style virtual address winKernelVA, the KDBG block, the
// processor block, PRCBs, contexts, KiBugcheckData, a marker tests read back from the dump, and
// the note itself (QEMU reads the note from guest-physical memory in one piece, so it must be
// contiguous too).

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/crashkey/crashkey/dump"
)

// Layout of the region (offsets from its start).
const (
	winRegionSize   = 2 << 20
	winOffPML4      = 0x0000
	winOffPDPT      = 0x1000
	winOffPD        = 0x2000
	winOffPT        = 0x3000
	winOffKDBG      = 0x4000
	winOffProcBlk   = 0x5000 // KiProcessorBlock: one PRCB pointer per CPU
	winOffPRCB      = 0x6000 // PRCBs, winPRCBStride apart
	winOffBugcheck  = 0x8000 // KiBugcheckData: code u32, pad, four u64 parameters
	winOffMarker    = 0x9000 // the marker tests read back from the dump
	winOffVMCI      = 0xA000 // the 16-byte FWCfgVMCoreInfo written to etc/vmcoreinfo
	winOffDMA       = 0xA100 // the FWCfgDmaAccess of that write
	winOffContext   = 0xB000 // CONTEXTs, winContextStride apart
	winOffNote      = 0x10000
	winOffLinuxNote = 0x14000 // a Linux-style VMCOREINFO note, written first on request

	winPRCBStride    = 0x100
	winContextStride = 0x500 // > sizeof(CONTEXT) = 0x4D0, 16-byte aligned
	winMaxCPUs       = 16

	// winPRCBContext is OffsetPrcbContext: where a PRCB holds its context pointer.
	winPRCBContext = 0x18

	// winKernelVA is where the region appears to QEMU: PML4 slot 0x1F0, like the start of a
	// Windows x64 kernel's system space.
	winKernelVA = 0xFFFFF80000000000

	winNoteHeader = 24 // Elf64_Nhdr + "VMCOREINFO\0" padded to 4
	winHeaderSize = 0x2000
	winNoteSize   = winNoteHeader + winHeaderSize
	winMaxRuns    = 42 // PHYSICAL_MEMORY_DESCRIPTOR64 in 700 bytes

	// winMinorVersion is the build number the stand-in claims (Windows 10 2004).
	winMinorVersion = 19041
	// winMarkerLen is the marker's length: "crashkey-marker:" and 16 hex digits.
	winMarkerLen = 32
)

// winRegionMem is the published region, kept mapped (and locked) for the life of the guest;
// nil when none was published.
var winRegionMem []byte

// recordBugCheck writes a bug check into the published region's KiBugcheckData, as Windows
// does when it bug-checks: a host-side dump taken afterwards (the guest's own dump path hung)
// then holds this code instead of 0x161 LIVE_SYSTEM_DUMP.
func recordBugCheck(region []byte, code uint32, params [4]uint64) {
	if len(region) != winRegionSize {
		return
	}
	b := region[winOffBugcheck : winOffBugcheck+40]
	binary.LittleEndian.PutUint32(b[0:], code)
	binary.LittleEndian.PutUint32(b[4:], 0)
	for i, p := range params {
		binary.LittleEndian.PutUint64(b[8+8*i:], p)
	}
}

// KDBG offsets QEMU reads (include/qemu/win_dump_defs.h) and the ones dumpchk-style readers use.
const (
	kdbgOwnerTag          = 0x10
	kdbgSize              = 0x14
	kdbgKernBase          = 0x18
	kdbgPsLoadedModule    = 0x48
	kdbgPsActiveProcess   = 0x50
	kdbgKiBugcheckData    = 0x88
	kdbgMmPfnDatabase     = 0xC0
	kdbgKiProcessorBlock  = 0x218
	kdbgOffsetPrcbContext = 0x338
	kdbgBlockSize         = 0x340
)

// winRegion is a region laid out for QEMU, and what tests need to know about it.
type winRegion struct {
	PA        uint64 // physical address of the region
	DTB       uint64 // DirectoryTableBase: the PML4's physical address
	KDBG      uint64 // KdDebuggerDataBlock (virtual)
	MarkerPA  uint64 // physical address of the marker
	Marker    string // the marker text
	NotePA    uint64 // physical address of the note
	Runs      []dump.Run
	NumberCPU int
}

// va is the virtual address of an offset in the region.
func (w *winRegion) va(off uint64) uint64 { return winKernelVA + off }

// buildWinRegion lays the region out in buf (winRegionSize bytes, zeroed), which lives at
// physical address pa. runs are the guest's RAM, ncpu its processors, nonce makes the marker
// unique.
func buildWinRegion(buf []byte, pa uint64, runs []dump.Run, ncpu int, now time.Time, nonce uint64) (*winRegion, error) {
	if len(buf) != winRegionSize {
		return nil, fmt.Errorf("region of %d bytes, want %d", len(buf), winRegionSize)
	}
	if pa%winRegionSize != 0 {
		return nil, fmt.Errorf("region at %#x is not 2 MiB aligned", pa)
	}
	if ncpu < 1 || ncpu > winMaxCPUs {
		return nil, fmt.Errorf("%d processors: the stand-in supports 1 to %d", ncpu, winMaxCPUs)
	}
	if len(runs) == 0 || len(runs) > winMaxRuns {
		return nil, fmt.Errorf("%d memory runs: want 1 to %d", len(runs), winMaxRuns)
	}
	le := binary.LittleEndian
	w := &winRegion{PA: pa, DTB: pa + winOffPML4, Runs: runs, NumberCPU: ncpu}
	w.KDBG = w.va(winOffKDBG)

	// Page tables: PML4[0x1F0] → PDPT[0] → PD[0] → PT[0..511] → the region's 512 pages.
	const present, writable = 1, 2
	pml4i := (winKernelVA >> 39) & 0x1FF
	le.PutUint64(buf[winOffPML4+pml4i*8:], pa+winOffPDPT|present|writable)
	le.PutUint64(buf[winOffPDPT:], pa+winOffPD|present|writable)
	le.PutUint64(buf[winOffPD:], pa+winOffPT|present|writable)
	for i := uint64(0); i < winRegionSize/0x1000; i++ {
		le.PutUint64(buf[winOffPT+i*8:], pa+i*0x1000|present|writable)
	}

	// KDBG: LIST_ENTRY64, OwnerTag, Size, then the pointers QEMU follows.
	k := buf[winOffKDBG:]
	le.PutUint64(k[0:], w.va(winOffKDBG))
	le.PutUint64(k[8:], w.va(winOffKDBG))
	copy(k[kdbgOwnerTag:], "KDBG")
	le.PutUint32(k[kdbgSize:], kdbgBlockSize)
	le.PutUint64(k[kdbgKernBase:], winKernelVA)
	le.PutUint64(k[kdbgPsLoadedModule:], w.va(winOffKDBG+0x400))
	le.PutUint64(k[kdbgPsActiveProcess:], w.va(winOffKDBG+0x410))
	le.PutUint64(k[kdbgKiBugcheckData:], w.va(winOffBugcheck))
	le.PutUint64(k[kdbgMmPfnDatabase:], w.va(winOffKDBG+0x420))
	le.PutUint64(k[kdbgKiProcessorBlock:], w.va(winOffProcBlk))
	le.PutUint16(k[kdbgOffsetPrcbContext:], winPRCBContext)
	for i := 0; i < ncpu; i++ {
		prcb := uint64(winOffPRCB + i*winPRCBStride)
		le.PutUint64(buf[winOffProcBlk+i*8:], w.va(prcb))
		le.PutUint64(buf[prcb+winPRCBContext:], w.va(uint64(winOffContext+i*winContextStride)))
	}

	w.MarkerPA = pa + winOffMarker
	w.Marker = fmt.Sprintf("crashkey-marker:%016x", nonce)
	copy(buf[winOffMarker:], w.Marker)

	// The note: Elf64_Nhdr{namesz 11, descsz 0x2000, type 0}, "VMCOREINFO\0" padded, header.
	n := buf[winOffNote:]
	le.PutUint32(n[0:], uint32(len("VMCOREINFO")+1))
	le.PutUint32(n[4:], winHeaderSize)
	le.PutUint32(n[8:], 0)
	copy(n[12:], "VMCOREINFO")
	w.NotePA = pa + winOffNote
	writeWinHeader(n[winNoteHeader:winNoteHeader+winHeaderSize], w, now)
	return w, nil
}

// writeWinHeader writes the DUMP_HEADER64 as KeInitializeCrashDumpHeader(DUMP_TYPE_FULL) leaves
// it for the FwCfg driver: PAGE filler everywhere it sets nothing, the decoded KDBG address in
// BugcheckParameter1, no bug check yet. RequiredDumpSpace is left 0: QEMU computes it.
func writeWinHeader(h []byte, w *winRegion, now time.Time) {
	le := binary.LittleEndian
	for i := 0; i+4 <= len(h); i += 4 {
		copy(h[i:], "PAGE")
	}
	copy(h[0:], "PAGEDU64")
	le.PutUint32(h[0x08:], 0xF)
	le.PutUint32(h[0x0C:], winMinorVersion)
	le.PutUint64(h[0x10:], w.DTB)
	le.PutUint64(h[0x18:], w.va(winOffKDBG+0x420))
	le.PutUint64(h[0x20:], w.va(winOffKDBG+0x400))
	le.PutUint64(h[0x28:], w.va(winOffKDBG+0x410))
	le.PutUint32(h[0x30:], 0x8664)
	le.PutUint32(h[0x34:], uint32(w.NumberCPU))
	le.PutUint32(h[0x38:], 0)
	le.PutUint32(h[0x3C:], 0)
	le.PutUint64(h[0x40:], w.KDBG)
	le.PutUint64(h[0x48:], 0)
	le.PutUint64(h[0x50:], 0)
	le.PutUint64(h[0x58:], 0)
	le.PutUint64(h[0x80:], w.KDBG)
	var pages uint64
	for i, r := range w.Runs {
		le.PutUint64(h[0x88+0x10+16*i:], r.BasePage)
		le.PutUint64(h[0x88+0x18+16*i:], r.PageCount)
		pages += r.PageCount
	}
	le.PutUint32(h[0x88:], uint32(len(w.Runs)))
	le.PutUint32(h[0x8C:], 0)
	le.PutUint64(h[0x90:], pages)
	le.PutUint32(h[0xF98:], 1) // DUMP_TYPE_FULL
	le.PutUint64(h[0xFA0:], 0)
	le.PutUint64(h[0xFA8:], filetime(now))
	c := h[0xFB0 : 0xFB0+128]
	clear(c)
	copy(c, "crashkey stand-in: header published through vmcoreinfo")
	le.PutUint32(h[0x1040:], 1)     // VER_NT_WORKSTATION
	le.PutUint32(h[0x1044:], 0x110) // SuiteMask
}

// linuxNote is an ELF note like the one Linux's qemu_fw_cfg driver publishes: name
// "VMCOREINFO", a text descriptor of key=value lines.
func linuxNote() []byte {
	desc := []byte("OSRELEASE=6.1.0-crashkey\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a13f40\n")
	n := make([]byte, 24+(len(desc)+3)&^3)
	binary.LittleEndian.PutUint32(n[0:], uint32(len("VMCOREINFO")+1))
	binary.LittleEndian.PutUint32(n[4:], uint32(len(desc)))
	copy(n[12:], "VMCOREINFO")
	copy(n[24:], desc)
	return n
}

// filetime converts t to 100 ns units since 1601-01-01 UTC.
func filetime(t time.Time) uint64 {
	const epochDiff = 11644473600 // seconds from 1601 to 1970
	return uint64(t.Unix()+epochDiff)*1e7 + uint64(t.Nanosecond()/100)
}
