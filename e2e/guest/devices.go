package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// watcher finds keyboard devices and starts one reader per device.
type watcher struct {
	out    *output         // dev and error lines
	sink   sink            // what the keyboards deliver
	opened map[string]bool // device path -> reader started
	// what is open, per keyboard kind (ps2, usb, virtio)
	have map[string]bool
	// usb needs both its hidraw (the report stream) and its evdev device grabbed (so that the
	// kernel never acts on the keys).
	usbHidraw, usbEvdev bool
}

func newWatcher(out *output, s sink) *watcher {
	return &watcher{out: out, sink: s, opened: map[string]bool{}, have: map[string]bool{}}
}

// missing lists the expected kinds that are not open yet.
func (w *watcher) missing(expect map[string]bool) []string {
	var m []string
	for k := range expect {
		if !w.have[k] {
			m = append(m, k)
		}
	}
	sort.Strings(m)
	return m
}

// scan opens every new hidraw and evdev device and, once bound, the PS/2 serio_raw device.
func (w *watcher) scan() {
	if !w.opened["/dev/serio_raw0"] {
		if _, err := os.Stat("/dev/serio_raw0"); err == nil {
			w.opened["/dev/serio_raw0"] = true
			if err := startPS2(w.out, "/dev/serio_raw0", w.sink); err != nil {
				w.out.emit("error", "ps2: "+err.Error())
			} else {
				w.have["ps2"] = true
			}
		}
	}
	hidraws, _ := filepath.Glob("/dev/hidraw*")
	sort.Strings(hidraws)
	for _, p := range hidraws {
		if w.opened[p] {
			continue
		}
		w.opened[p] = true
		name := sysName("/sys/class/hidraw/" + filepath.Base(p) + "/device/uevent")
		if err := startHidraw(w.out, p, name, w.sink); err != nil {
			w.out.emit("error", "usb: "+err.Error())
			continue
		}
		w.usbHidraw = true
	}
	events, _ := filepath.Glob("/dev/input/event*")
	sort.Strings(events)
	for _, p := range events {
		if w.opened[p] {
			continue
		}
		sys := "/sys/class/input/" + filepath.Base(p) + "/device"
		if !hasEVKey(sys) {
			w.opened[p] = true // not a keyboard: never look again
			continue
		}
		w.opened[p] = true
		bus := busName(readTrim(sys + "/id/bustype"))
		name := readTrim(sys + "/name")
		if err := startEvdev(w.out, p, bus, name, w.sink); err != nil {
			w.out.emit("error", "evdev: "+err.Error())
			continue
		}
		switch bus {
		case "virtio":
			w.have["virtio"] = true
		case "usb":
			w.usbEvdev = true
		}
	}
	if w.usbHidraw && w.usbEvdev {
		w.have["usb"] = true
	}
}

// bindPS2 binds the i8042 keyboard port (the serio whose description mentions KBD) to serio_raw,
// so that /dev/serio_raw0 delivers the bytes exactly as the controller passes them on.
func (w *watcher) bindPS2() error {
	dirs, _ := filepath.Glob("/sys/bus/serio/devices/serio*")
	sort.Strings(dirs)
	for _, d := range dirs {
		if !strings.Contains(readTrim(d+"/description"), "KBD") {
			continue
		}
		if err := os.WriteFile(d+"/drvctl", []byte("serio_raw"), 0); err != nil {
			return fmt.Errorf("bind %s to serio_raw: %w", filepath.Base(d), err)
		}
		logf("bound %s (%s) to serio_raw", filepath.Base(d), readTrim(d+"/description"))
		return nil
	}
	return fmt.Errorf("no serio port with KBD in its description under /sys/bus/serio/devices")
}

// hasEVKey reports whether the input device's capabilities include EV_KEY (bit 1).
func hasEVKey(sysDir string) bool {
	v := readTrim(sysDir + "/capabilities/ev")
	var bits uint64
	if _, err := fmt.Sscanf(v, "%x", &bits); err != nil {
		return false
	}
	return bits&(1<<1) != 0
}

// busName names a Linux input bus type (include/uapi/linux/input.h).
func busName(hex string) string {
	var n uint
	if _, err := fmt.Sscanf(hex, "%x", &n); err != nil {
		return "other"
	}
	switch n {
	case 0x03:
		return "usb"
	case 0x06:
		return "virtio"
	case 0x11:
		return "i8042"
	}
	return "other"
}

// sysName returns HID_NAME from a hidraw device's uevent file.
func sysName(uevent string) string {
	b, _ := os.ReadFile(uevent)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "HID_NAME="); ok {
			return v
		}
	}
	return ""
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
