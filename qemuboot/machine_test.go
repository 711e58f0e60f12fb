package qemuboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testImage writes a small raw image and returns its path and hash.
func testImage(t *testing.T) (string, [32]byte) {
	t.Helper()
	b := bytes.Repeat([]byte("crashkey"), 1<<17) // 1 MiB
	p := filepath.Join(t.TempDir(), "base.raw")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(b)
}

func needQEMU(t *testing.T) {
	t.Helper()
	for _, b := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Fatalf("%s: %v (scripts/deps.sh installs it)", b, err)
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestStartClose boots a real QEMU (TCG, nothing to boot: it sits in the firmware) on an
// overlay of a raw image with OVMF-style pflash files, talks QMP to it, and checks that Close
// kills it and removes every file while the image and the vars template stay unchanged.
func TestStartClose(t *testing.T) {
	needQEMU(t)
	img, sum := testImage(t)
	fw := t.TempDir()
	code, vars := filepath.Join(fw, "code.fd"), filepath.Join(fw, "vars.fd")
	// Firmware that is never valid code: QEMU starts anyway, and the vars template must stay
	// untouched whatever the guest does.
	for _, p := range []string{code, vars} {
		if err := os.WriteFile(p, make([]byte, 128<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := Start(ctx, Config{Image: img, Accel: "tcg", MemoryMiB: 64, Keyboard: USB, OVMF: &OVMF{Code: code, Vars: vars}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	dir := m.Dir()
	// The overlay is a qcow2 backed by the image.
	out, err := exec.Command("qemu-img", "info", "--force-share", "--output=json", m.Overlay()).Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Format          string `json:"format"`
		BackingFilename string `json:"backing-filename"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Format != "qcow2" || info.BackingFilename != img {
		t.Errorf("overlay: format %q backing %q, want qcow2 backed by %s", info.Format, info.BackingFilename, img)
	}
	if _, err := os.Stat(m.Paths().Vars); err != nil {
		t.Errorf("vars copy: %v", err)
	}
	// QMP answers, and the machine has the devices Args asked for.
	reply := qmp(t, m.Paths().QMP, `{"execute":"qom-list","arguments":{"path":"/machine/peripheral-anon"}}`)
	for _, want := range []string{"virtserialport", "pvpanic", "vmcoreinfo", "usb-kbd"} {
		if !strings.Contains(reply, want) {
			t.Errorf("qom-list of the devices lacks %s: %s", want, reply)
		}
	}
	if _, err := os.Stat(m.Paths().Agent); err != nil {
		t.Errorf("agent socket: %v", err)
	}
	pid := m.proc.Pid()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("private dir %s still there after Close (%v)", dir, err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		t.Errorf("qemu pid %d still running after Close", pid)
	}
	b, _ := os.ReadFile(img)
	if sha256.Sum256(b) != sum {
		t.Error("the image was written")
	}
	if v, _ := os.ReadFile(vars); !bytes.Equal(v, make([]byte, 128<<10)) {
		t.Error("the vars template was written")
	}
}

// TestCancelCleansUp checks that cancelling Start's context stops QEMU and removes its files.
func TestCancelCleansUp(t *testing.T) {
	needQEMU(t)
	img, _ := testImage(t)
	ctx, cancel := context.WithCancel(context.Background())
	m, err := Start(ctx, Config{Image: img, Accel: "tcg", MemoryMiB: 64, Logger: quiet()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	select {
	case <-m.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("qemu still running 20 s after the context was cancelled")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(m.Dir()); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("private dir %s still there after cancel", m.Dir())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartErrorsCleanUp checks that failed starts leave no private directory behind.
func TestStartErrorsCleanUp(t *testing.T) {
	needQEMU(t)
	img, _ := testImage(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Image: filepath.Join(tmp, "missing.qcow2")}, "no such file"},
		{Config{Image: img, QEMU: "/nonexistent/qemu"}, "install qemu-system-x86"},
		{Config{Image: img, ExtraArgs: []string{"-device", "no-such-device"}}, "qemu exited at once"},
		{Config{Image: img, OVMF: &OVMF{Code: img, Vars: filepath.Join(tmp, "novars.fd")}}, "OVMF vars"},
	}
	for _, tt := range tests {
		tt.cfg.Accel, tt.cfg.MemoryMiB, tt.cfg.Logger = "tcg", 64, quiet()
		m, err := Start(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want an error with %q", tt.cfg, err, tt.want)
		}
		if m != nil {
			t.Errorf("a failed Start returned a machine")
			m.Close()
		}
		ents, _ := os.ReadDir(tmp)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "crashkey-qemu-") {
				t.Errorf("%s left behind after %q", e.Name(), tt.want)
			}
		}
	}
}

// TestTCGWarning checks that an automatic accelerator falls back to TCG with a warning when
// /dev/kvm is not usable.
func TestTCGWarning(t *testing.T) {
	needQEMU(t)
	if KVMUsable() {
		t.Skip("/dev/kvm is usable here: no TCG fallback to see")
	}
	img, _ := testImage(t)
	var logs bytes.Buffer
	m, err := Start(context.Background(), Config{Image: img, MemoryMiB: 64, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Accel() != "tcg" || !strings.Contains(logs.String(), "TCG") {
		t.Errorf("accel %q, logs %q: want tcg with a warning", m.Accel(), logs.String())
	}
}

func qmp(t *testing.T, sock, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(c)
	var greeting, ack, reply json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, `{"execute":"qmp_capabilities"}`)
	if err := dec.Decode(&ack); err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, cmd)
	if err := dec.Decode(&reply); err != nil {
		t.Fatal(err)
	}
	return string(reply)
}
