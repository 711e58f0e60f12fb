package main

import (
	"fmt"
	"os"
)

// startHidraw reads HID input reports (one per read) and hands each to s.
func startHidraw(out *output, path, name string, s sink) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	out.emit("dev", "usb", path, name)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				s(inputEvent{Kind: "usb", Data: append([]byte(nil), buf[:n]...)})
			}
			if err != nil {
				out.emit("error", fmt.Sprintf("usb: read %s: %v", path, err))
				return
			}
		}
	}()
	return nil
}
