package main

import (
	"fmt"
	"os"
)

// startPS2 reads the raw PS/2 byte stream and hands each byte to s.
func startPS2(out *output, path string, s sink) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	out.emit("dev", "ps2", "serio_raw", path)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := f.Read(buf)
			for _, b := range buf[:n] {
				s(inputEvent{Kind: "ps2", Data: []byte{b}})
			}
			if err != nil {
				out.emit("error", fmt.Sprintf("ps2: read %s: %v", path, err))
				return
			}
		}
	}()
	return nil
}
