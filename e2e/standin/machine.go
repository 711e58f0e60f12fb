package standin

import (
	"errors"
	"fmt"
	"strings"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/registry"
)

// Errors callers may test for with errors.Is.
var (
	// ErrDumpDisabled: CrashControl\CrashDumpEnabled is 0 (or absent), so Windows writes no dump.
	ErrDumpDisabled = errors.New("crash dumps are disabled")
	// ErrNoDumpTarget: there is no paging file on the boot volume (nor a DedicatedDumpFile),
	// so Windows has nowhere to write a dump.
	ErrNoDumpTarget = errors.New("no paging file or dedicated dump file to hold a dump")
	// ErrDumpTooLarge: the dump does not fit the paging file (or dedicated dump file).
	ErrDumpTooLarge = errors.New("dump does not fit")
	// ErrNotRaw: the device is a qcow2 image; its file offsets are not the guest's sectors.
	ErrNotRaw = errors.New("not a raw disk")
)

// Machine is what Windows decides at boot from its disk: the Windows volume, the SYSTEM
// hive's crash settings, each keyboard driver's hotkey and where a crash dump would go.
// Load fills it; it is a snapshot and holds no open file.
type Machine struct {
	// Device is the block device or image file Load read.
	Device string `json:"device"`
	// Format is disk.FormatRaw or disk.FormatQcow2; only raw devices can take a dump.
	Format string `json:"format"`
	// Scheme is the partition table: disk.SchemeGPT, disk.SchemeMBR or disk.SchemeNone.
	Scheme string `json:"scheme"`
	// Volume is the Windows volume (partition index, start and size on the disk).
	Volume disk.Volume `json:"volume"`
	// ClusterSize is the volume's cluster size in bytes.
	ClusterSize int64 `json:"cluster_size"`
	// ControlSet is N of ControlSet00N, the CurrentControlSet of this boot.
	ControlSet int `json:"control_set"`
	// ProductType is Control\ProductOptions\ProductType ("WinNT", "ServerNT", "LanmanNT").
	ProductType string `json:"product_type"`
	// Client reports a client SKU (WinNT): the drivers' built-in default hotkey applies.
	Client bool `json:"client"`
	// Drivers are the keyboard drivers' crash-hotkey settings (i8042prt, kbdhid, hyperkbd).
	Drivers []DriverConfig `json:"drivers"`
	// Crash is Control\CrashControl with Windows' defaults applied.
	Crash CrashConfig `json:"crash"`
	// Pagefile is the boot volume's paging file; nil when there is none.
	Pagefile *DiskFile `json:"pagefile,omitempty"`
	// Dedicated is the DedicatedDumpFile, when CrashControl names one that exists.
	Dedicated *DiskFile `json:"dedicated,omitempty"`
	// Problems lists what stops a dump or a hotkey on this machine, for the log.
	Problems []string `json:"problems,omitempty"`
	// Imported counts the keys "reg import" wrote since the disk was built (RegStatePath),
	// applied over the hive at this boot.
	Imported int `json:"imported,omitempty"`
	// Settings are the raw values read from the hive.
	Settings *registry.Settings `json:"-"`
}

// DriverConfig is one keyboard driver's crash hotkey, as the driver derives it at start.
type DriverConfig struct {
	Driver hid.Driver `json:"driver"`
	// Present reports that Services\<driver> exists.
	Present bool `json:"present"`
	// Values are what the driver reads (Parameters\CrashOnCtrlScroll, crashdump values).
	Values hid.Registry `json:"-"`
	// Effective is the resulting configuration of the driver model.
	Effective hid.Effective `json:"-"`
	// Armed reports that some key sequence fires the bug check.
	Armed bool `json:"armed"`
	// Source is where the hotkey comes from ("CrashOnCtrlScroll", "crashdump",
	// "built-in default", "none").
	Source string `json:"source"`
	// Hotkey is the hotkey in human form ("RCtrl+ScrollLock") and as registry values
	// ("0x02/0x7d"); empty when none fires.
	Hotkey   string `json:"hotkey,omitempty"`
	Registry string `json:"registry,omitempty"`
	// Reason says why no hotkey fires.
	Reason string `json:"reason,omitempty"`
}

// CrashConfig is what the crash-dump stack reads from Control\CrashControl at boot.
type CrashConfig struct {
	// CrashDumpEnabled is the raw value (0 when absent); FilterPages likewise.
	CrashDumpEnabled uint32 `json:"crash_dump_enabled"`
	FilterPages      uint32 `json:"filter_pages"`
	// Type is the dump type these select (registry.DumpNone when no dump is written).
	Type registry.DumpType `json:"type"`
	// AutoReboot: reboot after writing the dump (default true). Overwrite: replace an
	// existing DumpFile at the next boot (default true).
	AutoReboot bool `json:"auto_reboot"`
	Overwrite  bool `json:"overwrite"`
	// DumpFile and MinidumpDir are the values as stored (defaults %SystemRoot%\MEMORY.DMP and
	// %SystemRoot%\Minidump); DumpPath and MinidumpPath the same inside the volume
	// (`Windows\MEMORY.DMP`).
	DumpFile     string `json:"dump_file"`
	DumpPath     string `json:"dump_path"`
	MinidumpDir  string `json:"minidump_dir"`
	MinidumpPath string `json:"minidump_path"`
	// DedicatedDumpFile is the REG_SZ value, when set.
	DedicatedDumpFile string `json:"dedicated_dump_file,omitempty"`
}

// DiskFile is a file of the Windows volume and where its bytes lie on the disk.
type DiskFile struct {
	// Path is the file's path inside the volume (`pagefile.sys`).
	Path string `json:"path"`
	// Size is its length in bytes.
	Size int64 `json:"size"`
	// Extents are its pieces on the whole disk, in file order, covering [0, Size).
	Extents []disk.Extent `json:"extents"`
}

// Target returns the file a crash dump is written into: the DedicatedDumpFile when
// CrashControl names one, otherwise the boot volume's paging file. The error wraps
// ErrNoDumpTarget when there is neither.
func (m *Machine) Target() (*DiskFile, error) {
	if m.Crash.DedicatedDumpFile != "" {
		if m.Dedicated == nil {
			return nil, fmt.Errorf("%w: DedicatedDumpFile %s does not exist on the Windows volume", ErrNoDumpTarget, m.Crash.DedicatedDumpFile)
		}
		return m.Dedicated, nil
	}
	if m.Pagefile == nil {
		return nil, fmt.Errorf("%w: Memory Management\\PagingFiles names no paging file on the boot volume that exists", ErrNoDumpTarget)
	}
	return m.Pagefile, nil
}

// Driver returns the configuration of driver d (a zero DriverConfig naming d when unknown).
func (m *Machine) Driver(d hid.Driver) DriverConfig {
	for _, c := range m.Drivers {
		if c.Driver == d {
			return c
		}
	}
	return DriverConfig{Driver: d, Source: "none", Reason: "unknown driver"}
}

// Lines describes the machine in a few "key=value" lines for a log or the guest's
// observation output.
func (m *Machine) Lines() []string {
	lines := []string{
		fmt.Sprintf("disk=%s format=%s scheme=%s volume=%d start=%d size=%d cluster=%d",
			m.Device, m.Format, m.Scheme, m.Volume.Index, m.Volume.Start, m.Volume.Size, m.ClusterSize),
		fmt.Sprintf("controlset=ControlSet%03d product=%s client=%t imported=%d", m.ControlSet, orDash(m.ProductType), m.Client, m.Imported),
	}
	for _, d := range m.Drivers {
		s := fmt.Sprintf("driver=%s present=%t armed=%t source=%q", d.Driver, d.Present, d.Armed, d.Source)
		if d.Armed {
			s += fmt.Sprintf(" hotkey=%s registry=%s", d.Hotkey, d.Registry)
		} else if d.Reason != "" {
			s += fmt.Sprintf(" reason=%q", d.Reason)
		}
		lines = append(lines, s)
	}
	c := m.Crash
	lines = append(lines, fmt.Sprintf("crash type=%s CrashDumpEnabled=%d FilterPages=%d autoreboot=%t overwrite=%t dumpfile=%s minidumpdir=%s",
		c.Type, c.CrashDumpEnabled, c.FilterPages, c.AutoReboot, c.Overwrite, c.DumpPath, c.MinidumpPath))
	for _, f := range []struct {
		name string
		f    *DiskFile
	}{{"pagefile", m.Pagefile}, {"dedicated", m.Dedicated}} {
		if f.f == nil {
			continue
		}
		s := fmt.Sprintf("%s=%s size=%d extents=%d", f.name, f.f.Path, f.f.Size, len(f.f.Extents))
		if len(f.f.Extents) > 0 {
			s += fmt.Sprintf(" disk_offset=%d", f.f.Extents[0].DiskOffset)
		}
		lines = append(lines, s)
	}
	for _, p := range m.Problems {
		lines = append(lines, "problem="+p)
	}
	return lines
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Load reads what Windows reads at boot from the disk at dev (a block device or an image
// file, opened read-only): the Windows volume, the SYSTEM hive's CurrentControlSet, product
// type, keyboard drivers, CrashControl and paging files, and the paging file's extents on
// the disk. Errors wrap disk's and registry's errors.
func Load(dev string) (*Machine, error) {
	return LoadVolume(dev, 0)
}

// LoadVolume is Load with the Windows volume chosen by partition index (0 finds it).
func LoadVolume(dev string, partition int) (*Machine, error) {
	img, err := disk.Open(dev, disk.Options{Partition: partition})
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, fmt.Errorf("standin: %s: %w", dev, err)
	}
	hf, err := fs.Open(registry.SystemHivePath)
	if errors.Is(err, disk.ErrNotFound) {
		return nil, fmt.Errorf("standin: %s, volume %d: %w: %w (build the disk with scripts/guest/standin-disk.sh)", dev, fs.Volume().Index, registry.ErrNoSystemHive, err)
	}
	if err != nil {
		return nil, fmt.Errorf("standin: %s, volume %d: %w", dev, fs.Volume().Index, err)
	}
	s, err := registry.ReadHive(hf, hf.Size())
	if err != nil {
		return nil, fmt.Errorf("standin: %s: %s: %w", dev, registry.SystemHivePath, err)
	}
	// What reg import wrote while the stand-in ran takes effect now, at boot.
	st, err := loadVolumeState(fs)
	if err != nil {
		return nil, fmt.Errorf("standin: %s: %w", dev, err)
	}
	applyState(s, st)
	m := &Machine{
		Device:      dev,
		Format:      img.Format(),
		Scheme:      img.Scheme(),
		Volume:      fs.Volume(),
		ClusterSize: fs.ClusterSize(),
		ControlSet:  s.ControlSet,
		ProductType: s.ProductType,
		Client:      s.Client(),
		Settings:    s,
		Imported:    len(st.Keys),
	}
	for _, d := range hid.Drivers {
		ds := s.Driver(d)
		eff := s.Effective(d)
		c := DriverConfig{Driver: d, Present: ds.Present, Values: ds.Registry(s.Client() && d != hid.Hyperkbd),
			Effective: eff, Armed: eff.Enabled(), Source: eff.Source, Reason: eff.Reason}
		if !ds.Present {
			c.Values = hid.Registry{}
		}
		if eff.Hotkey != nil && c.Armed {
			c.Hotkey, c.Registry = eff.Hotkey.String(), eff.Hotkey.RegistryString()
		}
		m.Drivers = append(m.Drivers, c)
		if !c.Armed {
			m.Problems = append(m.Problems, fmt.Sprintf("%s: no crash hotkey: %s", d, c.Reason))
		}
	}
	if err := m.loadCrash(fs, s); err != nil {
		return nil, fmt.Errorf("standin: %s: %w", dev, err)
	}
	return m, nil
}

// loadCrash fills Crash, Pagefile and Dedicated.
func (m *Machine) loadCrash(fs *disk.FS, s *registry.Settings) error {
	cc := s.CrashControl
	rep := registry.Check(s, registry.CheckOptions{}).Dump // Windows' defaults filled in
	c := CrashConfig{Type: cc.DumpType(), AutoReboot: rep.AutoReboot, Overwrite: rep.Overwrite,
		DumpFile: rep.DumpFile, MinidumpDir: rep.MinidumpDir, DedicatedDumpFile: rep.DedicatedDumpFile}
	if cc.CrashDumpEnabled != nil {
		c.CrashDumpEnabled = *cc.CrashDumpEnabled
	}
	if cc.FilterPages != nil {
		c.FilterPages = *cc.FilterPages
	}
	var err error
	if c.DumpPath, err = disk.CleanPath(c.DumpFile); err != nil || c.DumpPath == "" {
		m.Problems = append(m.Problems, fmt.Sprintf("DumpFile %q is not a usable path (%v): using Windows\\MEMORY.DMP", c.DumpFile, err))
		c.DumpPath = `Windows\MEMORY.DMP`
	}
	if c.MinidumpPath, err = disk.CleanPath(c.MinidumpDir); err != nil || c.MinidumpPath == "" {
		m.Problems = append(m.Problems, fmt.Sprintf("MinidumpDir %q is not a usable path (%v): using Windows\\Minidump", c.MinidumpDir, err))
		c.MinidumpPath = `Windows\Minidump`
	}
	m.Crash = c
	if c.Type == registry.DumpNone {
		m.Problems = append(m.Problems, "CrashDumpEnabled is 0 or absent: no dump is written")
	}

	// The paging file: the first PagingFiles entry on the boot volume.
	for _, spec := range s.PagingFiles {
		p, err := registry.ParsePagingFile(spec)
		if err != nil || !p.OnBootVolume() {
			continue
		}
		path, err := disk.CleanPath(p.Path[2:]) // drop "C:" or "?:"
		if err != nil || path == "" {
			continue
		}
		f, err := diskFile(fs, path)
		if err != nil {
			if errors.Is(err, disk.ErrNotFound) {
				m.Problems = append(m.Problems, fmt.Sprintf("paging file %s (%s) does not exist", path, spec))
				continue
			}
			return err
		}
		m.Pagefile = f
		break
	}
	if m.Pagefile == nil && c.DedicatedDumpFile == "" {
		m.Problems = append(m.Problems, "no paging file on the boot volume: a dump has nowhere to go")
	}
	if c.DedicatedDumpFile != "" {
		path, err := disk.CleanPath(c.DedicatedDumpFile)
		if err != nil || path == "" {
			m.Problems = append(m.Problems, fmt.Sprintf("DedicatedDumpFile %q is not a usable path", c.DedicatedDumpFile))
			return nil
		}
		f, err := diskFile(fs, path)
		switch {
		case errors.Is(err, disk.ErrNotFound):
			m.Problems = append(m.Problems, fmt.Sprintf("DedicatedDumpFile %s does not exist", path))
		case err != nil:
			return err
		default:
			m.Dedicated = f
		}
	}
	return nil
}

// diskFile opens path on fs and lists its extents; a file whose bytes do not lie plainly on
// the disk (resident, compressed or sparse) cannot take a dump.
func diskFile(fs *disk.FS, path string) (*DiskFile, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	ext, err := f.Extents()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, e := range ext {
		if e.Sparse {
			return nil, fmt.Errorf("%s: %w: a sparse range at file offset %d (a paging file is always fully allocated; recreate it without holes)", path, disk.ErrNoExtents, e.FileOffset)
		}
	}
	return &DiskFile{Path: f.Path(), Size: f.Size(), Extents: ext}, nil
}

// String names the file and its size.
func (f *DiskFile) String() string {
	return fmt.Sprintf("%s (%d bytes in %d extents)", f.Path, f.Size, len(f.Extents))
}

// winPath turns a path inside the volume into the '/'-separated form ntfs-3g's tools take.
func winPath(p string) string { return strings.ReplaceAll(p, `\`, "/") }
