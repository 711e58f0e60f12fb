package harness

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// maxObservations bounds what one guest's stream keeps in memory.
const maxObservations = 1 << 20

// stream follows the guest's data serial file and keeps its parsed lines.
type stream struct {
	mu      sync.Mutex
	obs     []Observation
	changed chan struct{} // closed (and replaced) whenever obs grows or the stream ends
	ended   bool
	endErr  error
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

func (s *stream) add(line string, now time.Time) {
	o, err := ParseLine(line)
	if err != nil {
		o = Observation{Kind: KindInvalid, Fields: []string{err.Error()}, Line: line}
	}
	o.Time = now
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.obs) >= maxObservations {
		if !s.ended {
			s.ended, s.endErr = true, errors.New("observation stream: more than 1048576 lines; the guest is flooding its serial port")
			close(s.changed)
			s.changed = make(chan struct{})
		}
		return
	}
	o.Index = len(s.obs)
	s.obs = append(s.obs, o)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *stream) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended, s.endErr = true, err
	close(s.changed)
	s.changed = make(chan struct{})
}

// snapshot returns the observations from index from on, the channel that signals the next
// change, and whether the stream has ended.
func (s *stream) snapshot(from int) ([]Observation, <-chan struct{}, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from < 0 {
		from = 0
	}
	var out []Observation
	if from < len(s.obs) {
		out = append(out, s.obs[from:]...)
	}
	return out, s.changed, s.ended, s.endErr
}

func (s *stream) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.obs)
}

// follow tails path (waiting for it to appear) until stop is closed, then reads what is left and
// ends the stream. Partial lines stay buffered until their newline arrives; a line longer than
// maxLine is cut.
func (s *stream) follow(path string, stop <-chan struct{}) {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(path); err == nil {
			break
		}
		select {
		case <-stop:
			s.end(nil)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer f.Close()
	var pending []byte
	buf := make([]byte, 64<<10)
	drain := func() error {
		for {
			n, err := f.Read(buf)
			if n > 0 {
				pending = append(pending, buf[:n]...)
				now := time.Now()
				for {
					i := bytes.IndexByte(pending, '\n')
					if i < 0 {
						break
					}
					s.add(string(pending[:i]), now)
					pending = pending[i+1:]
				}
				if len(pending) > maxLine {
					s.add(string(pending[:maxLine+1]), now) // rejected by ParseLine: too long
					pending = pending[:0]
				}
			}
			if err == io.EOF || n == 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for {
		if err := drain(); err != nil {
			s.end(err)
			return
		}
		select {
		case <-stop:
			err := drain()
			s.end(err)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
