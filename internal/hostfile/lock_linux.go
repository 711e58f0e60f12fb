package hostfile

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// QEMU's file-posix driver takes shared OFD locks on single bytes of the image file:
// byte 100+i for each permission it holds and byte 200+i for each permission it does not
// share (RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE in block/file-posix.c). Asking whether a
// write lock over bytes 100-299 could be taken reveals any of them, without taking a lock.
const (
	qemuLockStart = 100
	qemuLockLen   = 200
	// qemuLockWrite is the byte QEMU locks while it holds BLK_PERM_WRITE (0x02, bit 1).
	qemuLockWrite = qemuLockStart + 1
)

// QEMULocks reports whether a running QEMU holds f at all (held: another open file
// description holds a lock on QEMU's lock bytes), and whether it holds it with write
// permission (written). It only queries (F_OFD_GETLK, falling back to F_GETLK); it never
// locks.
func QEMULocks(f *os.File) (held, written bool, err error) {
	if held, err = lockedRange(f, qemuLockStart, qemuLockLen); err != nil || !held {
		return held, false, err
	}
	written, err = lockedRange(f, qemuLockWrite, 1)
	return held, written, err
}

func lockedRange(f *os.File, start, n int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: start, Len: n}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk)
	if err == unix.EINVAL {
		lk = unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: start, Len: n}
		err = unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk)
	}
	if err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
