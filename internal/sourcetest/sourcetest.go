// Package sourcetest provides disk sources that fail as remote streams do, for tests.
package sourcetest

import (
	"errors"
	"io"
	"os"
	"sync"
	"testing"
)

// ErrStream is the error of a stream that broke.
var ErrStream = errors.New("stream broke: connection reset")

// Flaky serves an image file as a remote disk.Source would: every read fails with ErrStream
// once FailAfter reads were served (0: never; -1: from the first read), and with Short, a
// read returns at most Short bytes with a nil error (which io.ReaderAt forbids but a
// careless stream does).
type Flaky struct {
	FailAfter int
	Short     int

	f     *os.File
	size  int64
	mu    sync.Mutex
	reads int
}

// Open opens path as a Flaky source, closed when the test ends.
func Open(tb testing.TB, path string) *Flaky {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	return &Flaky{f: f, size: fi.Size()}
}

// Name names the source as a remote volume.
func (s *Flaky) Name() string { return "remote:/pool/win.qcow2" }

// Size is the file's size.
func (s *Flaky) Size() int64 { return s.size }

// Reads is how many reads were asked for.
func (s *Flaky) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// ReadAt reads the file, or fails as configured.
func (s *Flaky) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	s.reads++
	fail := s.FailAfter < 0 || s.FailAfter > 0 && s.reads > s.FailAfter
	s.mu.Unlock()
	if fail {
		return 0, ErrStream
	}
	if s.Short > 0 && len(p) > s.Short {
		n, err := s.f.ReadAt(p[:s.Short], off)
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	}
	return s.f.ReadAt(p, off)
}

// Cuts returns the cut points to try for an operation that makes total reads: every one,
// or at most 200 spread over them. Cut 0 means "fail the first read" (FailAfter -1).
func Cuts(total int) []int {
	step := max(1, total/200)
	var out []int
	for c := 0; c < total; c += step {
		if c == 0 {
			out = append(out, -1)
			continue
		}
		out = append(out, c)
	}
	return out
}
