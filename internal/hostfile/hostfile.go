// Package hostfile opens local input files that may be hostile (a disk image, a dump) and
// asks whether a running QEMU holds a file, without ever blocking or taking a lock.
package hostfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// KindError is returned by [Open] for a path that is neither a regular file nor a block
// device. Kind names what it is ("a FIFO (named pipe)", "a directory", ...).
type KindError struct {
	Path string
	Kind string
}

func (e *KindError) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file or block device", e.Path, e.Kind)
}

// Info is what [Open] learnt from fstat.
type Info struct {
	Dev, Ino uint64
	UID      uint32
	Size     int64 // st_size: 0 for a block device (seek to its end for its size)
	Regular  bool  // a regular file (else a block device)
}

// Open opens path read-only with O_NONBLOCK, so that a FIFO never blocks the open, refuses
// anything but a regular file or a block device (a [*KindError]), and clears O_NONBLOCK
// again on what it keeps, so that reads behave as usual.
func Open(path string) (*os.File, Info, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		var st unix.Stat_t
		if err == unix.ENXIO && unix.Stat(path, &st) == nil && fileKind(st.Mode) != "" { // a socket cannot be opened
			return nil, Info{}, &KindError{Path: path, Kind: fileKind(st.Mode)}
		}
		return nil, Info{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, Info{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if kind := fileKind(st.Mode); kind != "" {
		_ = unix.Close(fd)
		return nil, Info{}, &KindError{Path: path, Kind: kind}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return nil, Info{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	info := Info{Dev: uint64(st.Dev), Ino: st.Ino, UID: st.Uid, Size: st.Size, //nolint:unconvert // Dev is uint32 on some systems
		Regular: st.Mode&unix.S_IFMT == unix.S_IFREG}
	return os.NewFile(uintptr(fd), path), info, nil
}

// fileKind names a file type that is not a regular file or a block device ("" for those).
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFBLK:
		return ""
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO (named pipe)"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	}
	return "not a regular file"
}
