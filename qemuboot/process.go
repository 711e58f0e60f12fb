package qemuboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ProcessConfig says how Launch starts a QEMU process. The command line is the caller's:
// Launch only runs it, waits for its QMP socket and stops it again.
type ProcessConfig struct {
	// QEMU is the emulator binary (a path, or a name looked up in PATH).
	QEMU string
	// Args is QEMU's command line without the binary.
	Args []string
	// Dir is QEMU's working directory, which must exist. QEMU's standard output and error go
	// to Dir/qemu.stderr. Dir stays the caller's: neither Launch nor Stop removes it.
	Dir string
	// Stderr, if set, receives QEMU's standard error as well.
	Stderr io.Writer
	// QMP is the path of the QMP unix socket Args make QEMU listen on (server=on,wait=off).
	// Launch returns once a QMP command on it gets an answer.
	QMP string
}

// Process is a running QEMU started by Launch. Its methods are safe for concurrent use.
type Process struct {
	cmd     *exec.Cmd
	stderr  *os.File
	exited  chan struct{}
	exitErr error

	stopOnce sync.Once
	stopErr  error
}

// Launch starts QEMU as cfg says and returns once its QMP socket answers a command, that is
// once QEMU has accepted the command line and built the machine. The kernel kills QEMU when
// the calling process dies (on Linux), so no QEMU outlives its starter. ctx bounds only the
// start; QEMU then runs until Stop or until it exits by itself. On an error, QEMU is stopped
// and the error carries what QEMU wrote on its standard error.
func Launch(ctx context.Context, cfg ProcessConfig) (p *Process, err error) {
	if cfg.QMP == "" {
		return nil, errors.New("qemuboot: launch: no QMP socket path to wait for")
	}
	f, err := os.Create(filepath.Join(cfg.Dir, "qemu.stderr"))
	if err != nil {
		return nil, fmt.Errorf("qemuboot: %w", err)
	}
	cmd := exec.Command(cfg.QEMU, cfg.Args...)
	cmd.Stdout = f
	cmd.Stderr = f
	if cfg.Stderr != nil {
		cmd.Stderr = io.MultiWriter(f, cfg.Stderr)
	}
	cmd.Dir = cfg.Dir
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("qemuboot: %s: %w (install qemu-system-x86, or give the emulator's path)", cfg.QEMU, err)
	}
	p = &Process{cmd: cmd, stderr: f, exited: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	for {
		if greeted(cfg.QMP) {
			return p, nil
		}
		select {
		case <-p.exited:
			p.Stop()
			return nil, fmt.Errorf("qemuboot: qemu exited at once (%v): %s", p.exitErr, p.StderrText())
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("qemuboot: waiting for the QMP socket: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// greeted reports whether the QMP server at sock answers a command: QEMU makes the socket
// (and may greet) before it builds the devices, but runs commands only once the machine is
// built, so an answer means the command line was accepted.
func greeted(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	dec := json.NewDecoder(io.LimitReader(c, 1<<20))
	var msg struct {
		QMP    json.RawMessage `json:"QMP"`
		Return json.RawMessage `json:"return"`
	}
	if dec.Decode(&msg) != nil || msg.QMP == nil {
		return false
	}
	for _, cmd := range []string{`{"execute":"qmp_capabilities"}`, `{"execute":"query-status"}`} {
		if _, err := io.WriteString(c, cmd); err != nil {
			return false
		}
		for msg.Return = nil; msg.Return == nil; { // skip events
			if dec.Decode(&msg) != nil {
				return false
			}
		}
	}
	return true
}

// Pid is QEMU's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when QEMU exits (for example after a pvpanic with QEMU's default panic
// action, or a guest reset under -no-reboot), and at the latest when Stop returns.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is QEMU's exit status once Exited is closed (nil before, and for a clean exit).
func (p *Process) ExitErr() error {
	select {
	case <-p.exited:
		return p.exitErr
	default:
		return nil
	}
}

// StderrText is what QEMU has written on its standard output and error so far (trimmed), read
// back from Dir/qemu.stderr; empty once the caller has removed Dir.
func (p *Process) StderrText() string {
	b, _ := os.ReadFile(p.stderr.Name())
	return strings.TrimSpace(string(b))
}

// Stop kills QEMU unless it has exited already and waits for it. It leaves Dir and its files
// in place. It is idempotent.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				p.stopErr = fmt.Errorf("qemuboot: qemu pid %d did not exit after SIGKILL", p.Pid())
			}
		}
		p.stderr.Close()
	})
	return p.stopErr
}
