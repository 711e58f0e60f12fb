//go:build !linux

package harness

import "os/exec"

// killWithParent is a no-op where the kernel offers no parent-death signal.
func killWithParent(cmd *exec.Cmd) {}
