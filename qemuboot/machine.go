package qemuboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Machine is a running QEMU started by Start. Its methods are safe for concurrent use.
type Machine struct {
	cfg   Config
	dir   string
	paths Paths
	args  []string

	proc *Process

	stopWatch chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start makes the private directory, the overlay and the OVMF vars copy, starts QEMU (with
// Launch) and returns once its QMP socket answers. QEMU runs until Close or until ctx is cancelled; both
// stop it and remove every file Start made. On an error nothing is left behind.
func Start(ctx context.Context, cfg Config) (m *Machine, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
		if KVMUsable() {
			cfg.Accel = "kvm"
		} else {
			cfg.Logger.Warn("qemuboot: /dev/kvm is not usable: emulating the CPU with TCG (slow: a Windows boot takes many minutes); give the user access to /dev/kvm (group kvm)")
		}
	}
	dir, err := os.MkdirTemp("", "crashkey-qemu-")
	if err != nil {
		return nil, fmt.Errorf("qemuboot: %w", err)
	}
	m = &Machine{cfg: cfg, dir: dir, stopWatch: make(chan struct{})}
	defer func() {
		if err != nil {
			m.Close()
			m = nil
		}
	}()
	m.paths = Paths{QMP: filepath.Join(dir, "qmp.sock"), Agent: filepath.Join(dir, "qga.sock")}
	if len(m.paths.Agent) > 100 {
		return m, fmt.Errorf("qemuboot: socket path %q is too long for a unix socket: set TMPDIR to a shorter directory", m.paths.Agent)
	}
	if cfg.Console {
		m.paths.Console = filepath.Join(dir, "console.log")
	}
	if cfg.Image != "" {
		m.paths.Overlay = filepath.Join(dir, "overlay.qcow2")
		if err := makeOverlay(ctx, cfg.QEMUImg, cfg.Image, m.paths.Overlay); err != nil {
			return m, err
		}
	}
	if cfg.OVMF != nil {
		m.paths.Vars = filepath.Join(dir, "vars.fd")
		if err := copyFile(cfg.OVMF.Vars, m.paths.Vars); err != nil {
			return m, fmt.Errorf("qemuboot: OVMF vars: %w", err)
		}
	}
	m.args = Args(cfg, m.paths)
	cfg.Logger.Debug("qemuboot: starting qemu", "qemu", cfg.QEMU, "args", strings.Join(m.args, " "))
	m.proc, err = Launch(ctx, ProcessConfig{QEMU: cfg.QEMU, Args: m.args, Dir: dir, Stderr: cfg.Stderr, QMP: m.paths.QMP})
	if err != nil {
		return m, err
	}
	// Cancelling ctx stops the guest and removes its files, as Close does.
	go func() {
		select {
		case <-ctx.Done():
			m.Close()
		case <-m.stopWatch:
		}
	}()
	return m, nil
}

// KVMUsable reports whether /dev/kvm can be opened for reading and writing.
func KVMUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// makeOverlay creates a qcow2 overlay at overlay backed by image (read-only: qemu-img only
// reads image's header to learn its format and size).
func makeOverlay(ctx context.Context, qemuImg, image, overlay string) error {
	abs, err := filepath.Abs(image)
	if err != nil {
		return fmt.Errorf("qemuboot: image: %w", err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return fmt.Errorf("qemuboot: image: %w", err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("qemuboot: image %s is not a regular file", abs)
	}
	out, err := exec.CommandContext(ctx, qemuImg, "info", "--force-share", "--output=json", abs).Output()
	if err != nil {
		return fmt.Errorf("qemuboot: qemu-img info %s: %w%s", abs, err, exitText(err))
	}
	var info struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Format == "" {
		return fmt.Errorf("qemuboot: qemu-img info %s: no format in its output", abs)
	}
	cmd := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-b", abs, "-F", info.Format, overlay)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemuboot: qemu-img create overlay of %s: %w: %s", abs, err, strings.TrimSpace(string(b)))
	}
	return nil
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	if errors.Is(err, exec.ErrNotFound) {
		return " (install qemu-utils)"
	}
	return ""
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// QMP is the QMP monitor's address ("unix:/path").
func (m *Machine) QMP() string { return "unix:" + m.paths.QMP }

// Agent is the guest agent channel's address ("unix:/path").
func (m *Machine) Agent() string { return "unix:" + m.paths.Agent }

// Overlay is the overlay the guest writes to ("" without an image).
func (m *Machine) Overlay() string { return m.paths.Overlay }

// Paths are the guest's files.
func (m *Machine) Paths() Paths { return m.paths }

// Dir is the private directory; Close removes it.
func (m *Machine) Dir() string { return m.dir }

// Accel is the accelerator QEMU runs with ("kvm" or "tcg").
func (m *Machine) Accel() string { return m.cfg.Accel }

// Args is QEMU's command line (without the binary).
func (m *Machine) Args() []string { return m.args }

// Exited is closed when QEMU exits.
func (m *Machine) Exited() <-chan struct{} { return m.proc.Exited() }

// Console is what the guest wrote on its first serial port (with Config.Console).
func (m *Machine) Console() string {
	if m.paths.Console == "" {
		return ""
	}
	b, _ := os.ReadFile(m.paths.Console)
	return string(b)
}

// Close kills QEMU, waits for it and removes the private directory (overlay, vars copy,
// sockets, logs). It is idempotent.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		close(m.stopWatch)
		var errs []error
		if m.proc != nil {
			errs = append(errs, m.proc.Stop())
		}
		if err := os.RemoveAll(m.dir); err != nil {
			errs = append(errs, fmt.Errorf("qemuboot: %w", err))
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}
