package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/hid"
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
		s, err := ReadHiveFile(path)
		if err != nil {
			return nil, fmt.Errorf("preflight: %w", err)
		}
		logs := hiveFileLogs(path)
		r := Check(s, CheckOptions{Hotkey: opts.Hotkey, MemoryMiB: opts.MemoryMiB, Logs: logs})
		r.Hive = path
		return r, nil
	}
	img, err := disk.Open(path, disk.Options{ForceShare: opts.ForceShare, Partition: opts.Partition, AllowBacking: opts.AllowBacking, Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("preflight: %w", err)
	}
	defer img.Close()
	return PreflightImage(ctx, img, opts)
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
	s, err := ReadHive(f, f.Size())
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
	var logs []LogFile
	for _, name := range []string{"SYSTEM.LOG1", "SYSTEM.LOG2", "SYSTEM.LOG"} {
		if fi, err := fs.Stat(`Windows\System32\config\` + name); err == nil && !fi.IsDir {
			logs = append(logs, LogFile{Name: name, Size: fi.Size})
		}
	}
	r := Check(s, CheckOptions{Hotkey: opts.Hotkey, MemoryMiB: opts.MemoryMiB, Logs: logs})
	r.Image, r.Volume, r.Hive = path, fs.Volume().Index, SystemHivePath
	r.Warnings = img.Warnings()
	return r, nil
}

// isHiveFile reports whether the file at path starts with the "regf" signature.
func isHiveFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return bytes.Equal(b[:], []byte("regf"))
}

// hiveFileLogs lists the transaction logs beside a hive file (SYSTEM.LOG1, SYSTEM.LOG2).
func hiveFileLogs(path string) []LogFile {
	var logs []LogFile
	for _, ext := range []string{".LOG1", ".LOG2", ".LOG"} {
		for _, p := range []string{path + ext, path + lowerASCII(ext)} {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				logs = append(logs, LogFile{Name: filepath.Base(p), Size: fi.Size()})
				break
			}
		}
	}
	return logs
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
