package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DumpFormat is the file format of a host-side memory dump.
type DumpFormat string

// Host-side dump formats.
const (
	// DumpWinDmp is a Windows full crash dump (PAGEDU64, DumpType 1) written by QEMU's win-dmp
	// writer from the header the guest published through the vmcoreinfo device.
	DumpWinDmp DumpFormat = "win-dmp"
	// DumpELF is an ELF core of guest-physical memory (QEMU's default dump format).
	DumpELF DumpFormat = "elf"
)

// Why a win-dmp dump cannot be written. Errors returned by DumpMemory wrap one of them when
// QEMU refused for that reason; the message says how to fix it.
var (
	// ErrNoVMCoreInfo: QEMU runs without the vmcoreinfo device.
	ErrNoVMCoreInfo = errors.New("the guest has no vmcoreinfo device")
	// ErrNoDumpHeader: the device is there but the guest published no Windows dump header in
	// it (no FwCfg driver, or a note of another kind).
	ErrNoDumpHeader = errors.New("the guest published no Windows dump header")
	// ErrBadDumpHeader: a header is there but QEMU cannot follow it (stale after a reboot,
	// more CPUs than it names, a KDBG block it cannot read).
	ErrBadDumpHeader = errors.New("the guest's Windows dump header is unusable")
	// Err32BitGuest: a 32-bit Windows header on a QEMU that writes win-dmp only for 64-bit
	// guests.
	Err32BitGuest = errors.New("32-bit Windows guest")
)

// Fixes named in the errors (QEMU and libvirt spellings).
const (
	fixVMCoreInfoQMP     = "start QEMU with -device vmcoreinfo"
	fixVMCoreInfoLibvirt = "add <vmcoreinfo state='on'/> to the domain's <features> (virsh edit) and restart it"
	fixFwCfg             = "install virtio-win's FwCfg driver (fwcfg64) in the Windows guest, or use --format elf"
)

// HostDumpInfo is what a host-side dump of the guest depends on.
type HostDumpInfo struct {
	// VMCoreInfo is true when the guest has QEMU's vmcoreinfo device.
	VMCoreInfo bool `json:"vmcoreinfo"`
	// MemoryBytes is the guest's RAM: the size of an ELF core and, roughly, of a win-dmp dump.
	MemoryBytes uint64 `json:"memory_bytes"`
	// State is the run state (see Status.State).
	State string `json:"state"`
	// Local is false when the hypervisor runs on another host, where the dump file is written.
	Local bool `json:"local"`
}

// HostDumpOptions tune DumpMemory.
type HostDumpOptions struct {
	// Format is the file format (default DumpWinDmp).
	Format DumpFormat
	// Progress, when set, is called with the bytes written so far and the total.
	Progress func(done, total int64)
	// Poll is how often progress is asked for (default 250 ms).
	Poll time.Duration
}

func (o HostDumpOptions) withDefaults() HostDumpOptions {
	if o.Format == "" {
		o.Format = DumpWinDmp
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	return o
}

// HostDumper is a target whose hypervisor can write the guest's memory to a file on its host
// (QMP dump-guest-memory, libvirt virDomainCoreDumpWithFormat). Both targets of Dial are
// HostDumpers.
type HostDumper interface {
	// HostDumpInfo reports what a dump depends on.
	HostDumpInfo(ctx context.Context) (HostDumpInfo, error)
	// DumpMemory makes the hypervisor write the guest's memory to path, on the hypervisor's
	// host, and waits until it is done. QEMU stops the guest while it writes and resumes it
	// afterwards if it was running. On failure QEMU may leave an empty or partial file at path:
	// the caller removes it.
	DumpMemory(ctx context.Context, path string, opts HostDumpOptions) error
	// Pause stops the guest's CPUs (QMP stop, libvirt DomainSuspend).
	Pause(ctx context.Context) error
}

// AsHostDumper returns t's HostDumper.
func AsHostDumper(t Target) (HostDumper, bool) {
	d, ok := t.(HostDumper)
	return d, ok
}

// classifyDumpError turns QEMU's reason for refusing a dump into one of the errors above, with
// the fix for this backend.
func classifyDumpError(msg string, format DumpFormat, hasDevice bool, backend Backend) error {
	fixDevice := fixVMCoreInfoQMP
	if backend == Libvirt {
		fixDevice = fixVMCoreInfoLibvirt
	}
	if format != DumpWinDmp {
		return fmt.Errorf("dump: %s", msg)
	}
	switch {
	case strings.Contains(msg, "win-dump: invalid vmcoreinfo note size") || strings.Contains(msg, "guest note"):
		if !hasDevice {
			return fmt.Errorf("dump: %w: %s (QEMU: %s)", ErrNoVMCoreInfo, fixDevice, msg)
		}
		return fmt.Errorf("dump: %w in its vmcoreinfo note (none, or a Linux note): %s (QEMU: %s)", ErrNoDumpHeader, fixFwCfg, msg)
	case strings.Contains(msg, "expected 'DU64', got 'DUMP'"):
		return fmt.Errorf("dump: %w: this QEMU writes win-dmp only for 64-bit Windows (QEMU 7.2 and later also write 32-bit ones): upgrade QEMU or use --format elf (QEMU: %s)", Err32BitGuest, msg)
	case strings.Contains(msg, "win-dump: invalid header"):
		return fmt.Errorf("dump: %w in its vmcoreinfo note (the note is not a DUMP_HEADER64): %s (QEMU: %s)", ErrNoDumpHeader, fixFwCfg, msg)
	case strings.Contains(msg, "win-dump:"):
		return fmt.Errorf("dump: %w (QEMU could not follow it: the header may be stale after a reboot until the FwCfg driver publishes it again): use --format elf (QEMU: %s)", ErrBadDumpHeader, msg)
	case strings.Contains(msg, "only available for x86"):
		return fmt.Errorf("dump: win-dmp needs an x86-64 QEMU: use --format elf (QEMU: %s)", msg)
	}
	return fmt.Errorf("dump: %s", msg)
}

// HostDumpInfo implements HostDumper.
func (t *qmpTarget) HostDumpInfo(ctx context.Context) (HostDumpInfo, error) {
	info := HostDumpInfo{Local: t.network == "unix" || isLoopback(t.socket)}
	b, err := t.execute(ctx, "query-status", nil)
	if err != nil {
		return info, fmt.Errorf("dump: %w", err)
	}
	var qs struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(b, &qs)
	info.State = qs.Status
	b, err = t.execute(ctx, "query-memory-size-summary", nil)
	if err != nil {
		return info, fmt.Errorf("dump: guest memory size: %w", err)
	}
	var ms struct {
		Base    uint64 `json:"base-memory"`
		Plugged uint64 `json:"plugged-memory"`
	}
	if err := json.Unmarshal(b, &ms); err != nil {
		return info, fmt.Errorf("dump: query-memory-size-summary reply: %w", err)
	}
	info.MemoryBytes = ms.Base + ms.Plugged
	info.VMCoreInfo, err = t.hasDevice(ctx, "vmcoreinfo")
	return info, err
}

// hasDevice reports whether a device of QOM type typ exists.
func (t *qmpTarget) hasDevice(ctx context.Context, typ string) (bool, error) {
	for _, c := range qomContainers {
		b, err := t.execute(ctx, "qom-list", map[string]string{"path": c})
		if err != nil {
			if refused(err) {
				continue
			}
			return false, fmt.Errorf("dump: listing devices: %w", err)
		}
		var list []qomEntry
		if err := json.Unmarshal(b, &list); err != nil {
			return false, fmt.Errorf("dump: qom-list reply: %w", err)
		}
		for _, e := range list {
			if e.Type == "child<"+typ+">" {
				return true, nil
			}
		}
	}
	return false, nil
}

func isLoopback(hostport string) bool {
	h, _, err := splitHostPort(hostport)
	return err == nil && (h == "localhost" || h == "127.0.0.1" || h == "::1" || strings.HasPrefix(h, "127."))
}

// Pause implements HostDumper.
func (t *qmpTarget) Pause(ctx context.Context) error {
	if _, err := t.execute(ctx, "stop", nil); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// DumpMemory implements HostDumper: dump-guest-memory with detach, progress from query-dump,
// the outcome from DUMP_COMPLETED (the only place QEMU says why a detached dump failed).
func (t *qmpTarget) DumpMemory(ctx context.Context, path string, opts HostDumpOptions) error {
	opts = opts.withDefaults()
	c := t.current()
	done, stop := c.Watch("DUMP_COMPLETED")
	defer stop()
	args := map[string]any{"paging": false, "protocol": "file:" + path, "detach": true}
	if opts.Format == DumpWinDmp {
		args["format"] = "win-dmp"
	}
	if _, err := t.execute(ctx, "dump-guest-memory", args); err != nil {
		if ctx.Err() != nil { // interrupted, not refused: keep the cause (exit 130)
			return fmt.Errorf("dump: %w", err)
		}
		return t.dumpFailed(ctx, err.Error(), opts.Format)
	}
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	failedAt := time.Time{}
	for {
		select {
		case e := <-done:
			var d struct {
				Result struct {
					Status    string `json:"status"`
					Completed int64  `json:"completed"`
					Total     int64  `json:"total"`
				} `json:"result"`
				Error string `json:"error"`
			}
			_ = json.Unmarshal(e.Data, &d)
			if d.Error != "" || d.Result.Status == "failed" {
				msg := d.Error
				if msg == "" {
					msg = "QEMU reported the dump as failed"
				}
				return t.dumpFailed(ctx, msg, opts.Format)
			}
			if opts.Progress != nil {
				opts.Progress(d.Result.Completed, d.Result.Total)
			}
			return nil
		case <-tick.C:
			b, err := t.execute(ctx, "query-dump", nil)
			if err != nil {
				return fmt.Errorf("dump: query-dump: %w", err)
			}
			var q struct {
				Status    string `json:"status"`
				Completed int64  `json:"completed"`
				Total     int64  `json:"total"`
			}
			if err := json.Unmarshal(b, &q); err != nil {
				return fmt.Errorf("dump: query-dump reply: %w", err)
			}
			if opts.Progress != nil && q.Total > 0 {
				opts.Progress(q.Completed, q.Total)
			}
			switch q.Status {
			case "completed":
				// DUMP_COMPLETED follows at once; a lost event must not hang us.
				select {
				case <-done:
				case <-time.After(time.Second):
				}
				return nil
			case "failed":
				// The reason comes only with DUMP_COMPLETED.
				if failedAt.IsZero() {
					failedAt = time.Now()
				} else if time.Since(failedAt) > 2*time.Second {
					return t.dumpFailed(ctx, "QEMU reported the dump as failed (no reason given)", opts.Format)
				}
			}
		case <-c.Done():
			return fmt.Errorf("dump: connection to QEMU lost while it wrote the dump: %w", c.Err())
		case <-ctx.Done():
			return fmt.Errorf("dump: %w (QEMU goes on writing until it is done; it has no command to cancel a dump)", ctx.Err())
		}
	}
}

func (t *qmpTarget) dumpFailed(ctx context.Context, msg string, f DumpFormat) error {
	has, err := t.hasDevice(ctx, "vmcoreinfo")
	if err != nil {
		has = true // unknown: do not claim the device is missing
	}
	return classifyDumpError(msg, f, has, QMP)
}
