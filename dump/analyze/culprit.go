package analyze

import (
	"fmt"
	"sort"
	"strings"
)

// codeParam says which bug-check parameter holds a code address and what it is.
type codeParam struct {
	index int // 1-based parameter number
	what  string
}

// codeParams lists, per bug check, the parameter that holds the address of the code that
// failed. Source: Microsoft's bug check code reference (learn.microsoft.com/windows-hardware/
// drivers/debugger/bug-check-code-reference2 and the page of each code). 0xC4
// (DRIVER_VERIFIER_DETECTED_VIOLATION) is deliberately absent: what its parameters mean
// depends on the subcode in parameter 1, and most subcodes hold no code address.
var codeParams = map[uint32]codeParam{
	0x0000000A: {4, "the address that referenced memory"},                       // IRQL_NOT_LESS_OR_EQUAL
	0x0000001E: {2, "the address where the exception occurred"},                 // KMODE_EXCEPTION_NOT_HANDLED
	0x0000003B: {2, "the address of the instruction that caused the exception"}, // SYSTEM_SERVICE_EXCEPTION
	0x00000050: {3, "the address that referenced memory"},                       // PAGE_FAULT_IN_NONPAGED_AREA
	0x0000007E: {2, "the address where the exception occurred"},                 // SYSTEM_THREAD_EXCEPTION_NOT_HANDLED
	0x1000007E: {2, "the address where the exception occurred"},                 // SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M
	0x0000008E: {2, "the address where the exception occurred"},                 // KERNEL_MODE_EXCEPTION_NOT_HANDLED
	0x1000008E: {2, "the address where the exception occurred"},                 // KERNEL_MODE_EXCEPTION_NOT_HANDLED_M
	0x000000C5: {4, "the address that referenced memory"},                       // DRIVER_CORRUPTED_EXPOOL
	0x000000CC: {3, "the address that referenced memory"},                       // PAGE_FAULT_IN_FREED_SPECIAL_POOL
	0x000000CD: {3, "the address that referenced memory"},                       // PAGE_FAULT_BEYOND_END_OF_ALLOCATION
	0x000000D0: {4, "the address that referenced memory"},                       // DRIVER_CORRUPTED_MMPOOL
	0x000000D1: {4, "the address that referenced memory"},                       // DRIVER_IRQL_NOT_LESS_OR_EQUAL
	0x000000D3: {4, "the address that referenced memory"},                       // DRIVER_PORTION_MUST_BE_NONPAGED
	0x000000D5: {3, "the address that referenced memory"},                       // DRIVER_PAGE_FAULT_IN_FREED_SPECIAL_POOL
	0x000000D6: {3, "the address that referenced memory"},                       // DRIVER_PAGE_FAULT_BEYOND_END_OF_ALLOCATION
}

// lookupCodeParam finds the code-address parameter of a bug check; a code with the
// 0x10000000 flag (the "_M" variants Windows reports, such as 0x1000007E) has the
// parameters of its base code.
func lookupCodeParam(code uint32) (codeParam, bool) {
	if p, ok := codeParams[code]; ok {
		return p, true
	}
	p, ok := codeParams[code&^0x10000000]
	return p, ok
}

// microsoftModules are kernel modules Windows ships. A culprit among them is reported only
// when no evidence points at another module (the !analyze habit of looking past the
// kernel to the third-party driver that called it).
var microsoftModules = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`ntoskrnl.exe ntkrnlmp.exe ntkrnlpa.exe ntkrpamp.exe ntkrla57.exe hal.dll halmacpi.dll
		halacpi.dll halaacpi.dll kdcom.dll kdnet.dll kd.dll mcupdate_genuineintel.dll mcupdate_authenticamd.dll
		pshed.dll bootvid.dll clfs.sys tm.sys ci.dll cng.sys ksecdd.sys ksecpkg.sys msrpc.sys wdf01000.sys wdfldr.sys
		acpi.sys wmilib.sys msisadrv.sys pci.sys partmgr.sys volmgr.sys volmgrx.sys mountmgr.sys disk.sys classpnp.sys
		storport.sys ataport.sys storahci.sys stornvme.sys fltmgr.sys ntfs.sys refs.sys fastfat.sys fileinfo.sys
		wof.sys ndis.sys netio.sys tcpip.sys afd.sys http.sys fwpkclnt.sys wfplwfs.sys netbt.sys nsiproxy.sys
		i8042prt.sys kbdclass.sys kbdhid.sys mouclass.sys mouhid.sys hidclass.sys hidparse.sys hidusb.sys
		usbport.sys usbhub.sys usbhub3.sys usbxhci.sys ucx01000.sys usbccgp.sys usbehci.sys usbuhci.sys
		win32k.sys win32kbase.sys win32kfull.sys cdd.dll dxgkrnl.sys dxgmms2.sys dxgmms1.sys watchdog.sys
		basicdisplay.sys basicrender.sys vga.sys videoprt.sys monitor.sys intelppm.sys amdppm.sys processr.sys
		volsnap.sys rdyboost.sys mup.sys rdbss.sys mrxsmb.sys mrxsmb20.sys srv2.sys srvnet.sys npfs.sys msfs.sys
		null.sys beep.sys ks.sys ksthunk.sys portcls.sys hdaudbus.sys hdaudio.sys wdmaud.sys drmk.sys
		cdrom.sys serial.sys serenum.sys parport.sys spaceport.sys vmbus.sys storvsc.sys netvsc.sys hvservice.sys
		winhvr.sys winhv.sys vid.sys bthport.sys bthusb.sys wdfilter.sys wd.sys wdnisdrv.sys werkernel.sys
		cmimcext.sys acpiex.sys crashdmp.sys dumpfve.sys fvevol.sys iorate.sys filecrypt.sys bindflt.sys
		wcifs.sys cldflt.sys luafv.sys ahcache.sys peauth.sys tcpipreg.sys pacer.sys vwififlt.sys msquic.sys
		condrv.sys mssecflt.sys ndu.sys bam.sys mmcss.sys umbus.sys swenum.sys rdpbus.sys acpipagr.sys
		intelpep.sys pdc.sys sgrmagent.sys msseccore.sys skci.dll vmgencounter.sys vdrvroot.sys
		fwpuclnt.sys ndiswan.sys raspppoe.sys rasl2tp.sys raspptp.sys tdi.sys tdx.sys netadaptercx.sys
		gpuenergydrv.sys ws2ifsl.sys bowser.sys csc.sys dfsc.sys lltdio.sys rspndr.sys mslldp.sys
		storufs.sys sdbus.sys sdstor.sys usbstor.sys uaspstor.sys hidi2c.sys spbcx.sys gpioclx0101.sys
		iaLPSS2i_I2C.sys`) {
		m[strings.ToLower(n)] = true
	}
	return m
}()

// IsMicrosoftModule reports whether name (case-insensitive) is a known Microsoft kernel module.
func IsMicrosoftModule(name string) bool { return microsoftModules[strings.ToLower(name)] }

// Attribution is one address from the dump mapped to a module.
type Attribution struct {
	// Source says where the address comes from: "bug-check parameter 2", "exception
	// address", "instruction pointer", "stack", "broken driver".
	Source  string `json:"source"`
	What    string `json:"what,omitempty"` // what the source means, e.g. "the address where the exception occurred"
	Address Hex    `json:"address"`
	// Module and Offset are empty when the address lies in no known module.
	Module string `json:"module,omitempty"`
	Offset *Hex   `json:"offset,omitempty"`
	// StackOffset is the offset of the word in the saved stack (stack evidence only).
	StackOffset *Hex `json:"stack_offset,omitempty"`
	microsoft   bool
}

// Location returns "module+0xOFFSET", or the bare address when no module holds it.
func (a *Attribution) Location() string {
	if a.Module == "" {
		return fmt.Sprintf("0x%X (in no known module)", uint64(a.Address))
	}
	return fmt.Sprintf("%s+0x%X", a.Module, uint64(*a.Offset))
}

// Culprit is the probable cause, as !analyze's "Probably caused by".
type Culprit struct {
	Module string `json:"module"`
	Offset *Hex   `json:"offset,omitempty"`
	// Evidence says, in one sentence, why this module.
	Evidence string `json:"evidence"`
	// Microsoft is true when the culprit is a Microsoft module (no other evidence).
	Microsoft bool `json:"microsoft"`
}

// maxModuleSize bounds the size of a module that addresses are attributed to.
const maxModuleSize = 1 << 30

// moduleIndex finds the module holding an address.
type moduleIndex []Module

func newModuleIndex(mods []Module) moduleIndex {
	idx := make(moduleIndex, 0, len(mods))
	for _, m := range mods {
		// A module is page-aligned and smaller than 1 GiB; garbage entries are not indexed.
		if m.Size > 0 && m.Size <= maxModuleSize && m.Base&0xFFF == 0 && m.End() > uint64(m.Base) {
			idx = append(idx, m)
		}
	}
	sort.SliceStable(idx, func(i, j int) bool { return idx[i].Base < idx[j].Base })
	return idx
}

func (x moduleIndex) find(addr uint64) *Module {
	i := sort.Search(len(x), func(i int) bool { return x[i].End() > addr })
	for ; i < len(x); i++ {
		if x[i].Contains(addr) {
			return &x[i]
		}
		if uint64(x[i].Base) > addr {
			break
		}
	}
	return nil
}

func (x moduleIndex) attribute(source, what string, addr uint64) Attribution {
	a := Attribution{Source: source, What: what, Address: Hex(addr)}
	if m := x.find(addr); m != nil {
		off := Hex(addr - uint64(m.Base))
		a.Module, a.Offset, a.microsoft = m.Name, &off, m.Microsoft
	}
	return a
}

// chooseCulprit picks the probable culprit: the first direct evidence (broken driver,
// bug-check code address, exception address, instruction pointer) in a non-Microsoft
// module; then the first stack return address in a non-Microsoft module; then the first
// direct evidence in any module; then the first stack address in any module.
func chooseCulprit(direct, stack []Attribution) *Culprit {
	mk := func(a Attribution, why string) *Culprit {
		return &Culprit{Module: a.Module, Offset: a.Offset, Microsoft: a.microsoft, Evidence: why}
	}
	describe := func(a Attribution) string {
		s := a.Source
		if a.What != "" {
			s += " (" + a.What + ")"
		}
		return fmt.Sprintf("%s 0x%X is %s", s, uint64(a.Address), a.Location())
	}
	for _, a := range direct {
		if a.Module != "" && !a.microsoft {
			return mk(a, describe(a))
		}
	}
	for _, a := range stack {
		if a.Module != "" && !a.microsoft {
			why := fmt.Sprintf("a return address on the stack (at stack offset 0x%X) is %s", uint64(*a.StackOffset), a.Location())
			if len(direct) > 0 && direct[0].Module != "" {
				why += "; the direct evidence points at Microsoft's " + direct[0].Module + " only"
			}
			return mk(a, why)
		}
	}
	for _, a := range direct {
		if a.Module != "" {
			return mk(a, describe(a)+"; no evidence points at a non-Microsoft module")
		}
	}
	for _, a := range stack {
		if a.Module != "" {
			return mk(a, fmt.Sprintf("only the saved stack points at a module: %s (stack offset 0x%X)", a.Location(), uint64(*a.StackOffset)))
		}
	}
	return nil
}
