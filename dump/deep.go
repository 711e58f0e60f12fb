package dump

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// deepChunk is the size of one read of the deep check: small enough that a chunk is still
// in the reading CPU's cache when its pages are checked.
const deepChunk = 256 << 10

// deepMaxWorkers bounds the goroutines of the deep check, and so its memory
// (deepMaxWorkers × deepChunk).
const deepMaxWorkers = 4

var zeroPage [PageSize]byte

// deepChunkResult is what one worker found in one chunk.
type deepChunkResult struct {
	read, zero, unreadable uint64
	bad                    []uint64 // indices (in file order) of the first unreadable pages
	bytes                  int64
}

// deepRead reads every stored page that the file holds and counts the all-zero and the
// unreadable ones. The pages are read in chunks of deepChunk bytes, handed out in file order
// to one worker per CPU (at least two, at most deepMaxWorkers): each worker reads its chunk
// with one ReadAt and checks the pages while they are in its cache, so that reading and
// checking run on every core. Memory use is bounded by the workers' buffers.
func (f *File) deepRead(ctx context.Context, m *memLayout, progress func(done, total int64)) (*DeepResult, error) {
	size := uint64(f.size)
	var inFile uint64
	if size > m.dataStart {
		inFile = min(m.stored, (size-m.dataStart)/PageSize)
	}
	total := int64(inFile * PageSize)
	const perChunk = deepChunk / PageSize
	chunks := (inFile + perChunk - 1) / perChunk
	workers := int(min(uint64(min(max(runtime.GOMAXPROCS(0), 2), deepMaxWorkers)), max(chunks, 1)))

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Uint64
	results := make(chan deepChunkResult, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, min(perChunk, max(inFile, 1))*PageSize)
			for {
				c := next.Add(1) - 1
				if c >= chunks || wctx.Err() != nil {
					return
				}
				first := c * perChunk
				r := f.deepChunk(buf, m.dataStart, first, min(perChunk, inFile-first))
				select {
				case results <- r:
				case <-wctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	res := &DeepResult{}
	var bad []uint64
	var done int64
	for r := range results {
		res.PagesRead += r.read
		res.ZeroPages += r.zero
		res.UnreadablePages += r.unreadable
		if len(r.bad) > 0 {
			bad = append(bad, r.bad...)
			slices.Sort(bad)
			bad = bad[:min(len(bad), maxListed)]
		}
		done += r.bytes
		if progress != nil {
			progress(done, total)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		cancel()
		for range results { // let the workers finish
		}
		return nil, err
	}
	for _, idx := range bad {
		pfn, ok, err := f.pageAtIndex(m, idx)
		if err != nil {
			return nil, err
		}
		if ok {
			res.FirstUnreadable = append(res.FirstUnreadable, U64{pfn * PageSize, true})
		}
	}
	return res, nil
}

// deepChunk reads n pages from the first-th stored page on (stored from file offset
// dataStart) into buf and checks them. After a failed read it retries page by page to
// count the unreadable ones.
func (f *File) deepChunk(buf []byte, dataStart, first, n uint64) deepChunkResult {
	b := buf[:n*PageSize]
	off := int64(dataStart + first*PageSize)
	_, err := f.r.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	r := deepChunkResult{bytes: int64(len(b))}
	for i := uint64(0); i < n; i++ {
		page := b[i*PageSize : (i+1)*PageSize]
		if err != nil {
			if _, err := f.r.ReadAt(page, off+int64(i*PageSize)); err != nil && err != io.EOF {
				r.unreadable++
				if len(r.bad) < maxListed {
					r.bad = append(r.bad, first+i)
				}
				continue
			}
		}
		r.read++
		if bytes.Equal(page, zeroPage[:]) {
			r.zero++
		}
	}
	return r
}
