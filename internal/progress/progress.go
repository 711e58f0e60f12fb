// Package progress draws a progress bar for long operations (pull, check --deep, dump,
// selftest, fleet runs) on a terminal, and nothing at all when the output is not one (a pipe,
// a file, a CI log). It wraps github.com/schollz/progressbar/v3; golang.org/x/term says what
// is a terminal. Colour is used only on a terminal and never when NO_COLOR is set
// (https://no-color.org) or TERM is "dumb".
package progress

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar is a progress bar, or a no-op. A nil *Bar is a valid no-op too. Its methods are safe
// for concurrent use.
type Bar struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	total int64
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns a bar that shows on w a byte count out of total with description ("pull",
// "check"), or a no-op bar when w is not a terminal.
func New(w io.Writer, total int64, description string) *Bar {
	if !IsTerminal(w) || os.Getenv("TERM") == "dumb" {
		return nil
	}
	return newBar(w, total, description, os.Getenv("NO_COLOR") == "", 100*time.Millisecond)
}

// NewCount returns a bar that counts items (a fleet's targets) out of total, or a no-op bar
// when w is not a terminal.
func NewCount(w io.Writer, total int64, description string) *Bar {
	if !IsTerminal(w) || os.Getenv("TERM") == "dumb" {
		return nil
	}
	return newCountBar(w, total, description, os.Getenv("NO_COLOR") == "", 100*time.Millisecond)
}

// newBar builds a drawing bar on w whatever w is, redrawn at most once per throttle.
func newBar(w io.Writer, total int64, description string, color bool, throttle time.Duration) *Bar {
	return build(w, total, description, color, throttle, true)
}

// newCountBar builds a drawing bar of items on w whatever w is.
func newCountBar(w io.Writer, total int64, description string, color bool, throttle time.Duration) *Bar {
	return build(w, total, description, color, throttle, false)
}

func build(w io.Writer, total int64, description string, color bool, throttle time.Duration, bytes bool) *Bar {
	if color {
		description = "[cyan]" + description + "[reset]"
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionEnableColorCodes(color),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionUseIECUnits(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(throttle),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
	)
	return &Bar{bar: bar, total: total}
}

// Update sets the bytes done out of total (total may change: a dump's length is known only
// after its header is read). Its signature is that of pull.Options.Progress and
// dump.CheckOptions.Progress.
func (b *Bar) Update(done, total int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if total != b.total {
		b.total = total
		b.bar.ChangeMax64(total)
	}
	_ = b.bar.Set64(done)
}

// Func returns Update as a callback, or nil for a no-op bar, so that callers can skip the
// work of reporting progress when nothing is shown.
func (b *Bar) Func() func(done, total int64) {
	if b == nil {
		return nil
	}
	return b.Update
}

// Clear erases the bar's line so that a caller can print a line of its own (on the same
// terminal); the next Update draws the bar again.
func (b *Bar) Clear() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Clear()
}

// Finish clears the bar's line.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Finish()
}
