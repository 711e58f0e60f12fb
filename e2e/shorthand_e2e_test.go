//go:build e2e

package e2e

// The documented path for a QEMU started by hand: crashkey --qemu-pid finds the QMP socket of a
// real QEMU process in its command line, in the -chardev socket,…,server=on + -mon
// chardev=…,mode=control form. QEMU runs with -machine none: no guest boots.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestQEMUPidShorthand(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 2*time.Minute)
	dir, err := os.MkdirTemp("", "ck-pid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// A relative socket path: crashkey resolves it against QEMU's working directory.
	q := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
		"-chardev", "socket,id=mon0,path=mon.sock,server=on,wait=off", "-mon", "chardev=mon0,mode=control")
	q.Dir = dir
	q.WaitDelay = 5 * time.Second
	if err := q.Start(); err != nil {
		t.Fatalf("start QEMU (scripts/deps.sh installs qemu-system-x86): %v", err)
	}
	t.Cleanup(func() { _ = q.Process.Kill(); _ = q.Wait() })
	sock := filepath.Join(dir, "mon.sock")
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("QEMU made no monitor socket in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := mustCrashkey(t, ctx, 0, "status", "--qemu-pid", strconv.Itoa(q.Process.Pid), "--json")
	var st struct {
		Backend string `json:"backend"`
		State   string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Backend != "qmp" || st.State != "running" {
		t.Errorf("status: %v %+v\n%s", err, st, out)
	}
	// A process without a QMP socket: the error names it and the fix.
	_, errOut, code := crashkey(t, ctx, "status", "--qemu-pid", strconv.Itoa(os.Getpid()))
	if code != 2 || !strings.Contains(errOut, "-mon chardev=mon0,mode=control") {
		t.Errorf("--qemu-pid of a non-QEMU process: exit %d %s", code, errOut)
	}
}
