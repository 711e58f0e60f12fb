package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A host-side dump is hashed while QEMU writes it, not read back afterwards: the follower reads
// the growing file behind the writer (from the page cache the writer just filled) and feeds
// sha256 as it goes, so the hash is ready moments after the writer is done.
//
// QEMU's writers append only: dump/win_dump.c writes the patched header once, first, then every
// run in order (qemu_write_full on the one fd, no seek), and the ELF writer of dump/dump.c
// (fd_write_vmcore) writes the ELF header, program headers, notes and memory in order; only the
// kdump formats, which crashkey does not ask for, seek. The follower still does not trust that:
// it keeps the first bytes it hashed (the headers a writer would patch at the end) and compares
// them with the file once the writer is done, starts over when the file shrinks (a writer that
// truncates, as QEMU's O_TRUNC open does) or is replaced by another file at the same path, and
// checks that the final size is what it hashed. A change it finds costs a second reading of the
// file, which is the old read-back: slow, but the hash is always the final file's.

// followHead is how many leading bytes the follower compares again at the end: the win-dmp
// header (8 KiB) and the ELF headers and notes of a guest with many CPUs.
const followHead = 64 << 10

// writebackChunk is how many hashed bytes the follower lets gather before it starts their disk
// writes (followOptions.Writeback).
const writebackChunk = 16 << 20

// followOptions tune followFile.
type followOptions struct {
	// Head is how many leading bytes are compared again at the end (default followHead).
	Head int
	// Poll is how long the follower waits for more bytes at the end of the file (default 5 ms).
	Poll time.Duration
	// Buf is the read size (default 1 MiB).
	Buf int
	// Writeback starts the disk writes of what has been hashed (sync_file_range, a hint), so
	// that the caller's final fsync has little left to wait for.
	Writeback bool
	// atEnd, when set, is called each time the follower has hashed all there is and waits
	// for more (tests).
	atEnd func(hashed int64)
}

// followResult is the file the writer finished.
type followResult struct {
	Size   int64
	SHA256 []byte
	// Restarts counts the times the follower started over (the file shrank or was replaced, or
	// its head changed after it was hashed).
	Restarts int
	// AtDone is how many bytes had been hashed when the writer finished (the rest was hashed
	// after it).
	AtDone int64
}

// followed is followFile's outcome.
type followed struct {
	r   followResult
	err error
}

// goFollow runs followFile in a goroutine of its own; its outcome arrives on the returned
// channel, whose buffer lets the goroutine end whether or not anyone receives.
func goFollow(ctx context.Context, path string, done <-chan struct{}, opts followOptions) <-chan followed {
	ch := make(chan followed, 1)
	go func() {
		r, err := followFile(ctx, path, done, opts)
		ch <- followed{r, err}
	}()
	return ch
}

// followFile hashes path while a writer grows it, until done is closed (the writer has
// finished and will write no more) and the end of the file is reached. It holds one buffer
// and a copy of the file's head, whatever the file's size.
func followFile(ctx context.Context, path string, done <-chan struct{}, opts followOptions) (followResult, error) {
	if opts.Head <= 0 {
		opts.Head = followHead
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Millisecond
	}
	if opts.Buf <= 0 {
		opts.Buf = 1 << 20
	}
	opts.Buf = max(opts.Buf, opts.Head) // verify reads the head into buf
	fw := &follower{buf: make([]byte, opts.Buf), head: make([]byte, 0, opts.Head), h: sha256.New()}
	defer fw.close()
	if err := fw.open(path); err != nil {
		return followResult{}, err
	}
	finished := false
	for {
		if !finished {
			select {
			case <-done:
				finished = true // every byte is in the file now: read to its end once more
				fw.res.AtDone = fw.off
			default:
			}
		}
		n, err := fw.f.ReadAt(fw.buf, fw.off)
		if n > 0 {
			fw.add(fw.buf[:n])
			if opts.Writeback && fw.off-fw.flushed >= writebackChunk {
				// Only a hint: an error here leaves the work to the final fsync.
				_ = unix.SyncFileRange(int(fw.f.Fd()), fw.flushed, fw.off-fw.flushed, unix.SYNC_FILE_RANGE_WRITE)
				fw.flushed = fw.off
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fw.res, fmt.Errorf("reading %s: %w", path, err)
		}
		if n > 0 {
			if err := ctx.Err(); err != nil {
				return fw.res, err
			}
			continue // read on: only an empty read can mean the end, or a shorter file
		}
		// At the end of what is written so far.
		st, err := fw.f.Stat()
		if err != nil {
			return fw.res, fmt.Errorf("reading %s: %w", path, err)
		}
		if st.Size() < fw.off {
			fw.restart() // truncated behind us
			continue
		}
		if st.Size() > fw.off {
			continue
		}
		if finished {
			break
		}
		if opts.atEnd != nil {
			opts.atEnd(fw.off)
		}
		select {
		case <-ctx.Done():
			return fw.res, ctx.Err()
		case <-done:
			finished = true
			fw.res.AtDone = fw.off
		case <-time.After(opts.Poll):
		}
	}
	// The writer is done: the path must still be the file hashed, its head unchanged and its
	// size the bytes hashed; otherwise hash the final file again.
	for {
		ok, err := fw.verify(path)
		if err != nil {
			return fw.res, err
		}
		if ok {
			break
		}
		if fw.res.Restarts > 3 {
			return fw.res, fmt.Errorf("reading %s: the file keeps changing after its writer finished", path)
		}
		if err := fw.rehash(ctx, path); err != nil {
			return fw.res, err
		}
	}
	fw.res.Size, fw.res.SHA256 = fw.off, fw.h.Sum(nil)
	return fw.res, nil
}

type follower struct {
	f   *os.File
	off int64
	// flushed is where the writeback started so far ends.
	flushed int64
	h       hash.Hash
	head    []byte
	buf     []byte
	res     followResult
}

func (fw *follower) open(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	fw.close()
	fw.f = f
	return nil
}

func (fw *follower) close() {
	if fw.f != nil {
		fw.f.Close()
		fw.f = nil
	}
}

func (fw *follower) add(p []byte) {
	fw.h.Write(p)
	if room := cap(fw.head) - len(fw.head); room > 0 && fw.off == int64(len(fw.head)) {
		fw.head = append(fw.head, p[:min(room, len(p))]...)
	}
	fw.off += int64(len(p))
}

func (fw *follower) restart() {
	fw.h.Reset()
	fw.off, fw.flushed = 0, 0
	fw.head = fw.head[:0]
	fw.res.Restarts++
}

// verify reports whether path is still the file followed, with the head and size hashed.
func (fw *follower) verify(path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	fst, err := fw.f.Stat()
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	if !os.SameFile(st, fst) || st.Size() != fw.off {
		return false, nil
	}
	got := fw.buf[:len(fw.head)]
	if _, err := fw.f.ReadAt(got, 0); err != nil {
		return false, fmt.Errorf("reading %s: %w", path, err)
	}
	return bytes.Equal(got, fw.head), nil
}

// rehash hashes the final file at path from its start (the slow path).
func (fw *follower) rehash(ctx context.Context, path string) error {
	if err := fw.open(path); err != nil {
		return err
	}
	fw.restart()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := fw.f.ReadAt(fw.buf, fw.off)
		fw.add(fw.buf[:n])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
	}
}
