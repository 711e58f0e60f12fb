package qmptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// QGABlocked are the commands a qemu-ga started by StartQGA never runs: it runs on the test
// host itself, not in a guest.
var QGABlocked = []string{"guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
	"guest-set-time", "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fstrim",
	"guest-set-user-password", "guest-set-vcpus", "guest-set-memory-blocks"}

// StartQGA runs Debian's real qemu-ga (package qemu-guest-agent, scripts/deps.sh) on a unix
// socket in a temporary directory, with env added to its environment (the programs guest-exec
// runs inherit it) and QGABlocked plus block disabled. It is stopped by t.Cleanup. It returns
// the agent's address ("unix:PATH") and the directory.
func StartQGA(t testing.TB, env []string, block ...string) (addr, dir string) {
	t.Helper()
	bin, err := exec.LookPath("qemu-ga")
	if err != nil {
		bin = "/usr/sbin/qemu-ga"
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("qemu-ga not found: install qemu-guest-agent (bash scripts/deps.sh)")
		}
	}
	dir = t.TempDir()
	sock := filepath.Join(dir, "qga.sock")
	cmd := exec.Command(bin, "-m", "unix-listen", "-p", sock, "-t", dir, "-f", filepath.Join(dir, "qga.pid"),
		"-b", strings.Join(append(append([]string(nil), QGABlocked...), block...), ","))
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 400 {
			t.Fatalf("qemu-ga did not create %s", sock)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return "unix:" + sock, dir
}
