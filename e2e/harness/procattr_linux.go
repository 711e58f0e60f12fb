package harness

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill QEMU when the process that started it dies (a test binary
// killed by its -timeout), so that no guest outlives its test.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
