package harness

import (
	"fmt"
	"io"
)

// File type bits of a cpio mode (the same as st_mode).
const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

// cpioFile is one entry of a newc archive. Name has no leading slash.
type cpioFile struct {
	Name                 string
	Mode                 uint32
	RdevMajor, RdevMinor uint32
	Data                 []byte
}

// writeCpio writes files as a cpio "newc" (SVR4, no CRC) archive, the format the Linux kernel
// unpacks as an initramfs, followed by the TRAILER!!! entry. Owners are root, times are zero, so
// the output depends only on the input.
func writeCpio(w io.Writer, files []cpioFile) error {
	for i, f := range files {
		if err := writeCpioEntry(w, uint32(i+1), f); err != nil {
			return fmt.Errorf("cpio %s: %w", f.Name, err)
		}
	}
	return writeCpioEntry(w, 0, cpioFile{Name: "TRAILER!!!", Mode: 0})
}

func writeCpioEntry(w io.Writer, ino uint32, f cpioFile) error {
	if f.Name == "" || len(f.Name) > 4096 {
		return fmt.Errorf("bad name length %d", len(f.Name))
	}
	if uint64(len(f.Data)) > 0xffffffff {
		return fmt.Errorf("file too large for newc (%d bytes)", len(f.Data))
	}
	nlink := uint32(1)
	if f.Mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, f.Mode, 0, 0, nlink, 0, len(f.Data), 0, 0, f.RdevMajor, f.RdevMinor, len(f.Name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(f.Name)+8)
	buf = append(buf, hdr...)
	buf = append(buf, f.Name...)
	buf = append(buf, 0)
	buf = appendPad(buf, len(buf))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	if len(f.Data) > 0 {
		if _, err := w.Write(f.Data); err != nil {
			return err
		}
		if pad := appendPad(nil, len(f.Data)); len(pad) > 0 {
			if _, err := w.Write(pad); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendPad appends NUL bytes to b until n plus the added bytes is a multiple of 4.
func appendPad(b []byte, n int) []byte {
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}
