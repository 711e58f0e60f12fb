package vm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// Typed guest agent failures; test them with errors.Is (ExitError with errors.As).
var (
	// ErrNoAgent: no guest agent answers (none configured, not running in the guest, or the
	// guest is down).
	ErrNoAgent = errors.New("no guest agent answers")
	// ErrAgentTooOld: the agent lacks a command crashkey needs (guest-exec and guest-file-*
	// came with QEMU 2.5; install a current virtio-win guest tools / qemu-guest-agent).
	ErrAgentTooOld = errors.New("guest agent too old")
	// ErrAgentDenied: the agent has the command but refuses it (disabled with
	// --block-rpcs/--allow-rpcs, or a policy in front of it).
	ErrAgentDenied = errors.New("guest agent command denied")
)

// Bounds on what crashkey accepts from an agent (its replies are untrusted).
const (
	// MaxExecOutput bounds each of a command's stdout and stderr kept by Run.
	MaxExecOutput = 4 << 20
	// MaxAgentFile bounds a file WriteFile sends.
	MaxAgentFile = 8 << 20
	agentChunk   = 48 << 10 // guest-file-write chunk (before base64)
)

// ExecResult is a finished guest command.
type ExecResult struct {
	// ExitCode is the program's exit status (-1 when it was killed by a signal).
	ExitCode int `json:"exitCode"`
	// Signal is the signal that ended it, on POSIX guests (0 otherwise).
	Signal int `json:"signal,omitempty"`
	// Stdout and Stderr are its captured output, bounded by MaxExecOutput.
	Stdout []byte `json:"stdout"`
	Stderr []byte `json:"stderr"`
	// Truncated is set when the agent (or crashkey) cut the output.
	Truncated bool `json:"truncated,omitempty"`
}

// ExitError is a guest command that ended with a non-zero status; it carries the output.
type ExitError struct {
	Command string
	Result  ExecResult
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("guest command %s exited with status %d", e.Command, e.Result.ExitCode)
	if e.Result.Signal != 0 {
		msg = fmt.Sprintf("guest command %s was killed by signal %d", e.Command, e.Result.Signal)
	}
	out := strings.TrimSpace(string(e.Result.Stderr))
	if out == "" {
		out = strings.TrimSpace(string(e.Result.Stdout))
	}
	if len(out) > 400 {
		out = out[:400] + "…"
	}
	if out != "" {
		msg += ": " + strings.ReplaceAll(out, "\r\n", " / ")
	}
	return msg
}

// fixAgentRunning is the fix classify names for an agent that does not answer on its channel.
const fixAgentRunning = "the domain has an agent channel but no agent answers on it: start the QEMU guest agent in the guest (Windows: virtio-win guest tools, service QEMU-GA; Linux: qemu-guest-agent), or wait until the guest has booted"

// domainError is a libvirt agent call's failure with the domain it was for, so that the fixes
// classify names are commands for that domain.
type domainError struct {
	err         error
	uri, domain string
}

func (e domainError) Error() string { return e.err.Error() }
func (e domainError) Unwrap() error { return e.err }

// virsh is the virsh command line of verb (e.g. "edit") for the domain of err, or with
// placeholders.
func virsh(err error, verb string) string {
	var de domainError
	if !errors.As(err, &de) {
		return "virsh " + verb + " DOMAIN"
	}
	return fmt.Sprintf("virsh -c '%s' %s '%s'", de.uri, verb, de.domain)
}

// classify maps an agent call's failure to the typed errors.
func classify(command string, err error) error {
	if err == nil {
		return nil
	}
	var qe *QMPError
	if errors.As(err, &qe) {
		d := strings.ToLower(qe.Desc)
		switch {
		case strings.Contains(d, "disabled") || strings.Contains(d, "denied") || strings.Contains(d, "not allowed") || strings.Contains(d, "blocked"):
			return fmt.Errorf("%w: %s: %w (allow it in the agent's configuration: qemu-ga --allow-rpcs / no --block-rpcs)", ErrAgentDenied, command, err)
		case qe.Class == "CommandNotFound":
			return fmt.Errorf("%w: %s: %w (update the guest agent: virtio-win guest tools or qemu-guest-agent ≥ 2.5)", ErrAgentTooOld, command, err)
		}
		return err
	}
	var le libvirt.Error
	if errors.As(err, &le) {
		m := strings.ToLower(le.Message)
		switch {
		case le.Code == uint32(libvirt.ErrArgumentUnsupported) || strings.Contains(m, "agent is not configured"):
			return fmt.Errorf("%w: %w (the domain has no agent channel: add <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel> to its <devices> (%s), restart it, and run the QEMU guest agent in the guest)", ErrNoAgent, err, virsh(err, "edit"))
		case le.Code == uint32(libvirt.ErrAgentUnresponsive) || strings.Contains(m, "agent is not"):
			return fmt.Errorf("%w: %w (%s)", ErrNoAgent, err, fixAgentRunning)
		case le.Code == uint32(libvirt.ErrOperationInvalid) && strings.Contains(m, "not running"):
			return fmt.Errorf("%w: %w (start it: %s)", ErrNotRunning, err, virsh(err, "start"))
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrNoAgent, err)
	}
	return err
}

// Windows reports whether the guest runs Windows (guest-get-osinfo; agents too old to say are
// taken for Windows).
func (a *agent) Windows(ctx context.Context) bool { return a.windows(ctx) }

// Run runs a program in the guest (no shell) with guest-exec, waits for it with
// guest-exec-status and returns its exit status and captured output. A non-zero exit is an
// *ExitError carrying the result.
func (a *agent) Run(ctx context.Context, path string, args ...string) (*ExecResult, error) {
	name := strings.Join(append([]string{path}, args...), " ")
	if path == "" {
		return nil, errors.New("guest agent: run: empty program path")
	}
	ret, err := a.r.run(ctx, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true})
	if err != nil {
		return nil, fmt.Errorf("guest agent: run %s: %w", name, classify("guest-exec", err))
	}
	pid, err := ParseExecPID(ret)
	if err != nil {
		return nil, fmt.Errorf("guest agent: run %s: %w", name, err)
	}
	delay := 20 * time.Millisecond
	for {
		st, err := a.r.run(ctx, "guest-exec-status", map[string]any{"pid": pid})
		if err != nil {
			return nil, fmt.Errorf("guest agent: run %s: %w", name, classify("guest-exec-status", err))
		}
		res, done, err := ParseExecStatus(st)
		if err != nil {
			return nil, fmt.Errorf("guest agent: run %s: %w", name, err)
		}
		if done {
			if res.ExitCode != 0 || res.Signal != 0 {
				return res, &ExitError{Command: name, Result: *res}
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("guest agent: run %s: still running: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

// ParseExecPID reads a guest-exec reply ({"pid": N}).
func ParseExecPID(ret json.RawMessage) (int, error) {
	var r struct {
		PID *int64 `json:"pid"`
	}
	if err := json.Unmarshal(ret, &r); err != nil || r.PID == nil || *r.PID < 0 || *r.PID > 1<<31-1 {
		return 0, fmt.Errorf("guest-exec reply %s has no pid", clipReply(ret))
	}
	return int(*r.PID), nil
}

// ParseExecStatus reads a guest-exec-status reply: whether the process has exited, and then
// its exit code and output (base64 out-data/err-data, each bounded by MaxExecOutput).
func ParseExecStatus(ret json.RawMessage) (*ExecResult, bool, error) {
	var r struct {
		Exited    *bool  `json:"exited"`
		ExitCode  *int64 `json:"exitcode"`
		Signal    int64  `json:"signal"`
		OutData   string `json:"out-data"`
		ErrData   string `json:"err-data"`
		OutTrunc  bool   `json:"out-truncated"`
		ErrTrunc  bool   `json:"err-truncated"`
		NotExited bool   `json:"-"`
	}
	if err := json.Unmarshal(ret, &r); err != nil || r.Exited == nil {
		return nil, false, fmt.Errorf("guest-exec-status reply %s has no \"exited\"", clipReply(ret))
	}
	if !*r.Exited {
		return nil, false, nil
	}
	res := &ExecResult{Truncated: r.OutTrunc || r.ErrTrunc}
	switch {
	case r.ExitCode != nil:
		if *r.ExitCode < -1<<31 || *r.ExitCode > 1<<32-1 {
			return nil, false, fmt.Errorf("guest-exec-status: exit code %d out of range", *r.ExitCode)
		}
		res.ExitCode = int(int32(uint32(*r.ExitCode))) // Windows reports NTSTATUS codes as unsigned
	case r.Signal > 0 && r.Signal < 256:
		res.ExitCode, res.Signal = -1, int(r.Signal)
	default:
		return nil, false, errors.New("guest-exec-status: exited without an exit code or signal")
	}
	var err error
	var t bool
	if res.Stdout, t, err = decodeBounded(r.OutData); err != nil {
		return nil, false, fmt.Errorf("guest-exec-status: out-data: %w", err)
	}
	res.Truncated = res.Truncated || t
	if res.Stderr, t, err = decodeBounded(r.ErrData); err != nil {
		return nil, false, fmt.Errorf("guest-exec-status: err-data: %w", err)
	}
	res.Truncated = res.Truncated || t
	return res, true, nil
}

func decodeBounded(s string) ([]byte, bool, error) {
	trunc := false
	if max := base64.StdEncoding.EncodedLen(MaxExecOutput); len(s) > max {
		s, trunc = s[:max], true
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, trunc, err
}

func clipReply(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// WriteFile creates (or truncates) the file at path in the guest and writes data to it
// (guest-file-open mode "wb", guest-file-write in chunks, guest-file-close).
func (a *agent) WriteFile(ctx context.Context, path string, data []byte) error {
	if len(data) > MaxAgentFile {
		return fmt.Errorf("guest agent: write %s: %d bytes, more than %d", path, len(data), MaxAgentFile)
	}
	ret, err := a.r.run(ctx, "guest-file-open", map[string]any{"path": path, "mode": "wb"})
	if err != nil {
		return fmt.Errorf("guest agent: write %s: %w", path, classify("guest-file-open", err))
	}
	var h int64
	if err := json.Unmarshal(ret, &h); err != nil {
		return fmt.Errorf("guest agent: write %s: guest-file-open reply %s is no handle", path, clipReply(ret))
	}
	werr := func() error {
		for off := 0; off < len(data) || off == 0 && len(data) == 0; {
			end := min(off+agentChunk, len(data))
			chunk := data[off:end]
			ret, err := a.r.run(ctx, "guest-file-write", map[string]any{"handle": h, "buf-b64": base64.StdEncoding.EncodeToString(chunk)})
			if err != nil {
				return classify("guest-file-write", err)
			}
			var w struct {
				Count *int `json:"count"`
			}
			if err := json.Unmarshal(ret, &w); err != nil || w.Count == nil || *w.Count <= 0 && len(chunk) > 0 || *w.Count > len(chunk) {
				return fmt.Errorf("guest-file-write reply %s: bad count", clipReply(ret))
			}
			off += *w.Count
			if len(data) == 0 {
				break
			}
		}
		return nil
	}()
	// Close also after a failed write, so that no handle is left open in the agent.
	_, cerr := a.r.run(context.WithoutCancel(ctx), "guest-file-close", map[string]any{"handle": h})
	if werr != nil {
		return fmt.Errorf("guest agent: write %s: %w", path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("guest agent: write %s: %w", path, classify("guest-file-close", cerr))
	}
	return nil
}

// RemoveFile deletes a file in the guest (del on Windows, rm elsewhere, run through guest-exec).
func (a *agent) RemoveFile(ctx context.Context, path string) error {
	var err error
	if a.windows(ctx) {
		_, err = a.Run(ctx, "cmd.exe", "/c", "del", "/f", "/q", path)
	} else {
		_, err = a.Run(ctx, "/bin/rm", "-f", "--", path)
	}
	if err != nil {
		return fmt.Errorf("guest agent: remove %s: %w", path, err)
	}
	return nil
}

// Reboot restarts the guest (guest-shutdown mode reboot), waits until the agent stops answering
// and then until it answers again, polling every interval; ctx bounds the wait.
func (a *agent) Reboot(ctx context.Context) error {
	if err := a.r.reboot(ctx); err != nil {
		return fmt.Errorf("guest agent: reboot: %w", err)
	}
	ping := func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := a.r.reconnect(pctx); err != nil {
			return err
		}
		_, err := a.r.run(pctx, "guest-ping", nil)
		return err
	}
	down := false
	for {
		err := ping()
		if cerr := classify("guest-ping", err); errors.Is(cerr, ErrNotRunning) {
			// libvirt: the domain shut down instead of restarting (<on_reboot>destroy).
			return fmt.Errorf("guest agent: reboot: the guest stopped instead of restarting (its reboot must restart it: libvirt <on_reboot>restart</on_reboot>): %w", cerr)
		}
		if err != nil {
			down = true
		} else if down {
			return nil
		}
		select {
		case <-ctx.Done():
			if !down {
				return fmt.Errorf("guest agent: reboot: the agent kept answering; the guest did not go down: %w", ctx.Err())
			}
			return fmt.Errorf("guest agent: reboot: %w: not back after the reboot: %w", ErrNoAgent, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func isClosed(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "closed") || strings.Contains(err.Error(), "EOF"))
}
