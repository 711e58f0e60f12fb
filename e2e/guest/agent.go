package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Where the guest agent's channel shows up: virtio_console names each virtio-serial port in
// sysfs, and devtmpfs makes its /dev/vportNpM node (no udev here for the
// /dev/virtio-ports/NAME links).
const (
	agentPortName = "org.qemu.guest_agent.0"
	agentPortGlob = "/sys/class/virtio-ports/*/name"
	// agentPortWait bounds the wait for the port after virtio_console is loaded (its ports
	// are probed asynchronously).
	agentPortWait = 10 * time.Second
)

// startAgent runs Debian's qemu-ga (packed as /bin/qemu-ga by e2e/harness) on the guest agent's
// virtio-serial port (org.qemu.guest_agent.0, as on Windows guests with virtio-win's guest
// tools), with /bin and /sbin on its PATH (reg, rm, cat, sh, notmyfault and shutdown:
// e2e/cmd/reg). crashkey.agent=off plays an image without the agent installed. Lines:
// "agent started DEV", "agent none" (no port within agentPortWait), "agent off",
// "agent exited ERR".
func startAgent(e *env) {
	switch v := e.params.get("crashkey.agent", "auto"); v {
	case "off":
		e.out.emit("agent", "off")
		return
	case "auto":
	default:
		e.out.emit("agent", "error", "crashkey.agent="+v+": want auto or off")
		return
	}
	go func() {
		dev := waitAgentPort(agentPortWait)
		if dev == "" {
			e.out.emit("agent", "none")
			return
		}
		if err := os.MkdirAll("/var/run", 0o755); err != nil {
			e.out.emit("agent", "error", err.Error())
			return
		}
		cmd := exec.Command("/bin/qemu-ga", "-m", "virtio-serial", "-p", dev, "-t", "/var/run", "-f", "/var/run/qemu-ga.pid")
		cmd.Env = []string{"PATH=/bin:/sbin", "HOME=/"}
		if err := cmd.Start(); err != nil {
			e.out.emit("agent", "error", err.Error())
			return
		}
		e.out.emit("agent", "started", dev)
		err := cmd.Wait()
		msg := "ok"
		if err != nil {
			msg = err.Error()
		}
		e.out.emit("agent", "exited", msg)
	}()
}

// waitAgentPort returns the device node of the virtio-serial port named agentPortName, or ""
// when none appears within d.
func waitAgentPort(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		names, _ := filepath.Glob(agentPortGlob)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil || strings.TrimSpace(string(b)) != agentPortName {
				continue
			}
			dev := "/dev/" + filepath.Base(filepath.Dir(n))
			if _, err := os.Stat(dev); err == nil {
				return dev
			}
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}
