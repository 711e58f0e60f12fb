package qemuboot

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill QEMU when the process that started it dies, so that no
// guest outlives crashkey even after a SIGKILL.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
