package vm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/vm/internal/qmpconn"
)

// Target is one guest behind a hypervisor connection. Methods are safe for concurrent use,
// except that Events may be called once.
type Target interface {
	// Backend names the backend ("qmp" or "libvirt").
	Backend() Backend
	// Describe names the target for messages ("qmp unix:/run/vm.sock", "libvirt
	// qemu:///system domain win11").
	Describe() string
	// Status reports the run state, the keyboards and which one receives injected keys, the
	// panic devices and the panic action.
	Status(ctx context.Context) (Status, error)
	// Send delivers seq as explicit key down/up events, paced by its delays, and releases
	// whatever is still down if anything goes wrong. The result is returned even with an
	// error and says what was sent and released.
	Send(ctx context.Context, seq hid.Sequence, opts SendOptions) (*SendResult, error)
	// SendChord sends h as one chord (QMP send-key, libvirt DomainSendKey) holding each key
	// holdMs milliseconds; see hid.ChordWarning for what guests make of it.
	SendChord(ctx context.Context, h hid.Hotkey, holdMs int, opts SendOptions) (*SendResult, error)
	// InjectNMI injects a non-maskable interrupt.
	InjectNMI(ctx context.Context) error
	// Events streams the guest's events until ctx ends or the connection is lost (on QMP
	// also when Send had to reconnect); the channel is then closed. Call it once.
	Events(ctx context.Context) (<-chan Event, error)
	// PreparePanic makes sure a crash announced by the guest does not stop it before Windows
	// writes its dump (QMP: set-action panic=none), or, on libvirt, reports what the domain's
	// on_crash will do.
	PreparePanic(ctx context.Context) (PanicReport, error)
	// SetActions sets QEMU's run-state actions (QMP set-action; on libvirt through the monitor
	// passthrough). Empty fields are left alone.
	SetActions(ctx context.Context, a Actions) error
	// Resume continues a paused guest (QMP cont, libvirt DomainResume).
	Resume(ctx context.Context) error
	// Agent connects to the guest's QEMU guest agent: for QMP targets through the agent's own
	// socket at addr ("unix:/path" or "tcp:host:port"), for libvirt through libvirt (addr
	// must be empty).
	Agent(ctx context.Context, addr string) (Agent, error)
	// Close ends the connection.
	Close() error
}

// Actions are QEMU's run-state actions (QMP set-action, QEMU 6.0 and later).
type Actions struct {
	// Reboot is "reset" or "shutdown".
	Reboot string `json:"reboot,omitempty"`
	// Shutdown is "poweroff" or "pause".
	Shutdown string `json:"shutdown,omitempty"`
	// Panic is "none", "pause", "shutdown" or "exit-failure".
	Panic string `json:"panic,omitempty"`
	// Watchdog is "reset", "shutdown", "poweroff", "pause", "debug", "none" or "inject-nmi".
	Watchdog string `json:"watchdog,omitempty"`
}

// Agent is a connection to the QEMU guest agent in the guest.
type Agent interface {
	// Ping checks that the agent answers (guest-ping); a guest that crashed stops answering.
	Ping(ctx context.Context) error
	// Exec starts a command line in the guest (guest-exec) without waiting for it, through
	// cmd.exe /c on Windows and /bin/sh -c elsewhere, and returns its process id.
	Exec(ctx context.Context, command string) (pid int, err error)
	// Windows reports whether the guest runs Windows (guest-get-osinfo).
	Windows(ctx context.Context) bool
	// Run runs a program (no shell) and waits for it (guest-exec with captured output,
	// guest-exec-status): a non-zero exit is an *ExitError with the output; agents without
	// guest-exec give ErrAgentTooOld, refused commands ErrAgentDenied.
	Run(ctx context.Context, path string, args ...string) (*ExecResult, error)
	// WriteFile creates or truncates a guest file and writes data (guest-file-open, -write,
	// -close; at most MaxAgentFile bytes).
	WriteFile(ctx context.Context, path string, data []byte) error
	// RemoveFile deletes a guest file (del on Windows, rm elsewhere).
	RemoveFile(ctx context.Context, path string) error
	// Reboot restarts the guest (guest-shutdown mode reboot) and waits, bounded by ctx, until
	// the agent stopped answering and answers again.
	Reboot(ctx context.Context) error
	// Close ends the connection.
	Close() error
}

// Backend names a Target implementation.
type Backend string

// The backends.
const (
	QMP     Backend = "qmp"
	Libvirt Backend = "libvirt"
)

// Address says where a target is: a QMP socket, or a libvirt URI and domain.
type Address struct {
	// QMP is "unix:/path", "tcp:host:port" or a bare socket path.
	QMP string
	// LibvirtURI is a libvirt connection URI ("qemu:///system", "qemu+ssh://user@host/system",
	// "qemu+tls://host/system", "qemu+tcp://host/system").
	LibvirtURI string
	// Domain is the libvirt domain name.
	Domain string
}

// Validate checks that exactly one backend is named, completely.
func (a Address) Validate() error {
	switch {
	case a.QMP != "" && a.LibvirtURI != "":
		return errors.New("target: give a QMP socket or a libvirt URI, not both")
	case a.QMP != "":
		if a.Domain != "" {
			return errors.New("target: a domain name goes with a libvirt URI, not with a QMP socket")
		}
		_, _, err := ParseQMPAddress(a.QMP)
		return err
	case a.LibvirtURI != "":
		if a.Domain == "" {
			return errors.New("target: a libvirt URI needs a domain name (--domain NAME)")
		}
		return nil
	}
	return errors.New("target: no target: give a QMP socket (--qmp unix:PATH or tcp:HOST:PORT) or a libvirt URI and domain (--libvirt URI --domain NAME)")
}

// ParseQMPAddress splits a QMP address into a network and an address for net.Dial:
// "unix:/path" and bare paths are unix sockets, "tcp:host:port" is TCP.
func ParseQMPAddress(s string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		network, addr = "unix", strings.TrimPrefix(s, "unix:")
		// QEMU's own syntax allows options after a comma; a client needs only the path.
		if i := strings.IndexByte(addr, ','); i >= 0 {
			addr = addr[:i]
		}
	case strings.HasPrefix(s, "tcp:"):
		network, addr = "tcp", strings.TrimPrefix(s, "tcp:")
		if i := strings.IndexByte(addr, ','); i >= 0 {
			addr = addr[:i]
		}
		host, port, perr := splitHostPort(addr)
		if perr != nil || port == "" {
			return "", "", fmt.Errorf("qmp address %q: want tcp:HOST:PORT", s)
		}
		if host == "" {
			addr = "localhost:" + port
		}
	case strings.Contains(s, ":") && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "."):
		return "", "", fmt.Errorf("qmp address %q: want unix:PATH or tcp:HOST:PORT", s)
	default:
		network, addr = "unix", s
	}
	if addr == "" {
		return "", "", fmt.Errorf("qmp address %q: empty path: want unix:PATH or tcp:HOST:PORT", s)
	}
	return network, addr, nil
}

func splitHostPort(s string) (string, string, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("no port")
	}
	host, port := s[:i], s[i+1:]
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", "", errors.New("bad port")
		}
	}
	return host, port, nil
}

// Options tune a connection.
type Options struct {
	// Timeout bounds connecting and every call (a context with an earlier deadline wins)
	// (default 10 s).
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	return o
}

// Dial connects to the target a names.
func Dial(ctx context.Context, a Address, opts Options) (Target, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if a.QMP != "" {
		return DialQMP(ctx, a.QMP, opts)
	}
	return DialLibvirt(ctx, a.LibvirtURI, a.Domain, opts)
}

// Status is what Target.Status reports.
type Status struct {
	// Backend is the target's backend.
	Backend Backend `json:"backend"`
	// State is the run state: QMP's query-status status ("running", "paused",
	// "guest-panicked", "shutdown", …) or libvirt's domain state ("running", "paused",
	// "crashed", "shutoff", …).
	State string `json:"state"`
	// Reason is libvirt's state reason ("user", "panicked", …); empty for QMP.
	Reason string `json:"reason,omitempty"`
	// Running is true when injected keys reach the guest.
	Running bool `json:"running"`
	// Keyboards are the guest's keyboards.
	Keyboards []Keyboard `json:"keyboards"`
	// Receiver is the keyboard injected keys go to (nil when there is none).
	Receiver *Keyboard `json:"receiver"`
	// PanicDevices are the devices through which a guest announces a crash: "pvpanic" (ISA),
	// "pvpanic-pci", "hyperv" (hv-crash), or libvirt panic models.
	PanicDevices []string `json:"panic_devices"`
	// PanicAction is what happens when the guest announces a crash: QMP's panic action when
	// known ("none" after PreparePanic; QEMU has no query for it) or libvirt's on_crash.
	PanicAction string `json:"panic_action"`
	// Warnings are problems to tell the user about.
	Warnings []string `json:"warnings,omitempty"`
}

// Keyboard is one keyboard device of the guest.
type Keyboard struct {
	// Bus is "ps2", "usb" or "virtio".
	Bus string `json:"bus"`
	// Device is QEMU's device type ("i8042", "usb-kbd", "virtio-keyboard-pci") or libvirt's
	// <input> description.
	Device string `json:"device"`
	// Path is the QOM path, or the libvirt device alias when known.
	Path string `json:"path,omitempty"`
	// Driver is the Windows driver whose registry values arm the hotkey for this keyboard.
	Driver hid.Driver `json:"driver"`
}

// driverFor is the Windows keyboard driver behind a bus (windows-crash.md §2).
func driverFor(bus string) hid.Driver {
	if bus == "ps2" {
		return hid.I8042prt
	}
	return hid.Kbdhid
}

// chooseReceiver applies QEMU's routing (ui/input.c): keys go to the handler activated last.
// usb-kbd activates itself when it is created and virtio-keyboard when the guest's driver
// starts, both after the PS/2 keyboard registered at machine init, which never activates.
func chooseReceiver(kbs []Keyboard) (*Keyboard, []string) {
	var warn []string
	var ps2, usb, virtio []int
	for i, k := range kbs {
		switch k.Bus {
		case "ps2":
			ps2 = append(ps2, i)
		case "usb":
			usb = append(usb, i)
		case "virtio":
			virtio = append(virtio, i)
		}
	}
	var pick int
	switch {
	case len(virtio) > 0:
		pick = virtio[len(virtio)-1]
	case len(usb) > 0:
		pick = usb[len(usb)-1]
	case len(ps2) > 0:
		pick = ps2[0]
	default:
		return nil, []string{"the guest has no keyboard: injected keys go nowhere"}
	}
	r := kbs[pick]
	if len(ps2) > 0 && r.Bus != "ps2" {
		warn = append(warn, fmt.Sprintf("the guest has a PS/2 and a %s keyboard: QEMU sends injected keys to the %s keyboard only, so Windows' %s must be armed (i8042prt alone is not enough)", r.Bus, r.Bus, r.Driver))
	}
	if len(usb)+len(virtio) > 1 {
		warn = append(warn, fmt.Sprintf("the guest has %d USB/virtio keyboards: keys go to the one activated last (assumed %s %s); arm kbdhid", len(usb)+len(virtio), r.Device, r.Path))
	}
	return &r, warn
}

// SendOptions tune Send and SendChord.
type SendOptions struct {
	// Force sends even when the guest is not running (keys are then usually lost).
	Force bool
	// CallTimeout bounds each call (default: the target's Options.Timeout).
	CallTimeout time.Duration
	// ReleaseTimeout bounds the release after a failure, reconnecting included (default 5 s).
	ReleaseTimeout time.Duration
}

// ErrNotRunning is returned (wrapped) by Send when the guest is not running and
// SendOptions.Force is not set.
var ErrNotRunning = errors.New("guest is not running")

// QMPError is an error reply from QEMU (the command reached QEMU, which refused it).
type QMPError = qmpconn.Error

// Call is one monitor call made by Send.
type Call struct {
	// Command is the QMP command sent.
	Command string `json:"command"`
	// Events are the key events it carried ("+ctrl_r -ctrl_r").
	Events string `json:"events"`
	// Release is true for the calls that released keys after a failure.
	Release bool `json:"release,omitempty"`
	// Error is why the call failed (empty on success).
	Error string `json:"error,omitempty"`
}

// SendResult says what Send did.
type SendResult struct {
	// Method is "events" (input-send-event) or "chord" (send-key / DomainSendKey).
	Method string `json:"method"`
	// Status is the state checked before sending (nil when the check itself failed).
	Status *Status `json:"status,omitempty"`
	// Calls are every monitor call, in order.
	Calls []Call `json:"calls"`
	// Sent are the events QEMU confirmed.
	Sent string `json:"sent"`
	// Uncertain are the events of a call that failed without an answer (broken connection,
	// deadline): QEMU may or may not have carried them out.
	Uncertain string `json:"uncertain,omitempty"`
	// Complete is true when the whole sequence was delivered.
	Complete bool `json:"complete"`
	// Released are the releases sent after a failure.
	Released string `json:"released,omitempty"`
	// Stuck are the keys that may still be held down (QKeyCodes), when the release failed.
	Stuck []string `json:"stuck,omitempty"`
	// Reconnected is true when the release needed a new connection.
	Reconnected bool `json:"reconnected,omitempty"`
	// Warnings are the keyboard-routing and chord warnings.
	Warnings []string `json:"warnings,omitempty"`
}

// PanicReport is what PreparePanic did or found.
type PanicReport struct {
	// Backend is the target's backend.
	Backend Backend `json:"backend"`
	// Devices are the panic devices (see Status.PanicDevices).
	Devices []string `json:"devices"`
	// Action is the panic action now in force: "none" after QMP set-action, or libvirt's
	// on_crash value.
	Action string `json:"action"`
	// Changed is true when PreparePanic changed the action.
	Changed bool `json:"changed"`
	// Effect says in words what happens when Windows announces the crash.
	Effect string `json:"effect"`
	// Warnings say what may stop the dump from being written, and how to fix it.
	Warnings []string `json:"warnings,omitempty"`
}
