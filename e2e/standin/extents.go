package standin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/crashkey/crashkey/disk"
)

// extentIO reads and writes a file of the Windows volume through its extents on the raw
// disk, bypassing the file system, as the crash-dump stack and SMSS do.
type extentIO struct {
	f    *os.File
	ext  []disk.Extent
	size int64
}

// openRaw opens dev for reading (and writing with rw) and refuses anything that is not a raw
// disk: a qcow2 file's offsets are not the guest's sectors. It also checks that the disk
// holds every extent of f.
func openRaw(dev string, f *DiskFile, rw bool) (*os.File, *extentIO, error) {
	flag := os.O_RDONLY
	if rw {
		flag = os.O_RDWR
	}
	fd, err := os.OpenFile(dev, flag, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open disk: %w", err)
	}
	fail := func(err error) (*os.File, *extentIO, error) {
		fd.Close()
		return nil, nil, err
	}
	var magic [4]byte
	if _, err := fd.ReadAt(magic[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return fail(fmt.Errorf("read disk %s: %w", dev, err))
	}
	if bytes.Equal(magic[:], []byte("QFI\xfb")) {
		return fail(fmt.Errorf("%w: %s is a qcow2 image: its file offsets are not the guest's sectors; use the guest's block device, or convert with qemu-img convert -O raw", ErrNotRaw, dev))
	}
	size, err := fd.Seek(0, io.SeekEnd)
	if err != nil {
		return fail(fmt.Errorf("size of %s: %w", dev, err))
	}
	var covered int64
	for _, e := range f.Extents {
		if e.Sparse || e.Length <= 0 || e.DiskOffset < 0 || e.FileOffset != covered || e.DiskOffset > size-e.Length {
			return fail(fmt.Errorf("%s: extent at file offset %d (disk offset %d, %d bytes) does not lie on the %d-byte disk %s: was the machine loaded from another disk?",
				f.Path, e.FileOffset, e.DiskOffset, e.Length, size, dev))
		}
		covered += e.Length
	}
	if covered != f.Size {
		return fail(fmt.Errorf("%s: extents cover %d of %d bytes", f.Path, covered, f.Size))
	}
	return fd, &extentIO{f: fd, ext: f.Extents, size: f.Size}, nil
}

// find returns the index of the extent holding file offset off.
func (e *extentIO) find(off int64) int {
	return sort.Search(len(e.ext), func(i int) bool { return e.ext[i].FileOffset+e.ext[i].Length > off })
}

// ReadAt reads the file's bytes at off.
func (e *extentIO) ReadAt(p []byte, off int64) (int, error) {
	return e.do(p, off, false)
}

// WriteAt writes p into the file's sectors at off; it never extends the file.
func (e *extentIO) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > e.size || int64(len(p)) > e.size-off {
		return 0, fmt.Errorf("write of %d bytes at %d: beyond the %d-byte file", len(p), off, e.size)
	}
	return e.do(p, off, true)
}

func (e *extentIO) do(p []byte, off int64, write bool) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	n := 0
	for n < len(p) {
		if off >= e.size {
			return n, io.EOF
		}
		i := e.find(off)
		if i >= len(e.ext) {
			return n, io.EOF
		}
		x := e.ext[i]
		in := off - x.FileOffset
		chunk := min(int64(len(p)-n), x.Length-in)
		var k int
		var err error
		if write {
			k, err = e.f.WriteAt(p[n:n+int(chunk)], x.DiskOffset+in)
		} else {
			k, err = e.f.ReadAt(p[n:n+int(chunk)], x.DiskOffset+in)
		}
		n += k
		off += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// streamWriter writes a stream into the file from offset 0 through the extents, holding back
// the first len(held) bytes (written as zeros) so that Commit can write them last: a dump
// whose signature is on disk is complete.
type streamWriter struct {
	e    *extentIO
	off  int64
	held []byte
}

func (w *streamWriter) Write(p []byte) (int, error) {
	total := len(p)
	if w.off < int64(len(w.held)) {
		k := copy(w.held[w.off:], p)
		if _, err := w.e.WriteAt(make([]byte, k), w.off); err != nil {
			return 0, err
		}
		w.off += int64(k)
		p = p[k:]
	}
	if len(p) == 0 {
		return total, nil
	}
	if int64(len(p)) > w.e.size-w.off {
		return 0, fmt.Errorf("%w: the dump runs past the end of the %d-byte file", ErrDumpTooLarge, w.e.size)
	}
	n, err := w.e.WriteAt(p, w.off)
	w.off += int64(n)
	if err != nil {
		return total - len(p) + n, err
	}
	return total, nil
}

// commit syncs the data, writes the held-back bytes and syncs again.
func (w *streamWriter) commit() error {
	if err := w.e.f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	n := min(int64(len(w.held)), w.off)
	if _, err := w.e.WriteAt(w.held[:n], 0); err != nil {
		return err
	}
	if err := w.e.f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}
