package main

import (
	"os"
	"os/exec"
)

// startAgent runs Debian's qemu-ga (packed as /bin/qemu-ga by e2e/harness) on the serial port
// crashkey.agent names (harness.Config.Agent: /dev/ttyS2), with /bin and /sbin on its PATH
// (reg, rm, cat and shutdown: e2e/cmd/reg). Lines: "agent started DEV", "agent exited ERR".
func startAgent(e *env) {
	dev := e.params.get("crashkey.agent", "")
	if dev == "" {
		return
	}
	if err := os.MkdirAll("/var/run", 0o755); err != nil {
		e.out.emit("agent", "error", err.Error())
		return
	}
	cmd := exec.Command("/bin/qemu-ga", "-m", "isa-serial", "-p", dev, "-t", "/var/run", "-f", "/var/run/qemu-ga.pid")
	cmd.Env = []string{"PATH=/bin:/sbin", "HOME=/"}
	if err := cmd.Start(); err != nil {
		e.out.emit("agent", "error", err.Error())
		return
	}
	e.out.emit("agent", "started", dev)
	go func() {
		err := cmd.Wait()
		msg := "ok"
		if err != nil {
			msg = err.Error()
		}
		e.out.emit("agent", "exited", msg)
	}()
}
