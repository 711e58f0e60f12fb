package run

import (
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/vm"
)

// ELFReaders says what reads the ELF core a host-side dump writes with --format elf.
const ELFReaders = "an ELF core of guest-physical memory: read it with crash or gdb (Linux guests), or convert a 64-bit Windows guest's with QEMU's contrib/elf2dmp (it fetches the kernel's PDB from Microsoft's symbol server) and then crashkey check"

// Errors of HostDump besides the vm.Err* reasons a win-dmp dump cannot be written.
var (
	// ErrNoSpace: the output directory has less free space than the guest has RAM.
	ErrNoSpace = errors.New("not enough free space for the dump")
	// ErrRemoteHost: the hypervisor runs on another host, where it would write the file.
	ErrRemoteHost = errors.New("the hypervisor writes the dump on its own host")
	// ErrDumpInvalid: the hypervisor wrote a file that is not a valid dump.
	ErrDumpInvalid = errors.New("the dump written is not valid")
)

// HostDumpConfig is one host-side dump.
type HostDumpConfig struct {
	// Target is the guest.
	Target vm.Address
	// Options tune the connection.
	Options vm.Options
	// OutDir is where the dump goes (created if needed). It must be on the hypervisor's host.
	OutDir string
	// Name is the file name (default: the domain name or "guest", the time, .dmp or .elf).
	Name string
	// Format is vm.DumpWinDmp (default) or vm.DumpELF.
	Format vm.DumpFormat
	// Pause stops the guest before the dump and resumes it afterwards unless KeepPaused.
	Pause, KeepPaused bool
	// Deep reads every page when checking the dump.
	Deep bool
	// Progress is called while the hypervisor writes (bytes written, total).
	Progress func(done, total int64)
	// Now names the file (default time.Now).
	Now func() time.Time
	// freeSpace reports the free bytes of a directory (tests replace it).
	freeSpace func(dir string) (uint64, error)
}

// HostDumpReport says what HostDump did.
type HostDumpReport struct {
	Target      string           `json:"target"`
	Format      vm.DumpFormat    `json:"format"`
	Output      string           `json:"output"`
	Size        int64            `json:"size"`
	SHA256      string           `json:"sha256"`
	MemoryBytes uint64           `json:"memory_bytes"`
	FreeBytes   uint64           `json:"free_bytes"`
	VMCoreInfo  bool             `json:"vmcoreinfo"`
	Paused      bool             `json:"paused"`
	Resumed     bool             `json:"resumed"`
	DurationMS  int64            `json:"duration_ms"`
	Duration    time.Duration    `json:"-"`
	Live        bool             `json:"live"` // the dump holds 0x161 LIVE_SYSTEM_DUMP: the guest had not bug-checked
	Check       *dump.Report     `json:"check,omitempty"`
	Readers     string           `json:"readers,omitempty"`
	Info        *vm.HostDumpInfo `json:"-"`
}

// HostDump connects to cfg.Target and writes a host-side dump (see HostDumpWith).
func HostDump(ctx context.Context, cfg HostDumpConfig) (*HostDumpReport, error) {
	t, err := vm.Dial(ctx, cfg.Target, cfg.Options)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	return HostDumpWith(ctx, t, cfg)
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// HostDumpWith makes t's hypervisor write the guest's memory into cfg.OutDir: win-dmp (the
// Windows header the guest published through the vmcoreinfo device) or an ELF core. It checks
// the free space first (the dump is as large as the guest's RAM), has QEMU write a temporary
// file in OutDir and renames it into place when the dump is complete and checked; a failed
// dump leaves nothing behind. A win-dmp dump is checked with dump.Check (a guest that had not
// bug-checked holds 0x161 LIVE_SYSTEM_DUMP, which is expected).
func HostDumpWith(ctx context.Context, t vm.Target, cfg HostDumpConfig) (*HostDumpReport, error) {
	start := time.Now()
	if cfg.Format == "" {
		cfg.Format = vm.DumpWinDmp
	}
	if cfg.Format != vm.DumpWinDmp && cfg.Format != vm.DumpELF {
		return nil, fmt.Errorf("dump: %w: format %q: want win-dmp or elf", ErrBadConfig, cfg.Format)
	}
	if cfg.OutDir == "" {
		cfg.OutDir = "."
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.freeSpace == nil {
		cfg.freeSpace = freeSpace
	}
	d, ok := vm.AsHostDumper(t)
	if !ok {
		return nil, fmt.Errorf("dump: %s cannot write host-side dumps", t.Describe())
	}
	rep := &HostDumpReport{Target: t.Describe(), Format: cfg.Format}
	info, err := d.HostDumpInfo(ctx)
	if err != nil {
		return rep, err
	}
	rep.Info, rep.MemoryBytes, rep.VMCoreInfo = &info, info.MemoryBytes, info.VMCoreInfo
	if !info.Local {
		return rep, fmt.Errorf("dump: %w, not here: run crashkey dump on the hypervisor's host (qemu:///system or a local QMP socket)", ErrRemoteHost)
	}
	if cfg.Format == vm.DumpWinDmp && !info.VMCoreInfo {
		fix := "start QEMU with -device vmcoreinfo"
		if t.Backend() == vm.Libvirt {
			fix = "add <vmcoreinfo state='on'/> to the domain's <features> (virsh edit) and restart it"
		}
		return rep, fmt.Errorf("dump: %w: %s, and install virtio-win's FwCfg driver in the guest; or use --format elf", vm.ErrNoVMCoreInfo, fix)
	}
	dir, err := filepath.Abs(cfg.OutDir)
	if err != nil {
		return rep, fmt.Errorf("dump: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rep, fmt.Errorf("dump: %w: %w", ErrBadConfig, err)
	}
	free, err := cfg.freeSpace(dir)
	if err != nil {
		return rep, fmt.Errorf("dump: free space of %s: %w", dir, err)
	}
	rep.FreeBytes = free
	need := info.MemoryBytes + dump.HeaderSize64
	if free < need {
		return rep, fmt.Errorf("dump: %w in %s: %s free, the dump needs about %s (the guest's RAM): free some space or choose another --out", ErrNoSpace, dir, mib(free), mib(need))
	}
	name := cfg.Name
	if name == "" {
		base := "guest"
		if cfg.Target.Domain != "" {
			base = unsafeName.ReplaceAllString(cfg.Target.Domain, "_")
		}
		ext := ".dmp"
		if cfg.Format == vm.DumpELF {
			ext = ".elf"
		}
		name = base + "-" + cfg.Now().UTC().Format("20060102-150405") + ext
	}
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		return rep, fmt.Errorf("dump: %w: %s exists: choose another --out or remove it", ErrBadConfig, final)
	}
	tmpf, err := os.CreateTemp(dir, ".crashkey-dump-*.tmp")
	if err != nil {
		return rep, fmt.Errorf("dump: %w", err)
	}
	tmp := tmpf.Name()
	tmpf.Close()
	defer os.Remove(tmp) // after the link below, only the temporary name goes

	if cfg.Pause {
		if err := d.Pause(ctx); err != nil {
			return rep, fmt.Errorf("dump: %w", err)
		}
		rep.Paused = true
	}
	resume := func() error {
		if !rep.Paused || cfg.KeepPaused || rep.Resumed {
			return nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := t.Resume(rctx); err != nil {
			return fmt.Errorf("dump: resuming the guest: %w", err)
		}
		rep.Resumed = true
		return nil
	}
	// Hash the file while the hypervisor writes it (see followFile); the follower is stopped
	// and waited for before the temporary file goes, on every path.
	fctx, fcancel := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	fch := goFollow(fctx, tmp, writerDone, followOptions{Writeback: true})
	followerDone := false
	defer func() {
		fcancel()
		if !followerDone {
			<-fch
		}
	}()

	err = d.DumpMemory(ctx, tmp, vm.HostDumpOptions{Format: cfg.Format, Progress: cfg.Progress})
	if rerr := resume(); err == nil {
		err = rerr
	}
	if err != nil {
		return rep, err
	}
	written := time.Now()
	close(writerDone)
	fr := <-fch
	followerDone = true
	if fr.err != nil {
		return rep, fmt.Errorf("dump: %w", fr.err)
	}
	slog.Debug("host dump hashed", "path", tmp, "size", fr.r.Size, "hashed_while_written", fr.r.AtDone,
		"restarts", fr.r.Restarts, "after_written", time.Since(written))
	n := fr.r.Size
	rep.Size, rep.SHA256 = n, hex.EncodeToString(fr.r.SHA256)

	f, err := os.Open(tmp)
	if err != nil {
		return rep, fmt.Errorf("dump: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != n {
		return rep, fmt.Errorf("dump: %s changed after it was hashed (%v)", tmp, err)
	}
	if cfg.Format == vm.DumpWinDmp {
		r, err := dump.CheckFile(ctx, f, n, dump.CheckOptions{Deep: cfg.Deep})
		if err != nil {
			return rep, fmt.Errorf("dump: %w: %w", ErrDumpInvalid, err)
		}
		rep.Check = r
		rep.Live = r.BugCheck.Code.Value == dump.BugCheckLiveSystemDump
		if !r.OK() {
			return rep, fmt.Errorf("dump: %w: %s", ErrDumpInvalid, r.Verdict)
		}
		// QEMU writes its header and then exactly the pages the header lays out: a shorter
		// file is CORRUPT above, a longer one must not pass either.
		for _, fd := range r.Findings {
			if fd.Code == "trailing-data" {
				return rep, fmt.Errorf("dump: %w: %s", ErrDumpInvalid, fd.Message)
			}
		}
	} else {
		ef, err := elf.NewFile(f)
		if err != nil || ef.Type != elf.ET_CORE {
			return rep, fmt.Errorf("dump: %w: not an ELF core (%v)", ErrDumpInvalid, err)
		}
		rep.Readers = ELFReaders
	}
	slog.Debug("host dump checked", "after_written", time.Since(written))
	// On disk before it is in place (as internal/atomicfile does); the follower started the
	// writes while it hashed.
	if err := f.Sync(); err != nil {
		return rep, fmt.Errorf("dump: %w", err)
	}
	if err := os.Link(tmp, final); err != nil {
		return rep, fmt.Errorf("dump: %w", err)
	}
	if df, err := os.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	slog.Debug("host dump in place", "path", final, "after_written", time.Since(written))
	rep.Output = final
	rep.Duration = time.Since(start)
	rep.DurationMS = rep.Duration.Milliseconds()
	return rep, nil
}

func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
