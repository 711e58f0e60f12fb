package main

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// output writes observation lines ("kind field field…\n") to a serial port. Writes are
// serialized so that lines from concurrent readers never interleave.
type output struct {
	mu sync.Mutex
	f  *os.File
}

// openOutput opens path for writing and, when it is a terminal, puts it in raw mode so that the
// line discipline neither adds carriage returns nor echoes.
func openOutput(path string) (*output, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
			return nil, fmt.Errorf("raw mode on %s: %w", path, err)
		}
	}
	return &output{f: f}, nil
}

// emit writes one line: kind followed by the fields, separated by single spaces. Newlines in
// fields are replaced so that one observation is always one line.
func (o *output) emit(kind string, fields ...string) {
	line := kind
	if len(fields) > 0 {
		line += " " + strings.Join(fields, " ")
	}
	line = strings.NewReplacer("\n", " ", "\r", " ").Replace(line) + "\n"
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := o.f.WriteString(line); err != nil {
		logf("write observation: %v", err)
	}
}

// hexBytes formats b as lowercase two-digit hex values separated by spaces.
func hexBytes(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x", c)
	}
	return sb.String()
}
