package registry

import (
	"errors"
	"io"
)

// pageSize and maxPages bound the memory of pageCache: at most 16 MiB of a hive is held at a
// time, whatever size the hive claims.
const (
	pageSize = 64 << 10
	maxPages = 256
)

// pageCache is an io.ReaderAt over the first size bytes of r that keeps recently read 64 KiB
// pages. regparser reads a hive in many tiny pieces; through NTFS and qcow2 each would be a
// separate lookup, so the cache makes reading a hive out of a disk image fast, and its page
// limit bounds memory.
//
// It never returns an error other than io.EOF: regparser's helpers loop without advancing on
// other errors, so an I/O failure of r is remembered in err (for the caller to report) and
// looks like the end of the data to the parser.
type pageCache struct {
	r     io.ReaderAt
	size  int64
	pages map[int64][]byte
	fifo  []int64
	err   error
}

func newPageCache(r io.ReaderAt, size int64) *pageCache {
	return &pageCache{r: r, size: size, pages: make(map[int64][]byte)}
}

func (c *pageCache) page(n int64) []byte {
	if p, ok := c.pages[n]; ok {
		return p
	}
	if c.err != nil {
		return nil
	}
	start := n * pageSize
	l := min(int64(pageSize), c.size-start)
	p := make([]byte, l)
	got, err := c.r.ReadAt(p, start)
	if int64(got) < l {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.err = err
		return nil
	}
	if len(c.fifo) >= maxPages {
		delete(c.pages, c.fifo[0])
		c.fifo = c.fifo[1:]
	}
	c.pages[n] = p
	c.fifo = append(c.fifo, n)
	return p
}

// ReadAt implements io.ReaderAt. Reads at negative offsets or past the end return io.EOF.
func (c *pageCache) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= c.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && off < c.size {
		p := c.page(off / pageSize)
		if p == nil {
			return n, io.EOF
		}
		k := copy(b[n:], p[off%pageSize:])
		n += k
		off += int64(k)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
