package disk

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// qemuStyleLock takes a shared OFD lock on one byte of f, as QEMU's file-posix driver does.
func qemuStyleLock(f *os.File, b int64) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: b, Len: 1}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}
