package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestNotATerminal(t *testing.T) {
	var b bytes.Buffer
	bar := New(&b, 100, "pull")
	if bar != nil || bar.Func() != nil {
		t.Fatal("a bar on a buffer")
	}
	bar.Update(50, 100) // a nil bar is a no-op
	bar.Finish()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if New(f, 100, "pull") != nil || IsTerminal(f) {
		t.Error("a bar on a regular file")
	}
	if b.Len() != 0 {
		t.Errorf("wrote %q", b.String())
	}
}

func TestPTYIsTerminal(t *testing.T) {
	// The master side of a pseudo-terminal answers terminal ioctls.
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer f.Close()
	if !IsTerminal(f) {
		t.Error("/dev/ptmx is not taken for a terminal")
	}
}

func TestDraw(t *testing.T) {
	for _, color := range []bool{true, false} {
		var b bytes.Buffer
		bar := newBar(&b, 4<<20, "check", color, 0)
		bar.Update(1<<20, 4<<20)
		out := b.String()
		if !strings.Contains(out, "check") || !strings.Contains(out, " 25% [======>") || !strings.Contains(out, "1.0/4.0 MiB") {
			t.Errorf("color=%v: %q", color, out)
		}
		if hasColor := strings.Contains(out, "\x1b[36m"); hasColor != color {
			t.Errorf("color=%v but colour codes present=%v: %q", color, hasColor, out)
		}
		b.Reset()
		bar.Update(6<<20, 8<<20) // the total grew
		if !strings.Contains(b.String(), "6.0/8.0 MiB") {
			t.Errorf("after the total grew: %q", b.String())
		}
		b.Reset()
		bar.Finish()
		if out := b.String(); !strings.HasSuffix(out, "\r") || strings.TrimSpace(strings.ReplaceAll(out, "\r", "")) != "" && !strings.Contains(out, "\r ") {
			t.Errorf("finish does not clear the line: %q", out)
		}
	}
}

func TestCount(t *testing.T) {
	var b bytes.Buffer
	bar := newCountBar(&b, 4, "run", false, 0)
	bar.Update(1, 4)
	if out := b.String(); !strings.Contains(out, "run") || !strings.Contains(out, " 25% ") || !strings.Contains(out, "(1/4") || strings.Contains(out, "B") {
		t.Errorf("count bar: %q", out)
	}
	b.Reset()
	bar.Clear()
	if out := b.String(); !strings.HasPrefix(out, "\r") || strings.TrimSpace(strings.ReplaceAll(out, "\r", "")) != "" {
		t.Errorf("clear: %q", out)
	}
	var nb *Bar
	nb.Clear() // no-op
	if NewCount(&b, 4, "run") != nil {
		t.Error("a count bar on a buffer")
	}
}
