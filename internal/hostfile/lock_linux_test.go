package hostfile

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestQEMULocks: locks taken the way QEMU's file-posix driver takes them (shared OFD
// locks on single bytes, by another open file description) are seen; byte 101 (write
// permission) also reports written.
func TestQEMULocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, make([]byte, 512), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lock          int64 // -1: none
		held, written bool
	}{{-1, false, false}, {100, true, false}, {101, true, true}, {299, true, false}, {300, false, false}} {
		holder, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if tc.lock >= 0 {
			lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: tc.lock, Len: 1}
			if err := unix.FcntlFlock(holder.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
				t.Fatal(err)
			}
		}
		f, _, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		held, written, err := QEMULocks(f)
		if err != nil || held != tc.held || written != tc.written {
			t.Errorf("lock on byte %d: held %v written %v err %v, want %v %v", tc.lock, held, written, err, tc.held, tc.written)
		}
		f.Close()
		holder.Close()
	}
}
