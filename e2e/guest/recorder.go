package main

import (
	"fmt"
	"strings"
	"time"
)

func init() { modes["recorder"] = recorder }

// readyTimeout bounds how long the recorder waits for the expected keyboards before it reports
// the missing ones and says "ready" anyway.
const readyTimeout = 60 * time.Second

// recorder opens every keyboard and reports what it delivers (see the package comment).
//
// Lines written:
//
//	boot <mode>                          first line
//	dev ps2 <serio> <path>               PS/2 keyboard port bound to serio_raw and open
//	dev usb <path> <name…>               hidraw device open
//	dev evdev <bus> <path> <name…>       evdev keyboard grabbed (bus: usb, virtio, i8042, other)
//	ready                                every keyboard in crashkey.expect is open
//	ps2 <xx>                             one byte read from serio_raw
//	usb <xx xx …>                        one HID report
//	evdev <bus> <type> <code> <value>    one evdev event (type KEY, MSC, LED, REP or a number)
//	nmi                                  the kernel logged "NMI received"
//	error <text>                         something failed; ready still follows
func recorder(e *env) error {
	expect := expectedKeyboards(e)
	go watchKmsg(e.out, func() { e.out.emit("nmi") })
	openKeyboards(e, expect, func(ev inputEvent) {
		kind, fields := ev.fields()
		e.out.emit(kind, fields...)
	})
	e.out.emit("ready")
	hang()
	return nil
}

// expectedKeyboards parses crashkey.expect (ps2, usb, virtio), reporting unknown names.
func expectedKeyboards(e *env) map[string]bool {
	expect := map[string]bool{}
	for _, k := range e.params.list("crashkey.expect") {
		switch k {
		case "ps2", "usb", "virtio":
			expect[k] = true
		default:
			e.out.emit("error", fmt.Sprintf("unknown keyboard %q in crashkey.expect (want ps2, usb or virtio)", k))
		}
	}
	return expect
}

// openKeyboards binds the PS/2 port to serio_raw, opens every keyboard and hands what they
// deliver to s. It returns once every expected keyboard is open (or after readyTimeout, having
// reported the missing ones); devices that appear later (hot-plug) are still picked up.
func openKeyboards(e *env, expect map[string]bool, s sink) {
	w := newWatcher(e.out, s)
	if err := w.bindPS2(); err != nil {
		e.out.emit("error", "ps2: "+err.Error())
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		w.scan()
		missing := w.missing(expect)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.out.emit("error", "missing keyboards after "+readyTimeout.String()+": "+strings.Join(missing, ","))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	go func() {
		for {
			time.Sleep(500 * time.Millisecond)
			w.scan()
		}
	}()
}
