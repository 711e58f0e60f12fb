package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// content is n bytes that differ in every chunk.
func content(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// follow runs followFile on path while write writes it, and closes done when write returns.
func follow(t *testing.T, path string, opts followOptions, write func(t *testing.T)) followResult {
	t.Helper()
	done := make(chan struct{})
	ch := goFollow(context.Background(), path, done, opts)
	write(t)
	close(done)
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatal(o.err)
		}
		return o.r
	case <-time.After(30 * time.Second):
		t.Fatal("the follower did not finish")
	}
	return followResult{}
}

func wantFile(t *testing.T, path string, r followResult) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if r.Size != int64(len(b)) || !bytes.Equal(r.SHA256, sum[:]) {
		t.Errorf("followed %d bytes, sha256 %x; the file has %d bytes, sha256 %x", r.Size, r.SHA256, len(b), sum)
	}
}

func TestFollowGrowing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := content(5<<20+123, 1)
	var waits atomic.Int32
	// A read buffer smaller than the compared head (16 KiB < 64 KiB) is raised to it: verify
	// reads the whole head into it.
	r := follow(t, path, followOptions{Buf: 16 << 10, Poll: time.Millisecond, atEnd: func(n int64) {
		if n > 0 && n < int64(len(data)) { // caught up with the writer part-way
			waits.Add(1)
		}
	}}, func(t *testing.T) {
		// Opened like QEMU does (O_TRUNC on the file crashkey created), written in uneven
		// pieces with pauses, so the follower catches up with the writer many times.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for off, i := 0, 0; off < len(data); i++ {
			n := min(len(data)-off, 4096*(1+i%37)+i%5)
			if _, err := f.Write(data[off : off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
			if i%16 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	wantFile(t, path, r)
	if r.Restarts != 0 {
		t.Errorf("restarts = %d for an append-only writer", r.Restarts)
	}
	if waits.Load() == 0 {
		t.Error("the follower never waited for the writer: it did not follow a growing file")
	}
}

func TestFollowHeaderRewrittenAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := content(2<<20, 2)
	const hdr = 8192
	hashedAll := make(chan struct{})
	var once atomic.Bool
	r := follow(t, path, followOptions{Poll: time.Millisecond, atEnd: func(n int64) {
		if n == int64(len(data)) && once.CompareAndSwap(false, true) {
			close(hashedAll)
		}
	}}, func(t *testing.T) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// A placeholder header, the body, then (like a writer that learns the header's
		// fields only at the end) the real header over the placeholder, after the follower
		// has hashed the placeholder.
		if _, err := f.Write(make([]byte, hdr)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data[hdr:]); err != nil {
			t.Fatal(err)
		}
		<-hashedAll
		if _, err := f.WriteAt(data[:hdr], 0); err != nil {
			t.Fatal(err)
		}
	})
	wantFile(t, path, r)
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("test writer wrote the wrong file")
	}
	if r.Restarts == 0 {
		t.Error("a rewritten header went unnoticed (no restart)")
	}
}

func TestFollowTruncatedAndReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	first, second, third := content(1<<20, 3), content(300<<10, 4), content(700<<10, 5)
	var hashed atomic.Int64
	// waitHashed waits until the follower has hashed exactly n bytes and waits for more.
	waitHashed := func(t *testing.T, n int64) {
		for end := time.Now().Add(10 * time.Second); hashed.Load() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("the follower is at %d bytes after 10 s, want %d", hashed.Load(), n)
			}
		}
	}
	r := follow(t, path, followOptions{Poll: time.Millisecond, atEnd: func(n int64) { hashed.Store(n) }}, func(t *testing.T) {
		if err := os.WriteFile(path, first, 0o600); err != nil {
			t.Fatal(err)
		}
		waitHashed(t, int64(len(first)))
		// Truncated and rewritten shorter (a second O_TRUNC open).
		if err := os.WriteFile(path, second, 0o600); err != nil {
			t.Fatal(err)
		}
		waitHashed(t, int64(len(second))) // it saw the shorter file and started over
		// Replaced by another file at the same path.
		other := filepath.Join(dir, "other")
		if err := os.WriteFile(other, third, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
	})
	wantFile(t, path, r)
	if r.Size != int64(len(third)) || r.Restarts != 2 { // the truncation, then the replacement
		t.Errorf("size %d, restarts %d", r.Size, r.Restarts)
	}
}

func TestFollowCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(path, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := followFile(ctx, path, make(chan struct{}), followOptions{})
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the follower ignored the cancel")
	}
}

func TestFollowMissing(t *testing.T) {
	_, err := followFile(context.Background(), filepath.Join(t.TempDir(), "none"), make(chan struct{}), followOptions{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
}

// The follower's memory does not grow with the file: one buffer and the head copy.
func TestFollowBoundedMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chunk := content(1<<20, 6)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := follow(t, path, followOptions{}, func(t *testing.T) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := 0; i < 64; i++ {
			if _, err := f.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	})
	runtime.ReadMemStats(&after)
	if r.Size != 64<<20 {
		t.Fatalf("size %d", r.Size)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("following a 64 MiB file allocated %d bytes", grew)
	}
}
