package main

import (
	"context"
	"errors"
	"strings"
)

// Exit codes shared by every command (also listed in the README and in `crashkey --help`).
const (
	ExitOK          = 0   // success
	ExitNo          = 1   // ran, but the answer is "no": would not crash, invalid dump, problems found
	ExitUsage       = 2   // bad input or usage
	ExitFailed      = 3   // the operation failed: connection, I/O, timeout
	ExitInterrupted = 130 // interrupted (Ctrl-C, SIGTERM)
)

// exitError carries an exit code with an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as bad input (exit 2).
func usageErr(err error) error { return &exitError{ExitUsage, err} }

// failedErr marks err as an operation that failed (exit 3).
func failedErr(err error) error { return &exitError{ExitFailed, err} }

// noErr marks err as a negative answer (exit 1).
func noErr(err error) error { return &exitError{ExitNo, err} }

// quietError is a negative answer whose report has already been printed: it sets the exit
// code without printing anything more.
type quietError struct{ code int }

func (q quietError) Error() string { return "" }

func exitCode(err error) int {
	var q quietError
	if errors.As(err, &q) {
		return q.code
	}
	if errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	// cobra's own argument errors are usage errors.
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown command") || strings.Contains(msg, "arg(s)") ||
		strings.HasPrefix(msg, "required flag") || strings.Contains(msg, "if any flags in the group") {
		return ExitUsage
	}
	return ExitFailed
}
