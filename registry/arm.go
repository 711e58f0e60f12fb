package registry

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/crashkey/crashkey/hid"
)

// DefaultArmDrivers are the drivers arm configures unless told otherwise: PS/2 and USB, as
// Microsoft advises for machines that may have either keyboard.
var DefaultArmDrivers = []hid.Driver{hid.I8042prt, hid.Kbdhid}

// DefaultDumpType is the dump type arm sets unless told otherwise.
const DefaultDumpType = DumpKernel

// RebootReminder is the reminder every arm output carries: the keyboard drivers and the
// crash-dump code read these values only when they start.
const RebootReminder = "Restart Windows for these settings to take effect: the keyboard drivers and the crash-dump settings are read only at boot."

// ArmOptions choose what Arm configures. The zero value arms CrashOnCtrlScroll (Right Ctrl +
// Scroll Lock twice) on i8042prt and kbdhid with a kernel dump and automatic reboot.
type ArmOptions struct {
	// Hotkey is the hotkey to arm; nil (or the Right Ctrl + Scroll Lock hotkey) arms
	// Parameters\CrashOnCtrlScroll=1, any other hotkey crashdump\Dump1Keys and Dump2Key with
	// CrashOnCtrlScroll removed (it would override them).
	Hotkey *hid.Hotkey
	// Drivers are the keyboard drivers to arm; nil means DefaultArmDrivers.
	Drivers []hid.Driver
	// DumpType is the dump to write; "" means DefaultDumpType. DumpNone is refused.
	DumpType DumpType
	// NoAutoReboot keeps the guest at the blue screen after the dump is written
	// (AutoReboot=0), so the dump can be read from pagefile.sys before Windows moves it.
	NoAutoReboot bool
	// DedicatedDumpFile, when set, is the full Windows path of a file that holds the dump at
	// crash time instead of the boot volume's pagefile (REG_SZ DedicatedDumpFile).
	DedicatedDumpFile string
	// ControlSet writes ControlSet00N paths instead of CurrentControlSet (0), for merging
	// into an offline hive where CurrentControlSet does not exist.
	ControlSet int
}

// Plan is the set of registry changes that arms a guest. Render it with Reg, PowerShell or
// JSON.
type Plan struct {
	// Hotkey is the armed hotkey in human form ("RCtrl+ScrollLock").
	Hotkey string `json:"hotkey"`
	// Registry is the hotkey as crashdump values, "0x02/0x7d".
	Registry string `json:"registry"`
	// Layout, Labels, Description and Press read the hotkey on the keyboard layout it was
	// given on (hid.Hotkey.Layout; see layoutFields).
	Layout      string `json:"layout"`
	Labels      string `json:"labels"`
	Description string `json:"description"`
	Press       string `json:"press"`
	// CrashOnCtrlScroll is true when the hotkey is armed by Parameters\CrashOnCtrlScroll.
	CrashOnCtrlScroll bool         `json:"crashOnCtrlScroll"`
	Drivers           []hid.Driver `json:"drivers"`
	DumpType          DumpType     `json:"dumpType"`
	// Root is the key the paths start from: "HKEY_LOCAL_MACHINE\SYSTEM".
	Root string `json:"root"`
	// Keys are the keys to create and the values to set or delete, in order.
	Keys []PlanKey `json:"keys"`
	// Reboot is the reminder that a restart is needed.
	Reboot string `json:"reboot"`
}

// PlanKey is one key and the values to set or delete under it.
type PlanKey struct {
	// Path is relative to Plan.Root: `CurrentControlSet\Services\kbdhid\Parameters`.
	Path   string      `json:"path"`
	Values []PlanValue `json:"values"`
}

// PlanValue is one value to set (Delete false) or delete.
type PlanValue struct {
	Name string `json:"name"`
	// Type is "REG_DWORD", "REG_SZ" or "REG_EXPAND_SZ"; empty for a deletion.
	Type string `json:"type,omitempty"`
	// DWORD is the data of a REG_DWORD, String that of a string value.
	DWORD  *uint32 `json:"dword,omitempty"`
	String *string `json:"string,omitempty"`
	// Delete removes the value (it is fine if it does not exist).
	Delete bool `json:"delete,omitempty"`
}

func dwordValue(name string, v uint32) PlanValue {
	return PlanValue{Name: name, Type: "REG_DWORD", DWORD: &v}
}

func stringValue(name, typ, v string) PlanValue {
	return PlanValue{Name: name, Type: typ, String: &v}
}

// windowsPath is a full path with a drive letter and no characters Windows forbids.
var windowsPath = regexp.MustCompile(`^[A-Za-z]:\\[^"<>|?*\x00-\x1f]+$`)

// Arm builds the plan for opts. It fails on options Windows could not use: an unknown driver,
// dump type none, a hotkey that can never fire, a DedicatedDumpFile that is not a full path,
// or a control set outside 1..999.
func Arm(opts ArmOptions) (*Plan, error) {
	h := hid.CrashOnCtrlScroll()
	if opts.Hotkey != nil {
		h = *opts.Hotkey
	}
	coc := h.CrashOnCtrlScroll || h.Equal(hid.CrashOnCtrlScroll())
	if !coc {
		d1, d2 := h.Registry()
		if _, err := hid.FromRegistry(d1, d2); err != nil {
			return nil, fmt.Errorf("arm: %w", err)
		}
	}
	drivers := opts.Drivers
	if len(drivers) == 0 {
		drivers = DefaultArmDrivers
	}
	seen := map[hid.Driver]bool{}
	var uniq []hid.Driver
	for _, d := range drivers {
		if _, err := hid.ParseDriver(string(d)); err != nil {
			return nil, fmt.Errorf("arm: %w", err)
		}
		if !seen[d] {
			seen[d] = true
			uniq = append(uniq, d)
		}
	}
	dt := opts.DumpType
	if dt == "" {
		dt = DefaultDumpType
	}
	if _, err := ParseDumpType(string(dt)); err != nil {
		return nil, fmt.Errorf("arm: %w", err)
	}
	if opts.DedicatedDumpFile != "" && !windowsPath.MatchString(opts.DedicatedDumpFile) {
		return nil, fmt.Errorf("arm: dedicated dump file %q: give a full Windows path with a drive letter, e.g. C:\\DedicatedDump.sys", opts.DedicatedDumpFile)
	}
	cs := "CurrentControlSet"
	if opts.ControlSet != 0 {
		if opts.ControlSet < 1 || opts.ControlSet > 999 {
			return nil, fmt.Errorf("arm: control set %d: use 1..999 (the N of ControlSet00N; Select\\Current names the one in use)", opts.ControlSet)
		}
		cs = fmt.Sprintf("ControlSet%03d", opts.ControlSet)
	}

	p := &Plan{
		Hotkey: h.String(), Registry: h.RegistryString(), CrashOnCtrlScroll: coc,
		Drivers: uniq, DumpType: dt, Root: `HKEY_LOCAL_MACHINE\SYSTEM`, Reboot: RebootReminder,
	}
	if coc {
		p.Hotkey, p.Registry = hid.CrashOnCtrlScroll().String(), hid.CrashOnCtrlScroll().RegistryString()
	}
	p.layoutFields(h)
	for _, d := range uniq {
		svc := cs + `\Services\` + string(d)
		if coc {
			p.Keys = append(p.Keys, PlanKey{Path: svc + `\Parameters`, Values: []PlanValue{dwordValue("CrashOnCtrlScroll", 1)}})
			continue
		}
		d1, d2 := h.Registry()
		p.Keys = append(p.Keys,
			PlanKey{Path: svc + `\Parameters`, Values: []PlanValue{{Name: "CrashOnCtrlScroll", Delete: true}}},
			PlanKey{Path: svc + `\crashdump`, Values: []PlanValue{dwordValue("Dump1Keys", d1), dwordValue("Dump2Key", d2)}})
	}
	cc := PlanKey{Path: cs + `\Control\CrashControl`}
	cc.Values = append(cc.Values, dwordValue("CrashDumpEnabled", dt.CrashDumpEnabled()))
	if dt == DumpActive {
		cc.Values = append(cc.Values, dwordValue("FilterPages", 1))
	} else {
		cc.Values = append(cc.Values, PlanValue{Name: "FilterPages", Delete: true})
	}
	autoReboot := uint32(1)
	if opts.NoAutoReboot {
		autoReboot = 0
	}
	cc.Values = append(cc.Values,
		dwordValue("AutoReboot", autoReboot),
		dwordValue("Overwrite", 1),
		dwordValue("AlwaysKeepMemoryDump", 1),
		stringValue("DumpFile", "REG_EXPAND_SZ", `%SystemRoot%\MEMORY.DMP`),
		stringValue("MinidumpDir", "REG_EXPAND_SZ", `%SystemRoot%\Minidump`))
	if opts.DedicatedDumpFile != "" {
		cc.Values = append(cc.Values, stringValue("DedicatedDumpFile", "REG_SZ", opts.DedicatedDumpFile))
	}
	p.Keys = append(p.Keys, cc)
	return p, nil
}

// Reg renders the plan as a .reg file (CRLF, "Windows Registry Editor Version 5.00"), with
// every parent key listed as an empty section first so that it also merges into a hive that
// lacks them (hivexregedit --merge refuses to create a key whose parent is missing).
func (p *Plan) Reg() []byte {
	var b bytes.Buffer
	line := func(s string) { b.WriteString(s + "\r\n") }
	line("Windows Registry Editor Version 5.00")
	line("")
	for _, c := range p.comments() {
		line("; " + c)
	}
	line("")
	done := map[string]bool{}
	for _, k := range p.Keys {
		parts := strings.Split(k.Path, `\`)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], `\`)
			if !done[strings.ToLower(parent)] {
				done[strings.ToLower(parent)] = true
				line("[" + p.Root + `\` + parent + "]")
				line("")
			}
		}
		done[strings.ToLower(k.Path)] = true
		line("[" + p.Root + `\` + k.Path + "]")
		for _, v := range k.Values {
			line(regValue(v))
		}
		line("")
	}
	return b.Bytes()
}

func regValue(v PlanValue) string {
	name := `"` + regEscape(v.Name) + `"=`
	switch {
	case v.Delete:
		return name + "-"
	case v.Type == "REG_DWORD":
		return name + fmt.Sprintf("dword:%08x", *v.DWORD)
	case v.Type == "REG_EXPAND_SZ":
		return name + "hex(2):" + hexUTF16(*v.String)
	default:
		return name + `"` + regEscape(*v.String) + `"`
	}
}

func regEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// hexUTF16 is s as UTF-16LE with a terminating NUL, written as .reg hex bytes.
func hexUTF16(s string) string {
	u := append(utf16.Encode([]rune(s)), 0)
	parts := make([]string, 0, 2*len(u))
	var b [2]byte
	for _, c := range u {
		binary.LittleEndian.PutUint16(b[:], c)
		parts = append(parts, fmt.Sprintf("%02x", b[0]), fmt.Sprintf("%02x", b[1]))
	}
	return strings.Join(parts, ",")
}

func (p *Plan) comments() []string {
	drivers := make([]string, len(p.Drivers))
	for i, d := range p.Drivers {
		drivers[i] = string(d)
	}
	how := fmt.Sprintf("crashdump\\Dump1Keys/Dump2Key %s, CrashOnCtrlScroll removed", p.Registry)
	if p.CrashOnCtrlScroll {
		how = "Parameters\\CrashOnCtrlScroll=1"
	}
	return append([]string{
		fmt.Sprintf("crashkey arm: hotkey %s (hold the modifiers, press the last key twice) via %s", p.Hotkey, how)}, append(p.layoutComments(),
		fmt.Sprintf("keyboard drivers: %s; dump type: %s", strings.Join(drivers, ", "), p.DumpType),
		"Import in the guest with: reg import FILE.reg (as Administrator)",
		p.Reboot)...)
}

// PowerShell renders the plan as a PowerShell script to run as Administrator inside the
// guest. Keys that are missing are created (existing keys are left as they are: New-Item
// -Force on an existing registry key would replace it), values are set with their types,
// deletions ignore values that do not exist, and the script ends with the reboot reminder.
func (p *Plan) PowerShell() []byte {
	var b bytes.Buffer
	line := func(s string) { b.WriteString(s + "\n") }
	for _, c := range p.comments() {
		if strings.HasPrefix(c, "Import in the guest") {
			c = "Run in the guest as Administrator: powershell -ExecutionPolicy Bypass -File FILE.ps1"
		}
		line("# " + c)
	}
	line("#Requires -RunAsAdministrator")
	line("$ErrorActionPreference = 'Stop'")
	line("")
	root := "HKLM:\\" + strings.TrimPrefix(p.Root, `HKEY_LOCAL_MACHINE\`)
	for _, k := range p.Keys {
		path := psQuote(root + `\` + k.Path)
		line("$key = " + path)
		line("if (-not (Test-Path -Path $key)) { New-Item -Path $key -Force | Out-Null }")
		for _, v := range k.Values {
			switch {
			case v.Delete:
				line(fmt.Sprintf("Remove-ItemProperty -Path $key -Name %s -ErrorAction SilentlyContinue", psQuote(v.Name)))
			case v.Type == "REG_DWORD":
				line(fmt.Sprintf("Set-ItemProperty -Path $key -Name %s -Type DWord -Value %d", psQuote(v.Name), *v.DWORD))
			case v.Type == "REG_EXPAND_SZ":
				line(fmt.Sprintf("Set-ItemProperty -Path $key -Name %s -Type ExpandString -Value %s", psQuote(v.Name), psQuote(*v.String)))
			default:
				line(fmt.Sprintf("Set-ItemProperty -Path $key -Name %s -Type String -Value %s", psQuote(v.Name), psQuote(*v.String)))
			}
		}
		line("")
	}
	line("Write-Host " + psQuote(p.Reboot))
	line("Write-Host 'Restart now with: Restart-Computer'")
	return b.Bytes()
}

func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// JSON renders the plan as indented JSON.
func (p *Plan) JSON() []byte {
	b, _ := json.MarshalIndent(p, "", "  ")
	return append(b, '\n')
}
