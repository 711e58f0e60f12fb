package main

import (
	"strings"

	"golang.org/x/sys/unix"
)

// watchKmsg follows the kernel log from now on and calls onNMI for every "NMI received"
// message (x86's unknown_nmi_error: "Uhhuh. NMI received for unknown reason …"); out gets
// the errors.
func watchKmsg(out *output, onNMI func()) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		out.emit("error", "kmsg: "+err.Error())
		return
	}
	defer unix.Close(fd)
	if _, err := unix.Seek(fd, 0, 2 /* SEEK_END */); err != nil {
		out.emit("error", "kmsg: seek: "+err.Error())
		return
	}
	buf := make([]byte, 8192) // one record per read; the kernel limits a record to 1 KiB
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE || err == unix.EINTR {
			continue // records overwritten before we read them, or a signal
		}
		if err != nil {
			out.emit("error", "kmsg: read: "+err.Error())
			return
		}
		if strings.Contains(string(buf[:n]), "NMI received") {
			onNMI()
		}
	}
}
