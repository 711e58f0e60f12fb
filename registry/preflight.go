package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes/layout"
)

// SystemHivePath is where the SYSTEM hive lives inside the Windows volume.
const SystemHivePath = `Windows\System32\config\SYSTEM`

// PreflightOptions choose what Preflight reads and checks.
type PreflightOptions struct {
	// Hotkey is the hotkey crashkey will send; nil checks only what the guest has armed.
	Hotkey *hid.Hotkey
	// ForceShare reads an image that a running QEMU holds (see disk.Options).
	ForceShare bool
	// Partition selects the Windows volume by index; 0 finds it.
	Partition int
	// AllowBacking widens which backing files are followed (see disk.BackingPolicy).
	AllowBacking disk.BackingPolicy
	// MemoryMiB is the guest's memory size in MiB, to judge whether the dump fits in a
	// fixed-size paging file; 0 when unknown.
	MemoryMiB uint64
	// Layout is the guest's keyboard layout, to say what a person must press (CheckOptions).
	Layout *layout.Layout
}

// Preflight reads the SYSTEM hive of the Windows guest whose disk image is at path (raw or
// qcow2; or path may be a SYSTEM hive file itself) without writing to it, and checks the
// crash-dump configuration with Check. Errors wrap disk's errors (disk.ErrUnsupportedFormat,
// disk.ErrInUse, disk.ErrNoVolume, …), ErrNotHive, ErrCorruptHive or ErrNotSystemHive.
func Preflight(ctx context.Context, path string, opts PreflightOptions) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if isHiveFile(path) {
		return preflightHiveFile(path, opts)
	}
	img, err := disk.Open(path, disk.Options{ForceShare: opts.ForceShare, Partition: opts.Partition, AllowBacking: opts.AllowBacking, Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	defer img.Close()
	return PreflightImage(ctx, img, opts)
}

// preflightHiveFile checks a SYSTEM hive file, with the logs (SYSTEM.LOG1, SYSTEM.LOG2) and
// the SOFTWARE hive found beside it.
func preflightHiveFile(path string, opts PreflightOptions) (*Report, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, fmt.Errorf("preflight: hive: %w", err)
	}
	defer f.Close()
	logs, srcs, closeLogs := hiveFileLogs(path)
	defer closeLogs()
	s, err := ReadHive(f, size, srcs...)
	if err != nil {
		return nil, fmt.Errorf("preflight: hive %s: %w", path, err)
	}
	why := ""
	soft := filepath.Join(filepath.Dir(path), "SOFTWARE")
	if _, err := os.Stat(soft); err != nil {
		why = "no SOFTWARE hive beside " + path
	} else if s.Version, err = readVersionFile(soft); err != nil {
		why = fmt.Sprintf("the SOFTWARE hive %s cannot be read: %v", soft, err)
	}
	r := Check(s, CheckOptions{Hotkey: opts.Hotkey, MemoryMiB: opts.MemoryMiB, Logs: logs, VersionUnknown: why, Layout: opts.Layout})
	r.Hive = path
	return r, nil
}

// readVersionFile reads the Windows version from the SOFTWARE hive file at path, replaying
// the logs beside it when it is dirty.
func readVersionFile(path string) (*WindowsVersion, error) {
	f, size, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, srcs, closeLogs := hiveFileLogs(path)
	defer closeLogs()
	return ReadVersion(f, size, srcs...)
}

// PreflightImage is Preflight for an image that is already open (opts.ForceShare and
// opts.Partition were given to disk.Open by the caller).
func PreflightImage(ctx context.Context, img *disk.Image, opts PreflightOptions) (*Report, error) {
	path := img.Path()
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, fmt.Errorf("preflight %s: %w", path, err)
	}
	f, err := fs.Open(SystemHivePath)
	if err != nil {
		if errors.Is(err, disk.ErrNotFound) {
			return nil, fmt.Errorf("preflight %s, volume %d: %w: %w (is this the guest's Windows system disk? choose the volume with --partition)",
				path, fs.Volume().Index, ErrNoSystemHive, err)
		}
		return nil, fmt.Errorf("preflight %s, volume %d: %w", path, fs.Volume().Index, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logs, srcs := imageLogs(fs, SystemHivePath)
	s, err := ReadHive(f, f.Size(), srcs...)
	if err != nil {
		hint := ""
		if errors.Is(err, ErrCorruptHive) {
			hint = " (Windows repairs its hives at boot: boot the guest once, shut it down cleanly and try again)"
			if opts.ForceShare {
				hint = " (the image was read while a QEMU held it: pause or stop the guest and try again)"
			}
		}
		return nil, fmt.Errorf("preflight %s, volume %d, %s: %w%s", path, fs.Volume().Index, SystemHivePath, err, hint)
	}
	why := ""
	if sf, err := fs.Open(SoftwareHivePath); err != nil {
		why = "the volume has no " + SoftwareHivePath
		if !errors.Is(err, disk.ErrNotFound) {
			why = fmt.Sprintf("%s cannot be opened: %v", SoftwareHivePath, err)
		}
	} else {
		_, ssrcs := imageLogs(fs, SoftwareHivePath)
		if s.Version, err = ReadVersion(sf, sf.Size(), ssrcs...); err != nil {
			why = fmt.Sprintf("%s cannot be read: %v", SoftwareHivePath, err)
		}
	}
	r := Check(s, CheckOptions{Hotkey: opts.Hotkey, MemoryMiB: opts.MemoryMiB, Logs: logs, VersionUnknown: why, Layout: opts.Layout})
	r.Image, r.Volume, r.Hive = path, fs.Volume().Index, SystemHivePath
	r.Warnings = img.Warnings()
	return r, nil
}

// imageLogs lists the transaction logs of the hive at hivePath on the volume (LOG1, LOG2 and
// the legacy LOG) and opens those that can be replayed (LOG1, LOG2, and LOG when it is the
// only one, as on Windows XP).
func imageLogs(fs *disk.FS, hivePath string) ([]LogFile, []LogSource) {
	var logs []LogFile
	var srcs []LogSource
	base := hivePath[strings.LastIndexByte(hivePath, '\\')+1:]
	for _, ext := range []string{".LOG1", ".LOG2", ".LOG"} {
		f, err := fs.Open(hivePath + ext)
		if err != nil || f.Info().IsDir {
			continue
		}
		logs = append(logs, LogFile{Name: base + ext, Size: f.Size()})
		if ext != ".LOG" || len(srcs) == 0 {
			srcs = append(srcs, LogSource{Name: base + ext, R: f, Size: f.Size()})
		}
	}
	return logs, srcs
}

// isHiveFile reports whether the file at path starts with the "regf" signature.
func isHiveFile(path string) bool {
	f, err := disk.OpenFile(path) // never blocks on a FIFO; refuses what is no file or device
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return false
	}
	return bytes.Equal(b[:], []byte("regf"))
}

// hiveFileLogs lists the transaction logs beside a hive file (SYSTEM.LOG1, SYSTEM.LOG2,
// SYSTEM.LOG) and opens those that can be replayed; the caller calls closeAll when done.
func hiveFileLogs(path string) (logs []LogFile, srcs []LogSource, closeAll func()) {
	var files []*os.File
	for _, ext := range []string{".LOG1", ".LOG2", ".LOG"} {
		for _, p := range []string{path + ext, path + lowerASCII(ext)} {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			logs = append(logs, LogFile{Name: filepath.Base(p), Size: fi.Size()})
			if ext != ".LOG" || len(srcs) == 0 {
				if f, err := os.Open(p); err == nil {
					files = append(files, f)
					srcs = append(srcs, LogSource{Name: filepath.Base(p), R: f, Size: fi.Size()})
				}
			}
			break
		}
	}
	return logs, srcs, func() {
		for _, f := range files {
			f.Close()
		}
	}
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// ErrNoSystemHive: the Windows volume has no Windows\System32\config\SYSTEM.
var ErrNoSystemHive = errors.New("no SYSTEM hive")

// IsBadInput reports whether err from Preflight means the input cannot be used (an image
// format crashkey does not read, no partition table or no such volume, no SYSTEM hive, not a
// SYSTEM hive) rather than a failure while reading it.
func IsBadInput(err error) bool {
	return errors.Is(err, disk.ErrUnsupportedFormat) || errors.Is(err, disk.ErrNoVolume) ||
		errors.Is(err, disk.ErrPartitionTable) || errors.Is(err, ErrNoSystemHive) ||
		errors.Is(err, ErrNotHive) || errors.Is(err, ErrNotSystemHive) || errors.Is(err, disk.ErrBackingRefused)
}
