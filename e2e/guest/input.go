package main

import (
	"fmt"
	"strconv"
)

// inputEvent is one thing a keyboard delivered: a PS/2 byte, a HID report or an evdev event.
// Readers hand them to a sink; the recorder mode prints them, other modes (a stand-in Windows
// guest) can feed them to a driver model instead.
type inputEvent struct {
	// Kind is "ps2", "usb" or "evdev".
	Kind string
	// Data is the PS/2 byte (one) or the HID report.
	Data []byte
	// Bus, Type, Code and Value describe an evdev event (Bus: usb, virtio, i8042, other).
	Bus   string
	Type  uint16
	Code  uint16
	Value int32
}

// sink receives input events; it is called from the readers' goroutines concurrently.
type sink func(inputEvent)

var evTypeNames = map[uint16]string{0x01: "KEY", 0x04: "MSC", 0x11: "LED", 0x14: "REP"}

// fields formats e as an observation line's kind and fields: "ps2 e0", "usb 10 00 47 …",
// "evdev virtio KEY 97 1".
func (e inputEvent) fields() (string, []string) {
	switch e.Kind {
	case "ps2", "usb":
		return e.Kind, []string{hexBytes(e.Data)}
	case "evdev":
		tn, ok := evTypeNames[e.Type]
		if !ok {
			tn = strconv.Itoa(int(e.Type))
		}
		return "evdev", []string{e.Bus, tn, strconv.Itoa(int(e.Code)), strconv.Itoa(int(e.Value))}
	}
	return "error", []string{fmt.Sprintf("unknown input kind %q", e.Kind)}
}
