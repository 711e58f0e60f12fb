package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// publishFromParams publishes the Windows dump header when crashkey.vmcoreinfo=1 (=linux-first:
// after a Linux-style VMCOREINFO note, as when Linux's qemu_fw_cfg driver wrote its own first),
// and reports the outcome as one observation line:
//
//	vmcoreinfo published dtb=0x… kdbg=0x… note=0x… marker_pa=0x… marker=… runs=BASE+COUNT,…
//	vmcoreinfo error="…"
func publishFromParams(e *env) {
	linuxFirst := e.params.get("crashkey.vmcoreinfo", "") == "linux-first"
	if !linuxFirst && !e.params.flag("crashkey.vmcoreinfo") {
		return
	}
	w, err := publishVMCoreInfo(uint64(time.Now().UnixNano()), linuxFirst)
	if err != nil {
		logf("vmcoreinfo: %v", err)
		e.out.emit("vmcoreinfo", "error="+strconv.Quote(err.Error()))
		return
	}
	runs := make([]string, len(w.Runs))
	for i, r := range w.Runs {
		runs[i] = fmt.Sprintf("%#x+%#x", r.BasePage, r.PageCount)
	}
	e.out.emit("vmcoreinfo", "published", fmt.Sprintf("dtb=%#x", w.DTB), fmt.Sprintf("kdbg=%#x", w.KDBG),
		fmt.Sprintf("note=%#x", w.NotePA), fmt.Sprintf("marker_pa=%#x", w.MarkerPA), "marker="+w.Marker,
		"runs="+strings.Join(runs, ","), fmt.Sprintf("linux_first=%t", linuxFirst))
}
