package hostfile

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenRefusesNonFiles: a FIFO (with no writer, which a plain open would wait for
// forever), a socket, a character device and a directory are each refused at once with a
// KindError naming what they are; a regular file opens and reads as usual.
func TestOpenRefusesNonFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reg := filepath.Join(dir, "file")
	if err := os.WriteFile(reg, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, kind string }{
		{fifo, "FIFO"}, {sock, "socket"}, {"/dev/null", "character device"}, {dir, "directory"},
	} {
		done := make(chan error, 1)
		go func() {
			f, _, err := Open(tc.path)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			var ke *KindError
			if !errors.As(err, &ke) || !strings.Contains(ke.Kind, tc.kind) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("Open(%s) = %v, want a KindError naming %q and the path", tc.path, err, tc.kind)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Open(%s) blocked", tc.path)
		}
	}
	f, info, err := Open(reg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !info.Regular || info.Size != 5 || info.Ino == 0 {
		t.Errorf("info = %+v", info)
	}
	if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("flags = %#x, %v: O_NONBLOCK left set", fl, err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "hello" {
		t.Errorf("read %q, %v", b, err)
	}
	if _, _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}
