package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crashkey/crashkey/e2e/standin"
)

// QEMU's fw_cfg interface on x86 (docs/specs/fw_cfg.rst): a 16-bit selector port, an 8-bit
// data port and the big-endian 64-bit DMA address register, whose low half starts a transfer.
const (
	fwcfgPortSelector = 0x510
	fwcfgPortData     = 0x511
	fwcfgPortDMA      = 0x514
	fwcfgPorts        = 0x0C // 0x510 … 0x51B

	fwcfgKeySignature = 0x00
	fwcfgKeyID        = 0x01
	fwcfgKeyFileDir   = 0x19
	fwcfgFeatureDMA   = 1 << 1

	fwcfgDMAError    = 0x01
	fwcfgDMASelect   = 0x08
	fwcfgDMACtlWrite = 0x10

	vmcoreinfoFile      = "etc/vmcoreinfo"
	vmcoreinfoFormatELF = 1
)

// errNoVMCoreInfo means QEMU has no vmcoreinfo device (-device vmcoreinfo).
var errNoVMCoreInfo = errors.New("no etc/vmcoreinfo in fw_cfg: QEMU runs without -device vmcoreinfo")

// publishVMCoreInfo builds the region (vmcoreinfo.go) in a locked huge page and points QEMU's
// vmcoreinfo device at its note with an fw_cfg DMA write from user space. It returns the region.
//
// Linux's own qemu_fw_cfg driver writes the kernel's VMCOREINFO note to the same file when it
// loads; the device keeps the last complete write, so this one, made after it, is the one QEMU
// uses. The test guest does not load that driver.
func publishVMCoreInfo(nonce uint64, linuxFirst bool) (*winRegion, error) {
	// ioperm grants the ports to the calling thread only: keep this goroutine on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Ioperm(fwcfgPortSelector, fwcfgPorts, 1); err != nil {
		return nil, fmt.Errorf("ioperm fw_cfg ports: %w", err)
	}
	defer unix.Ioperm(fwcfgPortSelector, fwcfgPorts, 0)
	sig := fwcfgRead(fwcfgKeySignature, 4)
	if string(sig) != "QEMU" {
		return nil, fmt.Errorf("no fw_cfg device (signature %q)", sig)
	}
	if id := binary.LittleEndian.Uint32(fwcfgRead(fwcfgKeyID, 4)); id&fwcfgFeatureDMA == 0 {
		return nil, fmt.Errorf("fw_cfg without DMA (features %#x): QEMU writes etc/vmcoreinfo only through DMA", id)
	}
	key, err := fwcfgFind(vmcoreinfoFile)
	if err != nil {
		return nil, err
	}
	buf, pa, err := hugeRegion()
	if err != nil {
		return nil, err
	}
	mem, err := standin.SystemMemory()
	if err != nil {
		return nil, err
	}
	w, err := buildWinRegion(buf, pa, standin.PageRuns(mem, winMaxRuns), 1, time.Now(), nonce)
	if err != nil {
		return nil, err
	}
	if linuxFirst {
		// What Linux's qemu_fw_cfg driver writes when it loads: the kernel's own VMCOREINFO
		// note (text), which QEMU's win-dmp writer refuses for its size.
		n := linuxNote()
		copy(buf[winOffLinuxNote:], n)
		if err := pointVMCoreInfo(buf, pa, key, pa+winOffLinuxNote, uint32(len(n))); err != nil {
			return nil, err
		}
	}
	if err := pointVMCoreInfo(buf, pa, key, w.NotePA, winNoteSize); err != nil {
		return nil, err
	}
	return w, nil
}

// pointVMCoreInfo writes FWCfgVMCoreInfo (little-endian: host_format, guest_format, size,
// paddr) to etc/vmcoreinfo: the note is size bytes at guest-physical note.
func pointVMCoreInfo(buf []byte, pa uint64, key uint16, note uint64, size uint32) error {
	v := buf[winOffVMCI : winOffVMCI+16]
	binary.LittleEndian.PutUint16(v[0:], 0)
	binary.LittleEndian.PutUint16(v[2:], vmcoreinfoFormatELF)
	binary.LittleEndian.PutUint32(v[4:], size)
	binary.LittleEndian.PutUint64(v[8:], note)
	if err := fwcfgDMAWriteRegion(buf, pa, key, winOffVMCI, 16); err != nil {
		return fmt.Errorf("write %s: %w", vmcoreinfoFile, err)
	}
	return nil
}

// fwcfgRead reads n bytes of the item key through the data port.
func fwcfgRead(key uint16, n int) []byte {
	outw(fwcfgPortSelector, key)
	b := make([]byte, n)
	for i := range b {
		b[i] = inb(fwcfgPortData)
	}
	return b
}

// fwcfgFind returns the selector of the named fw_cfg file.
func fwcfgFind(name string) (uint16, error) {
	outw(fwcfgPortSelector, fwcfgKeyFileDir)
	var hdr [4]byte
	for i := range hdr {
		hdr[i] = inb(fwcfgPortData)
	}
	count := binary.BigEndian.Uint32(hdr[:])
	if count > 4096 {
		return 0, fmt.Errorf("fw_cfg directory claims %d files", count)
	}
	var names []string
	for i := uint32(0); i < count; i++ {
		var e [64]byte
		for j := range e {
			e[j] = inb(fwcfgPortData)
		}
		n := string(bytes.TrimRight(e[8:], "\x00"))
		if n == name {
			return binary.BigEndian.Uint16(e[4:]), nil
		}
		names = append(names, n)
	}
	if name == vmcoreinfoFile {
		return 0, errNoVMCoreInfo
	}
	return 0, fmt.Errorf("no %s in fw_cfg (files: %s)", name, strings.Join(names, ", "))
}

// fwcfgDMAWriteRegion writes n bytes at offset off of the region (physical address pa) to the item
// key, with the FWCfgDmaAccess at winOffDMA.
func fwcfgDMAWriteRegion(buf []byte, pa uint64, key uint16, off, n int) error {
	a := buf[winOffDMA : winOffDMA+16]
	binary.BigEndian.PutUint32(a[0:], uint32(key)<<16|fwcfgDMASelect|fwcfgDMACtlWrite)
	binary.BigEndian.PutUint32(a[4:], uint32(n))
	binary.BigEndian.PutUint64(a[8:], pa+uint64(off))
	access := pa + winOffDMA
	// The register is big-endian: outl puts the low byte first, so swap.
	outl(fwcfgPortDMA, bswap32(uint32(access>>32)))
	outl(fwcfgPortDMA+4, bswap32(uint32(access)))
	ctl := (*uint32)(unsafe.Pointer(&a[0]))
	for i := 0; i < 1000; i++ {
		c := bswap32(atomic.LoadUint32(ctl))
		if c&fwcfgDMAError != 0 {
			return errors.New("fw_cfg DMA error (QEMU refused the write)")
		}
		if c == 0 {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("fw_cfg DMA did not complete")
}

func bswap32(v uint32) uint32 {
	return v>>24 | v>>8&0xFF00 | v<<8&0xFF0000 | v<<24
}

// hugeRegion maps one locked 2 MiB huge page and returns it with its physical address,
// checking in /proc/self/pagemap that all its 4 KiB pages are contiguous.
func hugeRegion() ([]byte, uint64, error) {
	if b, err := os.ReadFile("/proc/sys/vm/nr_hugepages"); err == nil && strings.TrimSpace(string(b)) == "0" {
		if err := writeSysctl("/proc/sys/vm/nr_hugepages", "1"); err != nil {
			return nil, 0, err
		}
	}
	buf, err := unix.Mmap(-1, 0, winRegionSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB|unix.MAP_POPULATE|unix.MAP_LOCKED)
	if err != nil {
		return nil, 0, fmt.Errorf("map a 2 MiB huge page (boot with hugepages=1): %w", err)
	}
	if err := unix.Mlock(buf); err != nil {
		unix.Munmap(buf)
		return nil, 0, fmt.Errorf("mlock: %w", err)
	}
	clear(buf)
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		unix.Munmap(buf)
		return nil, 0, err
	}
	defer pm.Close()
	va := uint64(uintptr(unsafe.Pointer(&buf[0])))
	ents := make([]byte, 8*winRegionSize/0x1000)
	if _, err := pm.ReadAt(ents, int64(va/0x1000*8)); err != nil {
		unix.Munmap(buf)
		return nil, 0, fmt.Errorf("pagemap: %w", err)
	}
	var pfn0 uint64
	for i := 0; i < len(ents)/8; i++ {
		e := binary.LittleEndian.Uint64(ents[8*i:])
		pfn := e & (1<<55 - 1)
		if e&(1<<63) == 0 || pfn == 0 {
			unix.Munmap(buf)
			return nil, 0, fmt.Errorf("pagemap: page %d not present or PFN hidden (%#x)", i, e)
		}
		if i == 0 {
			pfn0 = pfn
		} else if pfn != pfn0+uint64(i) {
			unix.Munmap(buf)
			return nil, 0, fmt.Errorf("pagemap: huge page not contiguous at page %d", i)
		}
	}
	winRegionMem = buf
	return buf, pfn0 * 0x1000, nil
}
