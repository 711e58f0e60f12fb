package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// eviocgrab is EVIOCGRAB, _IOW('E', 0x90, int).
const eviocgrab = 0x40044590

// inputEventSize is sizeof(struct input_event) on amd64: struct timeval (16) + type (2) + code
// (2) + value (4).
const inputEventSize = 24

// startEvdev grabs a keyboard's evdev device, so that no other input handler (the console's
// keyboard handler, which treats Ctrl+Scroll Lock as "show task states") sees its keys, and
// hands every event except EV_SYN to s.
func startEvdev(out *output, path, bus, name string, s sink) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := unix.IoctlSetInt(int(f.Fd()), eviocgrab, 1); err != nil {
		f.Close()
		return fmt.Errorf("EVIOCGRAB %s: %w", path, err)
	}
	out.emit("dev", "evdev", bus, path, name)
	go func() {
		buf := make([]byte, inputEventSize)
		for {
			if _, err := io.ReadFull(f, buf); err != nil {
				out.emit("error", fmt.Sprintf("evdev: read %s: %v", path, err))
				return
			}
			typ := binary.LittleEndian.Uint16(buf[16:])
			code := binary.LittleEndian.Uint16(buf[18:])
			value := int32(binary.LittleEndian.Uint32(buf[20:]))
			if typ == 0 { // EV_SYN
				continue
			}
			s(inputEvent{Kind: "evdev", Bus: bus, Type: typ, Code: code, Value: value})
		}
	}()
	return nil
}
