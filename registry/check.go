package registry

import (
	"fmt"
	"strings"
	"time"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes/layout"
)

// Severity grades a problem.
type Severity string

// Severities. Errors stop a dump (or the hotkey); warnings may.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Problem is one thing in the guest's configuration that stops (error) or may stop (warning)
// a crash dump, with its fix.
type Problem struct {
	// ID is a stable identifier: "hotkey-none", "dump-disabled", "pagefile-small", ….
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Driver is the keyboard driver the problem concerns, if any.
	Driver hid.Driver `json:"driver,omitempty"`
	// Message says what is wrong.
	Message string `json:"message"`
	// Fix says how to fix it: usually the crashkey arm command whose output fixes it.
	Fix string `json:"fix,omitempty"`
}

// DriverReport is what one keyboard driver will do on the guest.
type DriverReport struct {
	Driver hid.Driver `json:"driver"`
	// Keyboards names the keyboards the driver serves.
	Keyboards string `json:"keyboards"`
	// Damaged reports that the driver's keys are damaged in the hive; Source is then
	// "unknown" unless CrashOnCtrlScroll could be read as set.
	Damaged bool `json:"damaged,omitempty"`
	// Present reports that the service exists; Start is its start type ("system (1)").
	Present bool   `json:"present"`
	Start   string `json:"start,omitempty"`
	// CrashOnCtrlScroll, Dump1Keys and Dump2Key are the registry values as found.
	CrashOnCtrlScroll *uint32 `json:"crashOnCtrlScroll,omitempty"`
	Dump1Keys         *uint32 `json:"dump1Keys,omitempty"`
	Dump2Key          *uint32 `json:"dump2Key,omitempty"`
	// Armed reports that some hotkey fires the bug check through this driver.
	Armed bool `json:"armed"`
	// Source is where the effective hotkey comes from: "CrashOnCtrlScroll", "crashdump",
	// "built-in default" or "none".
	Source string `json:"source"`
	// Hotkey is the effective hotkey in human form ("RCtrl+ScrollLock"); Registry is the same
	// as Dump1Keys/Dump2Key ("0x02/0x7d") and Spec as a --hotkey argument.
	Hotkey   string `json:"hotkey,omitempty"`
	Registry string `json:"registry,omitempty"`
	Spec     string `json:"spec,omitempty"`
	// Reason says why no hotkey can fire.
	Reason string `json:"reason,omitempty"`
	// Labels and Press read the armed hotkey on the report's layout (with a layout only).
	Labels string `json:"labels,omitempty"`
	Press  string `json:"press,omitempty"`

	hotkey *hid.Hotkey
}

// DumpReport is the CrashControl configuration with Windows' defaults filled in.
type DumpReport struct {
	Type DumpType `json:"type"`
	// Setting is the raw form: "CrashDumpEnabled=1, FilterPages=1".
	Setting           string `json:"setting"`
	DumpFile          string `json:"dumpFile"`
	MinidumpDir       string `json:"minidumpDir"`
	AutoReboot        bool   `json:"autoReboot"`
	Overwrite         bool   `json:"overwrite"`
	DedicatedDumpFile string `json:"dedicatedDumpFile,omitempty"`
	// NMI says what an injected NMI does on this guest.
	NMI string `json:"nmi"`
	// HostDump says whether the host can write a Windows dump of the guest (FwCfg driver).
	HostDump string `json:"hostDump"`
}

// HotkeyCheck answers whether a given hotkey fires on the guest, for a PS/2 keyboard
// (i8042prt) and a USB keyboard (kbdhid).
type HotkeyCheck struct {
	Hotkey   string `json:"hotkey"`
	Registry string `json:"registry"`
	// Labels, Description and Press read the hotkey on the report's layout.
	Labels      string      `json:"labels,omitempty"`
	Description string      `json:"description,omitempty"`
	Press       string      `json:"press,omitempty"`
	PS2         FireVerdict `json:"ps2"`
	USB         FireVerdict `json:"usb"`
}

// FireVerdict is the driver model's answer for one keyboard.
type FireVerdict struct {
	Driver hid.Driver `json:"driver"`
	Fires  bool       `json:"fires"`
	// Reason says why it does not fire.
	Reason string `json:"reason,omitempty"`
}

// Report is the result of a preflight check.
type Report struct {
	// Image is the disk image (or hive file) checked; Volume the partition index read.
	Image  string `json:"image,omitempty"`
	Volume int    `json:"volume,omitempty"`
	// Hive is the SYSTEM hive's path (inside the volume, or the file itself).
	Hive string `json:"hive"`
	// Logs lists the hive's transaction logs found beside it (SYSTEM.LOG1, SYSTEM.LOG2).
	Logs []LogFile `json:"logs,omitempty"`
	// Warnings come from reading the image (e.g. an image in use).
	Warnings []string `json:"warnings,omitempty"`
	// ControlSet is the control set CurrentControlSet stands for ("ControlSet001").
	ControlSet string `json:"controlSet"`
	// ProductType and Client: client Windows 10 and later has a built-in default hotkey.
	ProductType string `json:"productType"`
	Client      bool   `json:"client"`
	// Windows is the version read from the SOFTWARE hive; nil when unknown (VersionUnknown
	// says why).
	Windows        *WindowsVersion `json:"windows,omitempty"`
	VersionUnknown string          `json:"versionUnknown,omitempty"`
	// WindowsSummary is Windows as one line ("Windows 7 (…), build 7601, Client") and
	// WindowsBuild its build number (0 when unknown).
	WindowsSummary string `json:"windowsSummary,omitempty"`
	WindowsBuild   int    `json:"windowsBuild,omitempty"`
	// BuiltinDefault reports that the drivers' built-in default hotkey can exist here.
	BuiltinDefault bool           `json:"builtinDefault"`
	Drivers        []DriverReport `json:"drivers"`
	Dump           DumpReport     `json:"dump"`
	Paging         PagingReport   `json:"paging"`
	// Hotkey is the answer for the hotkey crashkey was asked about, if any.
	Hotkey *HotkeyCheck `json:"hotkey,omitempty"`
	// Layout is the keyboard layout the hotkeys are read on (CheckOptions.Layout).
	Layout string `json:"layout,omitempty"`
	// Problems lists errors first, then warnings.
	Problems []Problem `json:"problems"`
	// Fix is one crashkey arm command whose output fixes every error (empty when none).
	Fix string `json:"fix,omitempty"`
	// OK reports that no error was found.
	OK bool `json:"ok"`
	// Settings are the raw values read from the hive.
	Settings *Settings `json:"settings"`
}

// LogFile is a hive transaction log found beside the hive.
type LogFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// CheckOptions tune Check.
type CheckOptions struct {
	// Hotkey is the hotkey crashkey will send; when set, the report says whether it fires
	// on a PS/2 and on a USB keyboard, and an error is raised for each that does not.
	Hotkey *hid.Hotkey
	// MemoryMiB is the guest's memory size, to judge whether the dump fits in the paging
	// file; 0 leaves that open when the paging file has a fixed size.
	MemoryMiB uint64
	// Logs are the transaction logs found beside the hive, mentioned when it is dirty.
	Logs []LogFile
	// VersionUnknown, when set, says why the Windows version could not be read (no SOFTWARE
	// hive): a warning says what crashkey assumes instead.
	VersionUnknown string
	// Layout, when set, is the guest's keyboard layout: the report says what a person must
	// press there for each armed hotkey (nil: Hotkey.Layout if set, else nothing).
	Layout *layout.Layout
}

var otherKeyboard = map[hid.Driver]string{
	hid.I8042prt: "a USB keyboard: QEMU -device usb-kbd, libvirt <input type='keyboard' bus='usb'/>",
	hid.Kbdhid:   "the PS/2 keyboard every x86 QEMU machine has",
}

// armFixes are the warnings that crashkey arm also fixes.
var armFixes = map[string]bool{"dump-small": true, "pagefile-small": true, "hotkey-builtin": true, "hotkey-mismatch": true}

var keyboards = map[hid.Driver]string{
	hid.I8042prt: "PS/2",
	hid.Kbdhid:   "USB/HID (also virtio via vioinput)",
	hid.Hyperkbd: "Hyper-V synthetic",
}

// Check judges settings read from a SYSTEM hive: for each keyboard driver whether and which
// hotkey fires (applying the drivers' precedence through package hid), CrashControl, the
// paging files, the hive's state, and whether opts.Hotkey would fire. Every problem comes with
// its fix.
func Check(s *Settings, opts CheckOptions) *Report {
	r := &Report{
		Settings:       s,
		Logs:           opts.Logs,
		ControlSet:     fmt.Sprintf("ControlSet%03d", s.ControlSet),
		ProductType:    s.ProductType,
		Client:         s.Client(),
		Windows:        s.Version,
		BuiltinDefault: s.BuiltinDefault(),
		Problems:       []Problem{},
	}
	if s.Version == nil {
		r.VersionUnknown = opts.VersionUnknown
	} else {
		r.WindowsSummary, r.WindowsBuild = s.Version.String(), s.Version.Build()
	}
	var probs []Problem
	add := func(p Problem) { probs = append(probs, p) }

	// The hive itself.
	switch {
	case s.Hive.Dirty && s.Hive.Replay == nil:
		msg := fmt.Sprintf("the hive is dirty (sequence numbers %d and %d differ) and its transaction logs could not be replayed: changes made shortly before the guest stopped may exist only in the logs, so these values are possibly stale",
			s.Hive.Sequence1, s.Hive.Sequence2)
		if len(opts.Logs) > 0 {
			var names []string
			for _, l := range opts.Logs {
				names = append(names, fmt.Sprintf("%s (%d bytes)", l.Name, l.Size))
			}
			msg += "; logs beside it: " + strings.Join(names, ", ")
		}
		if len(s.Hive.LogWarnings) > 0 {
			msg += "; " + strings.Join(s.Hive.LogWarnings, "; ")
		}
		add(Problem{ID: "hive-dirty", Severity: SeverityWarning, Message: msg,
			Fix: "shut the guest down cleanly (or boot it once) so Windows writes the logs back, then run preflight again"})
	case len(s.Hive.LogWarnings) > 0:
		add(Problem{ID: "hive-log", Severity: SeverityWarning,
			Message: "part of the transaction logs could not be used, so the newest changes may be missing: " + strings.Join(s.Hive.LogWarnings, "; ")})
	}
	for _, d := range s.Damage {
		where := d.Key
		if where == "" {
			where = "the root key"
		}
		switch d.Item {
		case "":
			add(Problem{ID: "hive-damage", Severity: SeverityWarning,
				Message: fmt.Sprintf("the hive is damaged under %s (%s); preflight read what it needs around it", where, d.Error),
				Fix:     damageFix})
		case string(hid.I8042prt), string(hid.Kbdhid), "CrashControl":
			// reported with the driver or the dump settings below
		default:
			add(Problem{ID: "hive-damage", Severity: SeverityWarning,
				Message: fmt.Sprintf("%s is unknown: the hive is damaged at %s (%s)", d.Item, where, d.Error), Fix: damageFix})
		}
	}
	if r.VersionUnknown != "" {
		assume := "that an NMI needs no setting (Windows 8 and later)"
		if r.Client {
			assume = "Windows 10 or later: the built-in default hotkey may exist, and an NMI needs no setting"
		}
		add(Problem{ID: "version-unknown", Severity: SeverityWarning,
			Message: "the Windows version is unknown (" + r.VersionUnknown + "): crashkey assumes " + assume})
	}
	for _, a := range versionAnomalies(s.Version) {
		add(Problem{ID: "version-value", Severity: SeverityWarning, Message: a})
	}
	if !s.Hive.ChecksumOK {
		add(Problem{ID: "hive-checksum", Severity: SeverityWarning, Message: "the hive's base block checksum does not match: the file may be damaged or half-written"})
	}
	if s.Hive.Truncated {
		add(Problem{ID: "hive-truncated", Severity: SeverityWarning, Message: "the hive file is shorter than its base block says: keys near its end may be missing"})
	}
	for _, a := range s.Anomalies {
		p := Problem{ID: "value-type", Severity: SeverityError, Message: a}
		if !strings.Contains(a, `\CrashControl\`) && !strings.Contains(a, `\Parameters\`) && !strings.Contains(a, `\crashdump\`) {
			p.Fix = "give the value the type Windows expects (REG_DWORD for numbers) in the guest"
		}
		add(p)
	}
	if s.ProductType == "" && !damagedItem(s, "ProductType") {
		msg := `Control\ProductOptions\ProductType is missing: assuming server Windows, which has no built-in hotkey`
		if s.Version != nil && s.Version.InstallationType != "" {
			msg = fmt.Sprintf(`Control\ProductOptions\ProductType is missing: going by the SOFTWARE hive's InstallationType (%s)`, s.Version.InstallationType)
		}
		add(Problem{ID: "product-type", Severity: SeverityWarning, Message: msg})
	}

	// Keyboard drivers.
	for _, d := range hid.Drivers {
		ds := s.Driver(d)
		dr := DriverReport{Driver: d, Keyboards: keyboards[d], Present: ds.Present,
			CrashOnCtrlScroll: ds.CrashOnCtrlScroll, Dump1Keys: ds.Dump1Keys, Dump2Key: ds.Dump2Key}
		if ds.Start != nil {
			dr.Start = fmt.Sprintf("%s (%d)", StartName(*ds.Start), *ds.Start)
		}
		client := r.BuiltinDefault && d != hid.Hyperkbd
		eff := s.Effective(d)
		dr.Source, dr.Reason = eff.Source, noHotkeyReason(s, d, eff)
		dr.Damaged = ds.Damaged
		if eff.Enabled() && eff.Hotkey != nil {
			dr.Armed, dr.hotkey = true, eff.Hotkey
			dr.Hotkey, dr.Registry, dr.Spec = eff.Hotkey.String(), eff.Hotkey.RegistryString(), spec(*eff.Hotkey)
		}
		if ds.Damaged && (!dr.Armed || dr.Source != "CrashOnCtrlScroll") {
			// CrashOnCtrlScroll read as set overrides anything else: damage elsewhere in the
			// driver's keys cannot change the answer. Otherwise the answer is unknown.
			dr.Armed, dr.hotkey, dr.Hotkey, dr.Registry, dr.Spec = false, nil, "", "", ""
			dr.Source = "unknown"
			dr.Reason = "unknown (damaged): " + damageOf(s, string(d))
		}
		r.Drivers = append(r.Drivers, dr)
		if d == hid.Hyperkbd {
			continue // QEMU has no Hyper-V keyboard: informational only
		}
		if dr.Source == "unknown" {
			add(Problem{ID: "hotkey-damaged", Severity: SeverityError, Driver: d,
				Message: fmt.Sprintf("whether %s has a crash hotkey is unknown: its keys in the hive are damaged (%s)", d, damageOf(s, string(d))),
				Fix:     damageFix})
			continue
		}
		switch {
		case !ds.Present:
			add(Problem{ID: "driver-missing", Severity: SeverityWarning, Driver: d,
				Message: fmt.Sprintf("%s is not installed, so a %s keyboard cannot crash this guest", d, keyboards[d]),
				Fix:     fmt.Sprintf("send the hotkey through the other keyboard (%s)", otherKeyboard[d])})
			continue
		case ds.Start != nil && *ds.Start == 4:
			add(Problem{ID: "driver-disabled", Severity: SeverityWarning, Driver: d,
				Message: fmt.Sprintf("the %s service is disabled (Start=4), so a %s keyboard cannot crash this guest", d, keyboards[d]),
				Fix:     fmt.Sprintf(`set Services\%s\Start back to its default in the guest`, d)})
		}
		switch {
		case !dr.Armed:
			add(Problem{ID: "hotkey-none", Severity: SeverityError, Driver: d,
				Message: fmt.Sprintf("%s has no crash hotkey: %s", d, dr.Reason)})
		case eff.Source == "built-in default":
			add(Problem{ID: "hotkey-builtin", Severity: SeverityWarning, Driver: d,
				Message: fmt.Sprintf("%s relies on the built-in default hotkey %s (%s) of client Windows 10 and later, which Microsoft does not document and not every build has; arm a hotkey explicitly", d, dr.Hotkey, dr.Registry)})
		}
		if ds.CrashOnCtrlScroll != nil && *ds.CrashOnCtrlScroll != 0 && (ds.Dump1Keys != nil || ds.Dump2Key != nil) {
			if custom := (hid.Registry{Dump1Keys: ds.Dump1Keys, Dump2Key: ds.Dump2Key, Client: client}).Effective(); custom.Hotkey != nil && !custom.Hotkey.Equal(hid.CrashOnCtrlScroll()) {
				add(Problem{ID: "hotkey-overridden", Severity: SeverityWarning, Driver: d,
					Message: fmt.Sprintf("%s: CrashOnCtrlScroll=%d overrides the custom hotkey %s (crashdump %s), so only RCtrl+ScrollLock fires",
						d, *ds.CrashOnCtrlScroll, custom.Hotkey, custom.Hotkey.RegistryString()),
					Fix: "crashkey arm --hotkey " + spec(*custom.Hotkey) + " (removes CrashOnCtrlScroll)"})
			}
		}
	}
	ps2, usb := r.Drivers[0], r.Drivers[1]
	if ps2.Armed && usb.Armed && !ps2.hotkey.Equal(*usb.hotkey) {
		add(Problem{ID: "hotkey-mismatch", Severity: SeverityWarning,
			Message: fmt.Sprintf("PS/2 (i8042prt) fires on %s but USB (kbdhid) on %s: one hotkey works only on one kind of keyboard", ps2.Hotkey, usb.Hotkey)})
	}
	for _, ds := range s.Drivers {
		if ds.Driver == hid.Hyperkbd {
			continue
		}
		for _, w := range []*time.Time{ds.ParametersWritten, ds.CrashdumpWritten} {
			if pending := rebootPending(s, w); pending != "" {
				add(Problem{ID: "reboot-pending", Severity: SeverityWarning, Driver: ds.Driver,
					Message: fmt.Sprintf("%s's hotkey keys were %s", ds.Driver, pending),
					Fix:     "restart the guest"})
				break
			}
		}
	}

	// The hotkey crashkey will send.
	if opts.Hotkey != nil {
		h := *opts.Hotkey
		plan := hid.Plan(h, hid.DefaultTiming)
		hc := &HotkeyCheck{Hotkey: h.String(), Registry: h.RegistryString()}
		hc.PS2 = fires(s, r.Drivers[0], func(reg hid.Registry) hid.Verdict { return hid.SimulateSet1(reg, hid.Set1(plan)) }, h, r.BuiltinDefault)
		hc.USB = fires(s, r.Drivers[1], func(reg hid.Registry) hid.Verdict { return hid.SimulateUSB(reg, hid.USBReports(plan)) }, h, r.BuiltinDefault)
		r.Hotkey = hc
		for _, v := range []struct {
			id, kb string
			fv     FireVerdict
		}{{"hotkey-ps2", "PS/2", hc.PS2}, {"hotkey-usb", "USB", hc.USB}} {
			if !v.fv.Fires {
				add(Problem{ID: v.id, Severity: SeverityError, Driver: v.fv.Driver,
					Message: fmt.Sprintf("%s would not fire on a %s keyboard: %s", h, v.kb, v.fv.Reason)})
			}
		}
	}

	// CrashControl.
	cc := s.CrashControl
	dt := cc.DumpType()
	if b := s.Version.Build(); dt == DumpActive && b != 0 && b < BuildWindows10 {
		dt = DumpComplete // the active memory dump (FilterPages) came with Windows 10
	}
	r.Dump = dumpReport(cc, dt, s.Version)
	if cc.Damaged && cc.CrashDumpEnabled != nil {
		add(Problem{ID: "hive-damage", Severity: SeverityWarning,
			Message: "some values of " + `Control\CrashControl` + " cannot be read (" + damageOf(s, "CrashControl") + "): Windows' defaults are shown for them",
			Fix:     damageFix})
	}
	r.Dump.HostDump = hostDumpNote(s)
	switch {
	case cc.Damaged && cc.CrashDumpEnabled == nil:
		add(Problem{ID: "dump-damaged", Severity: SeverityError,
			Message: "the crash dump settings are unknown: " + `Control\CrashControl` + " is damaged in the hive (" + damageOf(s, "CrashControl") + ")",
			Fix:     damageFix})
	case !cc.Present:
		add(Problem{ID: "dump-disabled", Severity: SeverityError, Message: `Control\CrashControl does not exist: no dump is configured`})
	case cc.CrashDumpEnabled == nil:
		add(Problem{ID: "dump-disabled", Severity: SeverityError, Message: `CrashControl\CrashDumpEnabled is missing, which means no dump`})
	case dt == DumpNone:
		add(Problem{ID: "dump-disabled", Severity: SeverityError, Message: "CrashDumpEnabled is 0: crash dumps are disabled"})
	case strings.HasPrefix(string(dt), "unknown"):
		add(Problem{ID: "dump-type", Severity: SeverityError, Message: fmt.Sprintf("CrashDumpEnabled is %d, which is no dump type Windows documents (0, 1, 2, 3 or 7)", *cc.CrashDumpEnabled)})
	case dt == DumpSmall:
		add(Problem{ID: "dump-small", Severity: SeverityWarning, Message: "CrashDumpEnabled is 3: only a small (triage) dump is written to MinidumpDir, not MEMORY.DMP"})
	}
	// CrashControl is not checked for changes after the last shutdown: Windows itself writes
	// LastCrashTime there on the boot after a crash, which is no clean shutdown.
	// With no dump configured, judge the paging file for the dump type the fix will set, so
	// that one fix covers both.
	pagingType := dt
	if !dt.WritesMemoryDump() && dt != DumpSmall {
		pagingType = DefaultDumpType
	}
	var pprobs []Problem
	r.Paging, pprobs = pagingFit(s, pagingType, opts.MemoryMiB)
	if s.PagingDamaged && r.Paging.Fits != "yes" {
		r.Paging.Fits, r.Paging.Detail, pprobs = "unknown", "the paging file settings are damaged in the hive", nil
	}
	if pagingType != dt {
		r.Paging.Detail = fmt.Sprintf("no dump is configured; for the %s dump crashkey arm sets: %s", pagingType, r.Paging.Detail)
	}
	probs = append(probs, pprobs...)

	// One arm command fixes every error; warnings keep their own advice.
	fix := fixCommand(s, r, opts, probs)
	for i := range probs {
		p := &probs[i]
		if p.Fix == "" && (p.Severity == SeverityError || armFixes[p.ID]) {
			p.Fix = fix
		}
	}
	for _, sev := range []Severity{SeverityError, SeverityWarning} {
		for _, p := range probs {
			if p.Severity == sev {
				r.Problems = append(r.Problems, p)
			}
		}
	}
	r.OK = true
	for _, p := range r.Problems {
		if p.Severity == SeverityError {
			r.OK = false
			r.Fix = fix
		}
	}
	r.applyLayout(opts.Layout, opts.Hotkey)
	return r
}

// spec is the --hotkey argument for h.
func spec(h hid.Hotkey) string {
	if h.CrashOnCtrlScroll || h.Equal(hid.CrashOnCtrlScroll()) {
		return "rctrl+scroll"
	}
	return h.Spec()
}

func fires(s *Settings, dr DriverReport, sim func(hid.Registry) hid.Verdict, h hid.Hotkey, client bool) FireVerdict {
	fv := FireVerdict{Driver: dr.Driver}
	if !dr.Present || dr.Source == "unknown" {
		fv.Reason = dr.Reason
		return fv
	}
	v := sim(s.Driver(dr.Driver).Registry(client))
	fv.Fires = v.Crash
	if v.Crash {
		return fv
	}
	switch {
	case !v.Effective.Enabled():
		fv.Reason = fmt.Sprintf("%s has no crash hotkey (%s)", dr.Driver, noHotkeyReason(s, dr.Driver, v.Effective))
	case v.Effective.Hotkey != nil:
		fv.Reason = fmt.Sprintf("%s is armed for %s (%s, from %s), not %s", dr.Driver, v.Effective.Hotkey, v.Effective.Hotkey.RegistryString(), v.Effective.Source, h)
	default:
		fv.Reason = fmt.Sprintf("%s does not fire on this key sequence", dr.Driver)
	}
	return fv
}

// rebootPending says when a key changed after the last clean shutdown, or "".
func rebootPending(s *Settings, written *time.Time) string {
	if written == nil || s.ShutdownTime == nil || !written.After(*s.ShutdownTime) {
		return ""
	}
	return fmt.Sprintf("changed at %s, after the last clean shutdown (%s): unless Windows has restarted since, the drivers still use the old values",
		written.Format(time.RFC3339), s.ShutdownTime.Format(time.RFC3339))
}

func dumpReport(cc CrashControl, dt DumpType, v *WindowsVersion) DumpReport {
	d := DumpReport{Type: dt, DumpFile: `%SystemRoot%\MEMORY.DMP`, MinidumpDir: `%SystemRoot%\Minidump`, AutoReboot: true, Overwrite: true}
	var set []string
	if cc.CrashDumpEnabled != nil {
		set = append(set, fmt.Sprintf("CrashDumpEnabled=%d", *cc.CrashDumpEnabled))
	} else {
		set = append(set, "CrashDumpEnabled absent")
	}
	if cc.FilterPages != nil {
		set = append(set, fmt.Sprintf("FilterPages=%d", *cc.FilterPages))
	}
	d.Setting = strings.Join(set, ", ")
	if cc.DumpFile != nil {
		d.DumpFile = *cc.DumpFile
	}
	if cc.MinidumpDir != nil {
		d.MinidumpDir = *cc.MinidumpDir
	}
	if cc.AutoReboot != nil {
		d.AutoReboot = *cc.AutoReboot != 0
	}
	if cc.Overwrite != nil {
		d.Overwrite = *cc.Overwrite != 0
	}
	if cc.DedicatedDumpFile != nil {
		d.DedicatedDumpFile = *cc.DedicatedDumpFile
	}
	nmi := "absent"
	if cc.NMICrashDump != nil {
		nmi = fmt.Sprint(*cc.NMICrashDump)
	}
	switch b := v.Build(); {
	case b == 0:
		d.NMI = fmt.Sprintf("an NMI bug-checks with 0x80 NMI_HARDWARE_FAILURE on Windows 8 / Server 2012 and later, no setting needed; NMICrashDump (%s) matters only before Windows 8", nmi)
	case b >= BuildWindows8:
		d.NMI = fmt.Sprintf("an NMI bug-checks with 0x80 NMI_HARDWARE_FAILURE (%s is Windows 8 / Server 2012 or later: no setting needed; NMICrashDump is %s)", v.Family(), nmi)
	case cc.NMICrashDump != nil && *cc.NMICrashDump != 0:
		d.NMI = fmt.Sprintf("an NMI bug-checks with 0x80 NMI_HARDWARE_FAILURE: %s needs NMICrashDump=1, and it is %s", v.Family(), nmi)
	default:
		d.NMI = fmt.Sprintf("an NMI does NOT bug-check: %s (before Windows 8) needs CrashControl\\NMICrashDump=1 (REG_DWORD), and it is %s", v.Family(), nmi)
	}
	if dt == DumpNone {
		d.NMI += "; with dumps disabled it writes no dump"
	}
	return d
}

// fixCommand is the crashkey arm command that fixes the errors in probs while keeping what
// is already right: the hotkey asked about (or the one the guest's drivers agree on), a dump
// type that writes MEMORY.DMP, AutoReboot=0 and a DedicatedDumpFile.
func fixCommand(s *Settings, r *Report, opts CheckOptions, probs []Problem) string {
	args := []string{"crashkey", "arm"}
	switch {
	case opts.Hotkey != nil:
		if sp := spec(*opts.Hotkey); sp != "rctrl+scroll" {
			args = append(args, "--hotkey", sp)
		}
	case r.Drivers[0].Armed && r.Drivers[1].Armed && r.Drivers[0].Source != "built-in default" &&
		r.Drivers[0].hotkey.Equal(*r.Drivers[1].hotkey) && r.Drivers[0].Spec != "rctrl+scroll":
		args = append(args, "--hotkey", r.Drivers[0].Spec)
	}
	dt := s.CrashControl.DumpType()
	if !dt.WritesMemoryDump() {
		dt = DefaultDumpType
	}
	if dt != DefaultDumpType {
		args = append(args, "--dump-type", string(dt))
	}
	if ar := s.CrashControl.AutoReboot; ar != nil && *ar == 0 {
		args = append(args, "--no-autoreboot")
	}
	ded := ""
	if d := s.CrashControl.DedicatedDumpFile; d != nil && windowsPath.MatchString(*d) {
		ded = *d
	}
	for _, p := range probs {
		if strings.HasPrefix(p.ID, "pagefile-") && p.ID != "pagefile-entry" && ded == "" {
			ded = `C:\DedicatedDump.sys`
		}
	}
	if ded != "" {
		args = append(args, "--dedicated-dump-file", shellQuote(ded))
	}
	return strings.Join(args, " ") + " > arm.reg; then in the guest: reg import arm.reg, and restart it"
}

// damageFix is the advice for a damaged hive.
const damageFix = "Windows repairs its hives at boot: boot the guest once, shut it down cleanly and run preflight again"

// damageOf describes the damage that made item unknown.
func damageOf(s *Settings, item string) string {
	for _, d := range s.Damage {
		if d.Item == item {
			return d.Error
		}
	}
	return "damaged"
}

func damagedItem(s *Settings, item string) bool {
	for _, d := range s.Damage {
		if d.Item == item {
			return true
		}
	}
	return false
}

// noHotkeyReason is eff.Reason, worded for this guest when the driver has no hotkey values
// at all: package hid's reason speaks of server SKUs, which is wrong for a client whose
// driver (hyperkbd) or Windows version has no built-in default.
func noHotkeyReason(s *Settings, d hid.Driver, eff hid.Effective) string {
	if eff.Source != "none" || !strings.Contains(eff.Reason, "server SKU") {
		return eff.Reason
	}
	const none = `neither CrashOnCtrlScroll nor crashdump\Dump1Keys/Dump2Key is set`
	switch {
	case !s.Client():
		return eff.Reason
	case d == hid.Hyperkbd:
		return none + " (whether hyperkbd has the built-in default hotkey of client Windows is not known)"
	default:
		return fmt.Sprintf("%s, and %s has no built-in default hotkey (only Windows 10 and later clients have one)", none, s.Version.Family())
	}
}

func versionAnomalies(v *WindowsVersion) []string {
	if v == nil {
		return nil
	}
	return v.Anomalies
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
