package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/crashkey/crashkey/hid"
)

// Settings is what a SYSTEM hive says about crash dumps: the keyboard drivers' hotkey values,
// CrashControl, the paging files, and the facts needed to judge them.
type Settings struct {
	// Hive describes the hive file itself (dirty, checksum, size).
	Hive HiveInfo `json:"hive"`
	// ControlSet is N of the ControlSet00N that CurrentControlSet stands for.
	ControlSet int `json:"controlSet"`
	// ControlSetFrom says how ControlSet was chosen: `Select\Current`, `Select\Default` or
	// "only control set".
	ControlSetFrom string `json:"controlSetFrom"`
	// ControlSets lists the ControlSetNNN keys in the hive.
	ControlSets []string `json:"controlSets"`
	// ProductType is Control\ProductOptions\ProductType: "WinNT" (client), "ServerNT" or
	// "LanmanNT" (server, domain controller); "" when absent.
	ProductType string `json:"productType"`
	// Drivers holds the values of i8042prt, kbdhid and hyperkbd, in that order.
	Drivers []DriverSettings `json:"drivers"`
	// CrashControl holds Control\CrashControl.
	CrashControl CrashControl `json:"crashControl"`
	// PagingFiles and ExistingPageFiles are the REG_MULTI_SZ values of
	// Control\Session Manager\Memory Management.
	PagingFiles       []string `json:"pagingFiles"`
	ExistingPageFiles []string `json:"existingPageFiles,omitempty"`
	// ShutdownTime is Control\Windows\ShutdownTime: when Windows last shut down cleanly.
	ShutdownTime *time.Time `json:"shutdownTime,omitempty"`
	// FwCfg is virtio-win's FwCfg driver service (fwcfg.go).
	FwCfg ServiceInfo `json:"fwcfg"`
	// Anomalies lists values that exist but that Windows cannot use as they are (wrong type or
	// size). Such values are left out of the fields above.
	Anomalies []string `json:"anomalies,omitempty"`
	// PagingDamaged reports that Memory Management could not be read (see Damage).
	PagingDamaged bool `json:"pagingDamaged,omitempty"`
	// Damage lists the damaged parts of the hive met while reading: those with an Item made
	// that item unknown; the others were skipped on the way to what was needed.
	Damage []Damage `json:"damage,omitempty"`
	// Version is the Windows version read from the SOFTWARE hive beside this one; nil when
	// unknown.
	Version *WindowsVersion `json:"version,omitempty"`
}

// Client reports a client SKU: ProductType WinNT, or, when ProductType is missing, a SOFTWARE
// hive that says InstallationType Client.
func (s *Settings) Client() bool {
	if s.ProductType == "" && s.Version != nil && s.Version.InstallationType != "" {
		return !s.Version.Server()
	}
	return strings.EqualFold(s.ProductType, "WinNT")
}

// BuiltinDefault reports whether current i8042prt and kbdhid can arm their built-in hotkey
// (LShift+RShift+grave, 0x11/1) when no crashdump values are set: only on client Windows 10
// and later. When the version is unknown (no SOFTWARE hive) every client counts, as before
// crashkey read the version.
func (s *Settings) BuiltinDefault() bool {
	if !s.Client() {
		return false
	}
	b := s.Version.Build()
	return b == 0 || b >= BuildWindows10
}

// Driver returns the settings of driver d.
func (s *Settings) Driver(d hid.Driver) DriverSettings {
	for _, ds := range s.Drivers {
		if ds.Driver == d {
			return ds
		}
	}
	return DriverSettings{Driver: d}
}

// Effective is the hotkey configuration driver d derives from these settings, with the
// drivers' precedence applied by package hid: the built-in default hotkey of client Windows
// 10 and later counts for i8042prt and kbdhid (hyperkbd's is unknown; see BuiltinDefault),
// and a driver whose service is not installed has none.
func (s *Settings) Effective(d hid.Driver) hid.Effective {
	ds := s.Driver(d)
	if !ds.Present {
		return hid.Effective{Source: "none", Reason: fmt.Sprintf(`Services\%s does not exist: the driver is not installed`, d)}
	}
	return ds.Registry(s.BuiltinDefault() && d != hid.Hyperkbd).Effective()
}

// DriverSettings are one keyboard driver's service and crash-hotkey values.
type DriverSettings struct {
	Driver hid.Driver `json:"driver"`
	// Damaged reports that the driver's keys could not be read completely (see
	// Settings.Damage): the values below are what could be read.
	Damaged bool `json:"damaged,omitempty"`
	// Present reports that Services\<driver> exists.
	Present bool `json:"present"`
	// Start is the service's start type (0 boot, 1 system, 2 automatic, 3 manual, 4 disabled).
	Start *uint32 `json:"start,omitempty"`
	// CrashOnCtrlScroll is Parameters\CrashOnCtrlScroll.
	CrashOnCtrlScroll *uint32 `json:"crashOnCtrlScroll,omitempty"`
	// Dump1Keys and Dump2Key are crashdump\Dump1Keys and crashdump\Dump2Key.
	Dump1Keys *uint32 `json:"dump1Keys,omitempty"`
	Dump2Key  *uint32 `json:"dump2Key,omitempty"`
	// ParametersWritten and CrashdumpWritten are the keys' last write times.
	ParametersWritten *time.Time `json:"parametersWritten,omitempty"`
	CrashdumpWritten  *time.Time `json:"crashdumpWritten,omitempty"`
}

// Registry is what the driver reads, for hid's driver model. client selects the built-in
// default hotkey of client Windows.
func (d DriverSettings) Registry(client bool) hid.Registry {
	r := hid.Registry{Dump1Keys: d.Dump1Keys, Dump2Key: d.Dump2Key, Client: client}
	if d.CrashOnCtrlScroll != nil {
		r.CrashOnCtrlScroll = *d.CrashOnCtrlScroll
	}
	return r
}

// StartName names a service start type.
func StartName(start uint32) string {
	switch start {
	case 0:
		return "boot"
	case 1:
		return "system"
	case 2:
		return "automatic"
	case 3:
		return "manual"
	case 4:
		return "disabled"
	}
	return "unknown (" + strconv.FormatUint(uint64(start), 10) + ")"
}

// CrashControl holds the values of Control\CrashControl that decide whether and where a dump
// is written. Absent values are nil.
type CrashControl struct {
	// Present reports that the CrashControl key exists.
	Present bool `json:"present"`
	// Damaged reports that CrashControl could not be read completely (see Settings.Damage).
	Damaged              bool    `json:"damaged,omitempty"`
	CrashDumpEnabled     *uint32 `json:"crashDumpEnabled,omitempty"`
	FilterPages          *uint32 `json:"filterPages,omitempty"`
	DumpFile             *string `json:"dumpFile,omitempty"`
	MinidumpDir          *string `json:"minidumpDir,omitempty"`
	AutoReboot           *uint32 `json:"autoReboot,omitempty"`
	Overwrite            *uint32 `json:"overwrite,omitempty"`
	DedicatedDumpFile    *string `json:"dedicatedDumpFile,omitempty"`
	DumpFileSize         *uint32 `json:"dumpFileSize,omitempty"`
	AlwaysKeepMemoryDump *uint32 `json:"alwaysKeepMemoryDump,omitempty"`
	NMICrashDump         *uint32 `json:"nmiCrashDump,omitempty"`
	// Written is the key's last write time.
	Written *time.Time `json:"written,omitempty"`
}

// DumpType is the dump type CrashDumpEnabled and FilterPages select.
func (c CrashControl) DumpType() DumpType {
	if c.CrashDumpEnabled == nil {
		return DumpNone
	}
	filter := c.FilterPages != nil && *c.FilterPages != 0
	return dumpTypeOf(*c.CrashDumpEnabled, filter)
}

// ReadHiveFile reads the crash settings from the SYSTEM hive file at path.
func ReadHiveFile(path string) (*Settings, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("hive: %w", err)
	}
	defer f.Close()
	s, err := ReadHive(f, size)
	if err != nil {
		return nil, fmt.Errorf("hive %s: %w", path, err)
	}
	return s, nil
}

// openFile opens the file at path and returns its size.
func openFile(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// ReadHive reads the crash settings from the SYSTEM hive in the first size bytes of r.
// CurrentControlSet, which does not exist in the file, is resolved through Select\Current.
// When the hive is dirty, the transaction logs (SYSTEM.LOG1, SYSTEM.LOG2) are replayed
// first, in memory, as Windows does at boot (Settings.Hive.Replay says what was applied; a
// damaged log is skipped with a warning in Settings.Hive.LogWarnings). A damaged part of the
// hive makes only the items under it unknown (Settings.Damage); the error cases are a hive
// whose root, Select or control set cannot be read.
// Memory stays bounded whatever the hive claims; a damaged hive gives an error wrapping
// ErrCorruptHive (never a panic), a hive without Select or control sets ErrNotSystemHive,
// and a failing r its own error.
func ReadHive(r io.ReaderAt, size int64, logs ...LogSource) (*Settings, error) {
	return withHive(r, size, logs, func(h *hive) (*Settings, error) {
		sc := &scan{h: h, s: &Settings{Hive: h.info}}
		if err := sc.run(); err != nil {
			return nil, err
		}
		sc.s.Damage = append(sc.s.Damage, h.otherDamage(sc.s.Damage)...)
		return sc.s, nil
	})
}

// withHive opens the hive in the first size bytes of r (replaying logs when it is dirty) and
// runs read on it. A parser panic becomes an error wrapping ErrCorruptHive, and a failure of
// r (which the page cache hides from the parser) is returned as such.
func withHive[T any](r io.ReaderAt, size int64, logs []LogSource, read func(*hive) (*T, error)) (v *T, err error) {
	var h *hive
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("%w: the parser failed: %v", ErrCorruptHive, p)
		}
		if h != nil && h.c.err != nil {
			v, err = nil, fmt.Errorf("read hive: %w", h.c.err)
		}
	}()
	h, err = openReplayed(r, size, logs)
	if err != nil {
		return nil, err
	}
	return read(h)
}

// scan collects Settings from an open hive.
type scan struct {
	h *hive
	s *Settings
}

// item records err from reading one item: damage (ErrCorruptHive) makes the item unknown
// and the scan goes on; any other error (the reader failed) ends it.
func (sc *scan) item(name, keyPath string, err error) error {
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrCorruptHive) || errors.Is(err, errBudget) {
		return err
	}
	sc.s.Damage = append(sc.s.Damage, Damage{Key: keyPath, Item: name, Error: strings.TrimPrefix(err.Error(), ErrCorruptHive.Error()+": ")})
	return nil
}

func (sc *scan) run() error {
	root, err := sc.h.root()
	if err != nil {
		return err
	}
	names, err := root.Subkeys()
	if err != nil {
		return err
	}
	for _, n := range names {
		if len(n) == 13 && strings.EqualFold(n[:10], "ControlSet") {
			if _, err := strconv.Atoi(n[10:]); err == nil {
				sc.s.ControlSets = append(sc.s.ControlSets, n)
			}
		}
	}
	if err := sc.pickControlSet(root); err != nil {
		return err
	}
	csName := fmt.Sprintf("ControlSet%03d", sc.s.ControlSet)
	cs, err := root.Subkey(csName)
	if err != nil {
		return err
	}
	if cs == nil {
		return fmt.Errorf("%w: %s is %d but ControlSet%03d does not exist (the hive has %s)", ErrNotSystemHive,
			sc.s.ControlSetFrom, sc.s.ControlSet, sc.s.ControlSet, listOr(sc.s.ControlSets, "no control set"))
	}
	err = func() error {
		k, err := cs.Open(`Control\ProductOptions`)
		if err != nil || k == nil {
			return err
		}
		v, err := sc.str(k, "ProductType")
		if v != nil {
			sc.s.ProductType = *v
		}
		return err
	}()
	if err := sc.item("ProductType", csName+`\Control\ProductOptions`, err); err != nil {
		return err
	}
	err = func() error {
		k, err := cs.Open(`Control\Windows`)
		if err != nil || k == nil {
			return err
		}
		v, err := k.Value("ShutdownTime")
		if err != nil {
			return err
		}
		if v != nil && len(v.Data) == 8 {
			if t := filetime(binary.LittleEndian.Uint64(v.Data)); !t.IsZero() {
				sc.s.ShutdownTime = &t
			}
		}
		return nil
	}()
	if err := sc.item("ShutdownTime", csName+`\Control\Windows`, err); err != nil {
		return err
	}
	for _, d := range hid.Drivers {
		ds, err := sc.driver(cs, d)
		ds.Damaged = err != nil
		if err := sc.item(string(d), csName+`\Services\`+string(d), err); err != nil {
			return err
		}
		sc.s.Drivers = append(sc.s.Drivers, ds)
	}
	if err := sc.item("FwCfg", csName+`\Services\`+FwCfgService, sc.fwcfg(cs)); err != nil {
		return err
	}
	err = sc.crashControl(cs)
	sc.s.CrashControl.Damaged = err != nil
	if err := sc.item("CrashControl", csName+`\Control\CrashControl`, err); err != nil {
		return err
	}
	err = func() error {
		k, err := cs.Open(`Control\Session Manager\Memory Management`)
		if err != nil || k == nil {
			return err
		}
		if sc.s.PagingFiles, err = sc.multi(k, "PagingFiles"); err != nil {
			return err
		}
		sc.s.ExistingPageFiles, err = sc.multi(k, "ExistingPageFiles")
		return err
	}()
	sc.s.PagingDamaged = err != nil
	if err := sc.item("PagingFiles", csName+`\Control\Session Manager\Memory Management`, err); err != nil {
		return err
	}
	return nil
}

func (sc *scan) pickControlSet(root *key) error {
	sel, err := root.Subkey("Select")
	if err != nil {
		return err
	}
	if sel != nil {
		for _, name := range []string{"Current", "Default"} {
			v, err := sc.dword(sel, name)
			if err != nil {
				return err
			}
			if v != nil && *v >= 1 && *v <= 999 {
				sc.s.ControlSet, sc.s.ControlSetFrom = int(*v), `Select\`+name
				return nil
			}
			if v != nil {
				sc.anomaly(sel, name, fmt.Sprintf("is %d, which names no control set", *v))
			}
		}
	}
	if len(sc.s.ControlSets) == 1 {
		n, _ := strconv.Atoi(sc.s.ControlSets[0][10:])
		sc.s.ControlSet, sc.s.ControlSetFrom = n, "only control set"
		return nil
	}
	if sel == nil {
		return fmt.Errorf("%w: no Select key at the root (the hive has %s); pass the guest's Windows\\System32\\config\\SYSTEM",
			ErrNotSystemHive, listOr(sc.s.ControlSets, "no ControlSetNNN keys either"))
	}
	return fmt.Errorf("%w: Select has no usable Current or Default value and the hive has %s", ErrNotSystemHive,
		listOr(sc.s.ControlSets, "no control set"))
}

// firstErr keeps the first error of a sequence of reads that go on past errors.
type firstErr struct{ err error }

func (f *firstErr) keep(err error) bool {
	if err != nil && f.err == nil {
		f.err = err
	}
	return err == nil
}

func (sc *scan) driver(cs *key, d hid.Driver) (DriverSettings, error) {
	ds := DriverSettings{Driver: d}
	svc, err := cs.Open(`Services\` + string(d))
	if err != nil || svc == nil {
		return ds, err
	}
	ds.Present = true
	var fe firstErr
	ds.Start, err = sc.dword(svc, "Start")
	fe.keep(err)
	if p, err := svc.Subkey("Parameters"); fe.keep(err) && p != nil {
		ds.ParametersWritten = timePtr(p.LastWrite())
		ds.CrashOnCtrlScroll, err = sc.dword(p, "CrashOnCtrlScroll")
		fe.keep(err)
	}
	if c, err := svc.Subkey("crashdump"); fe.keep(err) && c != nil {
		ds.CrashdumpWritten = timePtr(c.LastWrite())
		ds.Dump1Keys, err = sc.dword(c, "Dump1Keys")
		fe.keep(err)
		ds.Dump2Key, err = sc.dword(c, "Dump2Key")
		fe.keep(err)
	}
	return ds, fe.err
}

func (sc *scan) crashControl(cs *key) error {
	k, err := cs.Open(`Control\CrashControl`)
	if err != nil || k == nil {
		return err
	}
	c := &sc.s.CrashControl
	c.Present = true
	c.Written = timePtr(k.LastWrite())
	var fe firstErr
	for _, d := range []struct {
		name string
		dst  **uint32
	}{
		{"CrashDumpEnabled", &c.CrashDumpEnabled},
		{"FilterPages", &c.FilterPages},
		{"AutoReboot", &c.AutoReboot},
		{"Overwrite", &c.Overwrite},
		{"DumpFileSize", &c.DumpFileSize},
		{"AlwaysKeepMemoryDump", &c.AlwaysKeepMemoryDump},
		{"NMICrashDump", &c.NMICrashDump},
	} {
		*d.dst, err = sc.dword(k, d.name)
		fe.keep(err)
	}
	for _, d := range []struct {
		name string
		dst  **string
	}{
		{"DumpFile", &c.DumpFile},
		{"MinidumpDir", &c.MinidumpDir},
		{"DedicatedDumpFile", &c.DedicatedDumpFile},
	} {
		*d.dst, err = sc.str(k, d.name)
		fe.keep(err)
	}
	return fe.err
}

func (sc *scan) anomaly(k *key, name, what string) {
	sc.s.Anomalies = append(sc.s.Anomalies, fmt.Sprintf(`%s\%s %s`, k.Path(), name, what))
}

// dword reads a REG_DWORD value; a value of another type is an anomaly and reads as absent.
func (sc *scan) dword(k *key, name string) (*uint32, error) {
	v, err := k.Value(name)
	if err != nil || v == nil {
		return nil, err
	}
	if v.Type != regDWORD || len(v.Data) != 4 {
		sc.anomaly(k, name, fmt.Sprintf("has type %s and %d bytes; Windows reads it as a REG_DWORD, so it is ignored", typeName(v.Type), len(v.Data)))
		return nil, nil
	}
	x := binary.LittleEndian.Uint32(v.Data)
	return &x, nil
}

// str reads a REG_SZ or REG_EXPAND_SZ value (up to its first NUL).
func (sc *scan) str(k *key, name string) (*string, error) {
	v, err := k.Value(name)
	if err != nil || v == nil {
		return nil, err
	}
	if v.Type != regSZ && v.Type != regExpandSZ {
		sc.anomaly(k, name, fmt.Sprintf("has type %s; Windows expects a string (REG_SZ or REG_EXPAND_SZ), so it is ignored", typeName(v.Type)))
		return nil, nil
	}
	s := utf16String(v.Data)
	return &s, nil
}

// multi reads a REG_MULTI_SZ value.
func (sc *scan) multi(k *key, name string) ([]string, error) {
	v, err := k.Value(name)
	if err != nil || v == nil {
		return nil, err
	}
	if v.Type != regMultiSZ {
		sc.anomaly(k, name, fmt.Sprintf("has type %s; Windows expects REG_MULTI_SZ, so it is ignored", typeName(v.Type)))
		return nil, nil
	}
	return multiString(v.Data), nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func listOr(names []string, none string) string {
	if len(names) == 0 {
		return none
	}
	return strings.Join(names, ", ")
}
