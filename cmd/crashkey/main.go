// Command crashkey forces a crash dump out of a Windows guest in a VM, precisely and
// repeatably, and proves that the dump is good. See the README for the commands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// interruptGrace is how long a command may take to return after SIGINT or SIGTERM before
// the process exits anyway (130 or 143). Commands that release keys or restore a guest's
// panic action on the way out get cleanupGrace instead; a second signal ends any of them
// at once.
const (
	interruptGrace = time.Second
	cleanupGrace   = 15 * time.Second
)

// cleanupCommands release pressed keys or restore a guest's settings when interrupted.
var cleanupCommands = map[string]bool{"send": true, "nmi": true, "run": true}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	grace := interruptGrace
	if c, _, err := newRootCmd().Find(os.Args[1:]); err == nil && cleanupCommands[c.Name()] {
		grace = cleanupGrace
	}
	done := make(chan struct{})
	var got atomic.Value
	go exitAfterSignal(done, grace, os.Stderr, os.Exit, &got)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	for i := 0; i < 100 && code == ExitInterrupted && got.Load() == nil; i++ {
		time.Sleep(time.Millisecond) // the signal reached the context first
	}
	close(done)
	stop()
	if s, ok := got.Load().(os.Signal); ok && code == ExitInterrupted {
		code = signalCode(s) // 143 after SIGTERM
	}
	os.Exit(code)
}

// exitAfterSignal is the fallback behind signal.NotifyContext: a command that has not
// returned grace after SIGINT or SIGTERM (one stuck in a system call, or in a loop that does
// not check its context) is ended with the usual code, 128 + the signal's number.
// The first signal is stored in got.
func exitAfterSignal(done <-chan struct{}, grace time.Duration, stderr io.Writer, exit func(int), got *atomic.Value) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var first os.Signal
	var timer <-chan time.Time
	for {
		select {
		case <-done:
			return
		case s := <-sigs:
			if first != nil { // a second signal: stop now
				exit(signalCode(first))
				return
			}
			first = s
			got.Store(s)
			timer = time.After(grace)
		case <-timer:
			fmt.Fprintf(stderr, "crashkey: interrupted (%v): the command did not stop within %v\n", first, grace)
			exit(signalCode(first))
			return
		}
	}
}

// signalCode is the shell's exit code for a process ended by s: 130 for SIGINT, 143 for
// SIGTERM.
func signalCode(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return ExitInterrupted
}
