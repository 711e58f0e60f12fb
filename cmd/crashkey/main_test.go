package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	gold "github.com/crashkey/crashkey/internal/golden"
)

// runCrashkey runs the CLI in-process and returns its stdout, stderr and exit code.
func runCrashkey(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// checkGolden compares got with testdata/NAME, or rewrites it with -update.
func checkGolden(t testing.TB, name, got string) {
	t.Helper()
	gold.CheckString(t, filepath.Join("testdata", name), got)
}
