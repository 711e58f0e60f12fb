package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/standin"
)

func init() { modes["windows"] = windowsMode }

// Defaults of the windows mode (kernel parameters crashkey.disk= and crashkey.ntfscp=).
const (
	winDefaultDisk   = "/dev/vda"
	winDefaultNtfscp = "/bin/ntfscp"
	// winDiskWait bounds the wait for the disk's block device (virtio_blk probes it
	// asynchronously after the module is loaded).
	winDiskWait = 30 * time.Second
	// winMoveTimeout bounds the SMSS step (ntfscp of a dump of a few MiB).
	winMoveTimeout = 2 * time.Minute
)

// windowsMode plays a Windows guest at every point crashkey depends on (package
// e2e/standin): at boot it reads its crash settings from the SYSTEM hive on its disk, moves a
// dump left in pagefile.sys by the previous crash to Windows\MEMORY.DMP as SMSS does, and then
// runs the keyboard drivers' crash-hotkey model on the raw bytes its keyboards deliver. When
// the model fires, or an NMI shows in the kernel log, it bug-checks: pvpanic, the dump written
// straight into pagefile.sys's sectors, then a reboot (or a hang when
// CrashControl\AutoReboot is 0).
//
// Lines written, besides the recorder's dev/ready/ps2/usb/error lines (the raw input is still
// reported, so tests can see what the guest received):
//
//	windows disk=… / controlset=… / driver=… / crash … / pagefile=… / problem=…   Machine.Lines
//	windows move source=… moved=true|false …   the SMSS step (MoveInfo.Line)
//	windows fired <driver> bus=<ps2|usb> at=<n>  the hotkey model fired on the n-th byte/report
//	windows hung keys=ignored|handled nmi=…       crashkey.ignore= made it a hung Windows
//	windows nmi [ignored]                        an NMI was logged by the kernel
//	windows exec-crash                           notmyfault (SIGUSR1 to PID 1) asked for a crash
//	windows bugcheck code=0x… params=…          the bug check raised
//	windows panic <panicked|crash-loaded> [error=…]   the pvpanic event
//	windows dump type=… sha256=… …               the dump written (DumpInfo.Line)
//	windows nodump error=…                       why no dump was written
//	windows reboot | windows halt                AutoReboot=1 | AutoReboot=0
func windowsMode(e *env) error {
	dev := e.params.get("crashkey.disk", winDefaultDisk)
	m, err := waitLoad(dev, winDiskWait)
	if err != nil {
		return err
	}
	for _, l := range m.Lines() {
		e.out.emit("windows", l)
	}
	if err := mountTmp(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), winMoveTimeout)
	mv, err := standin.MoveDumpAtBootWith(ctx, m, standin.MoveOptions{
		Device: dev, Ntfscp: e.params.get("crashkey.ntfscp", winDefaultNtfscp), TempDir: "/tmp",
	})
	cancel()
	if err != nil {
		return fmt.Errorf("smss: %w", err)
	}
	e.out.emit("windows", mv.Line())
	unix.Sync()

	g := newWinGuest(e.out, m, winDeps{
		bugCheck: func(code uint32, params [4]uint64) (*standin.CrashResult, error) {
			return standin.BugCheck(m, dev, code, params, time.Now(), standin.DefaultPVPanic, standin.DumpOptions{})
		},
		sync:   unix.Sync,
		reboot: func() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) },
	})
	for _, what := range e.params.list("crashkey.ignore") {
		switch what {
		case "keys":
			g.ignoreKeys = true
		case "nmi":
			g.ignoreNMI = true
		default:
			return fmt.Errorf("crashkey.ignore=%s: want keys, nmi or keys,nmi", what)
		}
	}
	if g.ignoreKeys || g.ignoreNMI {
		e.out.emit("windows", "hung", "keys="+ignored(g.ignoreKeys), "nmi="+ignored(g.ignoreNMI))
	}
	go watchKmsg(e.out, g.nmi)
	go watchCrashRequests(g)
	openKeyboards(e, expectedKeyboards(e), g.feed)
	// Only now the agent: an agent that answers means the keyboards listen, as on Windows,
	// where the keyboard drivers load long before the guest agent service starts.
	startAgent(e)
	e.out.emit("ready")
	hang()
	return nil
}

// waitLoad loads the machine from dev, waiting up to d for the device to appear.
func waitLoad(dev string, d time.Duration) (*standin.Machine, error) {
	deadline := time.Now().Add(d)
	for {
		_, err := os.Stat(dev)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("disk %s did not appear within %v: attach the stand-in disk as the first virtio disk (harness.Config.Disks): %w", dev, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m, err := standin.Load(dev)
	if err != nil {
		return nil, fmt.Errorf("load %s (build it with scripts/guest/standin-disk.sh): %w", dev, err)
	}
	return m, nil
}

// mountTmp gives ntfscp's helper a writable /tmp (a tmpfs, not the rootfs, so that the
// dump copied out of the paging file is freed with it).
func mountTmp() error {
	if err := os.MkdirAll("/tmp", 0o1777); err != nil {
		return fmt.Errorf("mkdir /tmp: %w", err)
	}
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "mode=1777,size=64m"); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount tmpfs on /tmp: %w", err)
	}
	return nil
}

// winDeps are the side effects of a crash, replaced by tests.
type winDeps struct {
	// bugCheck raises pvpanic and writes the dump (standin.BugCheck).
	bugCheck func(code uint32, params [4]uint64) (*standin.CrashResult, error)
	// sync flushes the disk; reboot restarts the machine and does not return on success.
	sync   func()
	reboot func() error
}

// winGuest is the running stand-in: the hotkey detector fed from the keyboards' goroutines
// and the kernel log's, guarded by mu, and the one crash it can have.
type winGuest struct {
	out  *output
	m    *standin.Machine
	deps winDeps

	mu      sync.Mutex
	det     *standin.Detector
	fed     map[string]int // bytes (ps2) or reports (usb) fed so far, per bus
	crashed bool

	// ignoreKeys and ignoreNMI make a hung Windows (crashkey.ignore=): a deadlock at high
	// IRQL never runs the keyboard driver's crash check; a blocked NMI never bug-checks.
	ignoreKeys, ignoreNMI bool
	// region is the published dump-header region (vmcoreinfo.go), where a bug check is
	// recorded in KiBugcheckData; nil when none was published.
	region []byte
}

func ignored(b bool) string {
	if b {
		return "ignored"
	}
	return "handled"
}

func newWinGuest(out *output, m *standin.Machine, deps winDeps) *winGuest {
	return &winGuest{out: out, m: m, deps: deps, det: standin.NewDetector(m), fed: map[string]int{}, region: winRegionMem}
}

// feed reports one input event, as the recorder does, and runs the driver model on it.
func (g *winGuest) feed(ev inputEvent) {
	kind, fields := ev.fields()
	g.out.emit(kind, fields...)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.crashed || g.ignoreKeys {
		return
	}
	fired := false
	switch ev.Kind {
	case "ps2":
		for _, b := range ev.Data {
			g.fed["ps2"]++
			if g.det.FeedPS2(b) {
				fired = true
				break
			}
		}
	case "usb":
		if len(ev.Data) != 8 {
			g.out.emit("error", fmt.Sprintf("windows: usb report of %d bytes, want an 8-byte boot report", len(ev.Data)))
			return
		}
		g.fed["usb"]++
		fired = g.det.FeedUSB([8]byte(ev.Data))
	default:
		return // virtio and other evdev keyboards have no Windows keyboard-crash driver
	}
	if fired {
		g.out.emit("windows", "fired", string(g.det.Fired()), "bus="+ev.Kind, "at="+strconv.Itoa(g.fed[ev.Kind]-1))
		g.crashLocked(dump.BugCheckManuallyInitiated, [4]uint64{})
	}
}

// watchCrashRequests bug-checks on SIGUSR1, which the initramfs's notmyfault (e2e/cmd/reg)
// sends to PID 1: a crash started from inside the guest, as NotMyFault starts one on Windows
// (crashkey run --trigger exec:notmyfault through the guest agent). Line: "windows exec-crash".
func watchCrashRequests(g *winGuest) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGUSR1)
	for range ch {
		g.mu.Lock()
		g.out.emit("windows", "exec-crash")
		if !g.crashed {
			g.crashLocked(dump.BugCheckManuallyInitiated, [4]uint64{})
		}
		g.mu.Unlock()
	}
}

// nmi is called for every NMI the kernel logs: Windows 8 and later bug-check with 0x80.
func (g *winGuest) nmi() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ignoreNMI {
		g.out.emit("windows", "nmi", "ignored")
		return
	}
	g.out.emit("windows", "nmi")
	if g.crashed {
		return
	}
	g.crashLocked(dump.BugCheckNMIHardwareFailure, standin.NMIParams)
}

// crashLocked is the bug check: pvpanic and the dump, then a reboot or a halt. It runs once.
func (g *winGuest) crashLocked(code uint32, params [4]uint64) {
	g.crashed = true
	recordBugCheck(g.region, code, params)
	g.out.emit("windows", "bugcheck", "code="+dump.FormatBugCheck(code), fmt.Sprintf("params=%#x,%#x,%#x,%#x", params[0], params[1], params[2], params[3]))
	res, err := g.deps.bugCheck(code, params)
	if res != nil && res.Panic != 0 {
		p := []string{"panic", res.Panic.String()}
		if res.PanicError != "" {
			p = append(p, "error="+strconv.Quote(res.PanicError))
		}
		g.out.emit("windows", p...)
	}
	switch {
	case err != nil:
		g.out.emit("windows", "nodump", "error="+strconv.Quote(err.Error()))
	case res.Dump != nil:
		g.out.emit("windows", res.Dump.Line())
	}
	g.deps.sync()
	if !g.m.Crash.AutoReboot {
		g.out.emit("windows", "halt")
		return
	}
	g.out.emit("windows", "reboot")
	if err := g.deps.reboot(); err != nil {
		g.out.emit("error", "windows: reboot: "+err.Error())
	}
}
