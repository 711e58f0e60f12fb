package standin

import (
	"os"
	"syscall"
)

// blkflsbuf is BLKFLSBUF, _IO(0x12, 97): write back and drop a block device's buffer cache.
const blkflsbuf = 0x1261

// flushBuffers drops the page cache of the block device at path, so that what another device
// node of the same disk (the whole disk or a partition) wrote is read afresh. Ordinary files
// share one cache and need nothing; errors are ignored (the caller syncs anyway).
func flushBuffers(path string) {
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return
	}
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	_ = f.Sync()
	_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), blkflsbuf, 0)
}
